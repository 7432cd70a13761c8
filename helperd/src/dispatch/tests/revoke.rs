//! Issue 15: locks (`helperd lock`) and renewal (`helperd renew`) through
//! `dispatch`, as an attacker would try them. Sessions here are opened by a
//! child process (`sleep`), never by the test process itself: ending one
//! signals its opener's tree.

use super::*;
use oidc_core::LockTarget;

const HMAC: &str = "a-shared-secret-of-at-least-32-bytes-long";

/// A world whose issuer signs HS256 with a secret file (no JWKS needed).
fn hs_world(tag: &str) -> World {
    let dir = temp_dir(&format!("dispatch-key-{tag}"));
    let key = dir.join("hmac.key");
    std::fs::write(&key, format!("{HMAC}\n")).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let issuer = format!("algorithms = [\"HS256\"]\nhmac_secret_file = \"{}\"\n", key.display());
    world_full(tag, None, &issuer, "reuse_claims = true\naws_credentials = true\n")
}

/// An HS256 ID token of the test issuer, issued at T0 + 10 (10 s after the
/// tokens sessions here log in with), for deploy's repository.
pub(super) fn token(sub: &str, name: &str, exp: i64, jti: &str) -> Secret {
    token_at(sub, name, T0 + 10, exp, jti, "acme/infra")
}

/// [`token`] issued at `iat`, from a CI job of `repository`.
pub(super) fn token_at(sub: &str, name: &str, iat: i64, exp: i64, jti: &str, repository: &str) -> Secret {
    let claims = serde_json::json!({
        "iss": ISS, "aud": "a", "sub": sub, "preferred_username": name,
        "iat": iat, "exp": exp, "jti": jti, "groups": [], "repository": repository,
    });
    let t = oidc_core::crypto::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap();
    Secret::new(t)
}

/// A child process to open sessions with (killed on drop).
pub(super) struct Opener(std::process::Child);

impl Opener {
    pub(super) fn new() -> Opener {
        Opener(crate::testing::sleeper(60))
    }
    pub(super) fn pid(&self) -> i32 {
        self.0.id() as i32
    }
    /// The opener, as a peer of its own uid (a process inside its session).
    pub(super) fn peer(&self) -> Peer {
        Peer { uid: my_uid(), pid: self.pid(), start: crate::procfs::start_time(self.pid()) }
    }
    pub(super) fn gone_within(&mut self, d: Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        while std::time::Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// alice's role login into `deploy` (sub `ci-1`), its session opened by `by`.
fn alice_session(w: &World, by: &Opener, jti: &str) -> u64 {
    alice_session_ending(w, by, jti, false)
}

/// [`alice_session`], opened by a stack with `end_at_expiry` if `end`.
pub(super) fn alice_session_ending(w: &World, by: &Opener, jti: &str, end: bool) -> u64 {
    let c = SessionClaims { identity: "alice".into(), ..claims("deploy", "ci-1") };
    let req =
        Request::Login { event: None, claims: c, web_token: None, role_groups: vec![], replay_id: Some(jti.into()) };
    let id = login_id(ask(w, root(), req));
    let open = Request::OpenSession {
        login_id: id,
        pid: by.pid(),
        tty: "pts/1".into(),
        rhost: "198.51.100.7".into(),
        end_at_expiry: end,
    };
    match ask(w, root(), open) {
        Response::SessionOpened { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

fn lock_name(name: &str) -> Request {
    Request::Lock {
        target: LockTarget::Name { name: name.into() },
        reason: "left the company".into(),
        by: "ops".into(),
    }
}

/// `helperd lock NAME`: the live session ends (its process is gone, no claims),
/// a new login of that identity is refused — also into a role account — and
/// the lock survives a restart; `unlock` lifts it.
#[test]
fn a_lock_ends_live_sessions_and_refuses_new_logins_until_unlocked() {
    let w = world("lock", None);
    let mut a = Opener::new();
    let b = Opener::new();
    alice_session(&w, &a, "jti:l1");
    let bob = SessionClaims { identity: "bob".into(), ..claims("deploy", "ci-2") };
    let req = Request::Login {
        event: None,
        claims: bob,
        web_token: None,
        role_groups: vec![],
        replay_id: Some("jti:b".into()),
    };
    let id = login_id(ask(&w, root(), req));
    let open = Request::OpenSession {
        login_id: id,
        pid: b.pid(),
        tty: String::new(),
        rhost: String::new(),
        end_at_expiry: false,
    };
    let Response::SessionOpened { id: bob_session, .. } = ask(&w, root(), open) else { panic!() };

    match ask(&w, root(), lock_name("alice")) {
        Response::Locked { ended, detail } => assert_eq!(ended.len(), 1, "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(a.gone_within(Duration::from_secs(5)), "alice's session process got SIGHUP");
    assert_eq!(w.svc.sessions.ids(), vec![bob_session], "bob's session of the same role account lives");
    let Response::Claims { claims: None, .. } = ask(&w, a.peer(), Request::SessionClaims) else { panic!() };
    // A new login of alice (another token) is refused, into the role account too.
    let c = SessionClaims { identity: "alice".into(), ..claims("deploy", "ci-1") };
    let req = Request::Login {
        event: None,
        claims: c,
        web_token: None,
        role_groups: vec![],
        replay_id: Some("jti:l2".into()),
    };
    assert_eq!(refused(&ask(&w, root(), req.clone())), "locked");
    // Persisted: a restarted helperd (and the module, with helperd down) reads it.
    let again = crate::locks::Locks::open(&w.dir.join("state"));
    let lock = again.lock_for(&SessionClaims { identity: "alice".into(), ..claims("deploy", "x") }).unwrap();
    assert!(lock.by.starts_with(&format!("uid 0 pid {}", me())) && lock.by.ends_with("sudo_user ops"), "{}", lock.by);
    let Response::Locks { locks, .. } = ask(&w, root(), Request::Locks { offset: 0 }) else { panic!() };
    assert_eq!((locks.len(), locks[0].reason.as_str()), (1, "left the company"));
    // Only root locks and unlocks.
    assert_eq!(refused(&ask(&w, peer(1000), lock_name("bob"))), "permission-denied");
    let unlock = Request::Unlock { target: LockTarget::Name { name: "alice".into() } };
    assert!(matches!(ask(&w, root(), unlock.clone()), Response::Unlocked { removed: 1 }));
    assert!(matches!(ask(&w, root(), unlock), Response::Unlocked { removed: 0 }));
    assert!(matches!(ask(&w, root(), req), Response::Admitted { .. }), "unlocked: logs in");
}

/// `helperd lock --sub ISSUER SUB` holds whatever name the identity uses.
#[test]
fn an_identity_lock_holds_under_any_name() {
    let w = world("lock-sub", None);
    let target = LockTarget::Identity { issuer: ISS.into(), sub: "ci-1".into() };
    let lock = Request::Lock { target, reason: String::new(), by: String::new() };
    assert!(matches!(ask(&w, root(), lock), Response::Locked { .. }));
    let renamed = SessionClaims { identity: "alice2".into(), ..claims("deploy", "ci-1") };
    let req = Request::Login {
        event: None,
        claims: renamed,
        web_token: None,
        role_groups: vec![],
        replay_id: Some("jti:s".into()),
    };
    assert_eq!(refused(&ask(&w, root(), req)), "locked");
}

fn renew(w: &World, by: &Opener, t: Secret) -> Response {
    ask(w, by.peer(), Request::RenewSession { token: t })
}

/// `helperd renew` from inside the session: a fresh token of the same
/// identity extends claim reuse; another identity's token, a replayed or
/// invalid token, a caller outside the session and a locked identity are all
/// refused, and nothing changes.
#[test]
fn a_session_is_renewed_only_with_a_fresh_token_of_its_own_identity() {
    let w = hs_world("renew");
    let a = Opener::new();
    let id = alice_session(&w, &a, "jti:r0");
    let exp = |w: &World| w.svc.sessions.list()[0].claims.exp;
    assert_eq!(exp(&w), T0 + 600);

    // Another identity's token (bob's, valid and fresh): refused.
    assert_eq!(refused(&renew(&w, &a, token("ci-2", "bob", T0 + 3600, "j-bob"))), "other-identity");
    // Same sub, another login name (renamed at the IdP, or a forged claim): refused.
    assert_eq!(refused(&renew(&w, &a, token("ci-1", "mallory", T0 + 3600, "j-m"))), "other-identity");
    // Not a valid token: refused.
    // Signed with another key: the signature's first character changed.
    let t = token("ci-1", "alice", T0 + 3000, "j-f");
    let (signed, sig) = t.expose().rsplit_once('.').unwrap();
    let flip = if sig.starts_with('A') { "B" } else { "A" };
    let forged = Secret::new(format!("{signed}.{flip}{}", &sig[1..]));
    assert_eq!(refused(&renew(&w, &a, forged)), "token-refused");
    assert_eq!(refused(&renew(&w, &a, token("ci-1", "alice", T0 - 300, "j-old"))), "token-refused", "expired");
    assert_eq!(exp(&w), T0 + 600, "nothing changed");

    // The session's own identity: renewed.
    match renew(&w, &a, token("ci-1", "alice", T0 + 3600, "j-1")) {
        Response::Renewed { id: rid, exp, .. } => assert_eq!((rid, exp), (id, T0 + 3600)),
        other => panic!("{other:?}"),
    }
    assert_eq!(exp(&w), T0 + 3600);
    // A token renews once; so does one no newer than the session's.
    assert_eq!(refused(&renew(&w, &a, token("ci-1", "alice", T0 + 3600, "j-1"))), "token-refused");
    assert_eq!(
        refused(&renew(&w, &a, token_at("ci-1", "alice", T0 + 20, T0 + 3600, "j-1b", "acme/infra"))),
        "token-refused"
    );
    // Review finding 2: the role-account rule is checked again — a token of
    // another repository with the same sub renews nothing.
    let other = token_at("ci-1", "alice", T0 + 20, T0 + 3610, "j-evil", "evil/other");
    assert_eq!(refused(&renew(&w, &a, other)), "token-refused");
    // A process outside any session (this test process) renews nothing.
    let outside = ask(&w, peer(my_uid()), Request::RenewSession { token: token("ci-1", "alice", T0 + 3100, "j-2") });
    assert_eq!(refused(&outside), "no-session");
    // A locked identity cannot renew (its sessions end with the lock anyway).
    w.svc
        .locks
        .lock(oidc_core::Lock {
            target: LockTarget::Identity { issuer: ISS.into(), sub: "ci-1".into() },
            by: "test".into(),
            at: T0,
            reason: String::new(),
            source: crate::locks::LOCAL.into(),
            via: None,
        })
        .unwrap();
    assert_eq!(refused(&renew(&w, &a, token_at("ci-1", "alice", T0 + 20, T0 + 3610, "j-3", "acme/infra"))), "locked");
    assert_eq!(exp(&w), T0 + 3600);
}

/// Issue 15 (1): a stack's `end_at_expiry` ends its sessions at exp where the
/// config keeps them, and a renewal carries the deadline to the new `exp`.
#[test]
fn a_stack_that_ends_sessions_at_expiry_keeps_them_ending_after_a_renewal() {
    let w = hs_world("stack-end");
    let (a, b) = (Opener::new(), Opener::new());
    alice_session_ending(&w, &a, "jti:e1", true);
    let ends = |w: &World, pid: i32| w.svc.sessions.list().into_iter().find(|s| s.pid == pid).unwrap().ends_at;
    assert_eq!(ends(&w, a.pid()), Some(T0 + 600), "exp + grace 0, though [sessions] keeps");
    let r = renew(&w, &a, token("ci-1", "alice", T0 + 3000, "j-e"));
    assert!(matches!(r, Response::Renewed { ends_at: Some(t), .. } if t == T0 + 3000), "{r:?}");
    assert_eq!(ends(&w, a.pid()), Some(T0 + 3000), "renewed: the new exp");
    alice_session_ending(&w, &b, "jti:e2", false);
    assert_eq!(ends(&w, b.pid()), None, "another stack keeps its sessions");
}

/// Review finding 3a: a lock set between a login and its session holds: the
/// pending login is dropped, and an OpenSession for it is refused.
#[test]
fn a_lock_between_login_and_session_holds() {
    let w = world("lock-pending", None);
    let a = Opener::new();
    let c = SessionClaims { identity: "alice".into(), ..claims("deploy", "ci-1") };
    let req = Request::Login { event: None, claims: c, web_token: None, role_groups: vec![], replay_id: None };
    let id = login_id(ask(&w, root(), req));
    assert!(matches!(ask(&w, root(), lock_name("alice")), Response::Locked { .. }));
    let open = Request::OpenSession {
        login_id: id,
        pid: a.pid(),
        tty: String::new(),
        rhost: String::new(),
        end_at_expiry: false,
    };
    assert!(!matches!(ask(&w, root(), open), Response::SessionOpened { .. }));
    assert!(w.svc.sessions.ids().is_empty());
}

/// Review finding 3d: `lock NAME` of an OIDC account locks the identity
/// holding it too (a rename at the IdP does not escape), names compare
/// without case, `unlock NAME` lifts both, and an identity lock of an issuer
/// not configured here is refused (it would lock nothing).
#[test]
fn a_name_lock_follows_the_identity_holding_it() {
    let w = world("lock-held", None);
    assert!(matches!(ask(&w, root(), user_login("jti:h1")), Response::Admitted { .. }), "oidctest admitted");
    match ask(&w, root(), lock_name("OIDCTest")) {
        Response::Locked { detail, .. } => assert!(detail.contains("and the identity holding it"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // The same identity (sub-7) under a new name, e.g. renamed at the IdP.
    let renamed = SessionClaims { identity: "renamed".into(), ..claims("deploy", "sub-7") };
    let req = Request::Login {
        event: None,
        claims: renamed,
        web_token: None,
        role_groups: vec![],
        replay_id: Some("jti:h2".into()),
    };
    assert_eq!(refused(&ask(&w, root(), req.clone())), "locked");
    let unlock = Request::Unlock { target: LockTarget::Name { name: "OIDCTest".into() } };
    assert!(matches!(ask(&w, root(), unlock), Response::Unlocked { removed: 2 }), "the name's and the identity's");
    assert!(matches!(ask(&w, root(), req), Response::Admitted { .. }));
    let stray = Request::Lock {
        target: LockTarget::Identity { issuer: "https://elsewhere.test".into(), sub: "x".into() },
        reason: String::new(),
        by: String::new(),
    };
    assert!(matches!(ask(&w, root(), stray), Response::Error { .. }), "an issuer not configured here");
}
