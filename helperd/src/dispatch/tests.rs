//! `dispatch` with fake services: a scripted transport, a fake clock and a
//! temporary state directory. The peer is a value, so a root peer is just
//! `uid: 0` — no root, no network, no child process.

use super::*;
use crate::clock::FakeClock;
use crate::testing::{json, temp_dir, Reply, ScriptedTransport};
use oidc_core::Secret;
use oidc_core::SessionClaims;
use oidc_core::{LoginEvent, Store, StoredUser, STORE_FILE};
use std::path::PathBuf;

const ISS: &str = "https://idp.test";
const T0: i64 = 1_800_000_000;
const PINNED: u32 = 1_500_000_000;

struct World {
    svc: Services,
    t: Arc<ScriptedTransport>,
    clock: Arc<FakeClock>,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn my_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// `store`: accounts already in the store when helperd starts. `deploy` is a
/// role account whose sessions may reuse their claims.
fn world(tag: &str, store: Option<Store>) -> World {
    world_with(tag, store, "reuse_claims = true\n")
}

/// [`world`] with `role` as the extra keys of deploy's `[[role_account]]`
/// rule (and anything after it, e.g. `[aws]`).
fn world_with(tag: &str, store: Option<Store>, role: &str) -> World {
    world_full(tag, store, "", role)
}

/// [`world_with`], `issuer` extra keys of the one `[[issuer]]`.
fn world_full(tag: &str, store: Option<Store>, issuer: &str, role: &str) -> World {
    let dir = temp_dir(&format!("dispatch-{tag}"));
    let uid = my_uid();
    // `deploy`, a local (role) account with this process's uid, so the
    // process tree of this test is inside its sessions.
    std::fs::write(dir.join("passwd"), format!("root:x:0:0::/root:/bin/sh\ndeploy:x:{uid}:{uid}::/tmp:/bin/sh\n"))
        .unwrap();
    std::fs::write(dir.join("group"), "root:x:0:\n").unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    if let Some(s) = store {
        std::fs::write(dir.join("state").join(STORE_FILE), serde_json::to_vec(&s).unwrap()).unwrap();
    }
    let text = format!(
        "version = 1\n[helperd]\ncache_dir = \"{d}/cache\"\nstate_dir = \"{d}/state\"\nnss_snapshot = \"{d}/snapshot\"\n\
         jwks_refresh_min_interval_secs = 300\n\
         [accounts]\nid_key_file = \"{d}/no-id-key\"\npasswd_file = \"{d}/passwd\"\ngroup_file = \"{d}/group\"\n\
         pinned_uids = {{ oidctest = {PINNED} }}\n\
         [[issuer]]\nurl = \"{ISS}\"\naudiences = [\"a\"]\nuser_accounts = true\nleeway_secs = 60\n{issuer}\
         [[role_account]]\nname = \"deploy\"\nissuer = \"{ISS}\"\nrequire = {{ repository = \"acme/infra\" }}\n{role}",
        d = dir.display()
    );
    let cfg = oidc_core::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(T0));
    let svc = Services {
        keys: KeyCache::new(cfg.clone(), Box::new(t.clone())),
        accounts: AccountService::open(cfg.clone()).unwrap(),
        sessions: crate::sessions::Sessions::new(clock.clone(), Duration::from_secs(5)),
        device: Arc::new(crate::device::DeviceFlows::new(cfg.clone(), t.clone(), clock.clone())),
        aws: crate::aws::Broker::new(cfg.aws.clone(), t.clone(), clock.clone()),
        replay: crate::replay::ReplayCache::open(&dir.join("state"), T0),
        locks: crate::locks::Locks::open(&dir.join("state")),
        clock: clock.clone(),
    };
    World { svc, t, clock, dir }
}

fn me() -> i32 {
    std::process::id() as i32
}

/// This test process, connected as `uid`.
fn peer(uid: u32) -> Peer {
    Peer { uid, pid: me(), start: crate::procfs::start_time(me()) }
}

fn root() -> Peer {
    peer(0)
}

fn ask(w: &World, p: Peer, req: Request) -> Response {
    dispatch(&w.svc, p, req, &mut || {})
}

fn claims(account: &str, sub: &str) -> SessionClaims {
    SessionClaims {
        issuer: ISS.into(),
        sub: sub.into(),
        account: account.into(),
        identity: account.into(),
        groups: vec![],
        idp_groups: vec![],
        jti: None,
        sid: None,
        exp: T0 + 600,
        iat: T0,
        auth_time: None,
        acr: None,
        verified_at: T0,
        identity_id: String::new(),
    }
}

/// A verified role-account login (no admission; helperd checks the name).
fn role_login(account: &str, replay_id: Option<&str>) -> Request {
    Request::Login {
        event: None,
        claims: claims(account, "ci-1"),
        web_token: None,
        role_groups: vec![],
        replay_id: replay_id.map(String::from),
    }
}

/// A verified OIDC-account login for `oidctest` (its uid is pinned: no id key needed).
fn user_login(replay_id: &str) -> Request {
    let event = LoginEvent {
        issuer: ISS.into(),
        sub: "sub-7".into(),
        name: "oidctest".into(),
        groups: vec![],
        uid_claim: None,
        gecos: String::new(),
    };
    Request::Login {
        event: Some(event),
        claims: claims("oidctest", "sub-7"),
        web_token: Some(Secret::new("the.token".into())),
        role_groups: vec![],
        replay_id: Some(replay_id.into()),
    }
}

fn login_id(r: Response) -> String {
    match r {
        Response::Admitted { login_id, .. } => login_id,
        other => panic!("not admitted: {other:?}"),
    }
}

fn open(login_id: &str) -> Request {
    Request::OpenSession {
        login_id: login_id.into(),
        pid: me(),
        tty: "pts/9".into(),
        rhost: "198.51.100.7".into(),
        end_at_expiry: false,
    }
}

fn refused(r: &Response) -> &str {
    match r {
        Response::Refused { code, .. } => code.as_str(),
        other => panic!("not refused: {other:?}"),
    }
}

/// Every root-only request (`Request::root_only`), with plausible arguments.
fn root_only_requests() -> Vec<Request> {
    vec![
        user_login("jti:public"),
        role_login("deploy", None),
        Request::Users { offset: 0 },
        Request::Rebind { name: "oidctest".into(), issuer: ISS.into(), sub: "other".into() },
        open("0123456789abcdef0123456789abcdef"),
        Request::CloseSession { pid: me() },
        Request::SessionClaims,
        Request::Sessions { offset: 0 },
        Request::DeviceStart { issuer: ISS.into(), rhost: "198.51.100.7".into() },
        Request::DeviceWait { flow_id: "f".into(), timeout_secs: 600 },
        Request::Lock {
            target: oidc_core::LockTarget::Name { name: "oidctest".into() },
            reason: String::new(),
            by: String::new(),
        },
        Request::Unlock { target: oidc_core::LockTarget::Name { name: "oidctest".into() } },
        Request::Locks { offset: 0 },
    ]
}

#[test]
fn a_public_peer_is_refused_every_root_only_request_with_no_effect() {
    let w = world("public", None);
    let mut waited = 0;
    for req in root_only_requests() {
        assert!(req.root_only(), "{}", req.name());
        let r = dispatch(&w.svc, peer(1000), req, &mut || waited += 1);
        assert_eq!(refused(&r), "permission-denied");
    }
    assert_eq!(waited, 0, "a refused wait never gives a slot back");
    assert!(w.svc.accounts.users().is_empty() && w.svc.sessions.ids().is_empty());
    // The refused login reserved nothing: root's login with that token goes through.
    login_id(ask(&w, root(), user_login("jti:public")));
    // And nothing reached the network (the script is empty).
    w.t.done();
}

#[test]
fn ping_status_and_refresh_for_anyone_force_only_for_root() {
    let w = world("public-ok", None);
    assert!(
        matches!(ask(&w, peer(1000), Request::Ping), Response::Pong { version } if version == env!("CARGO_PKG_VERSION"))
    );
    let Response::Status { issuers } = ask(&w, peer(1000), Request::Status) else { panic!() };
    assert_eq!((issuers.len(), issuers[0].keys, issuers[0].fetches), (1, 0, 0));

    let keys = crate::testing::jwks("k1");
    let discovery = json(serde_json::json!({"issuer": ISS, "jwks_uri": format!("{ISS}/jwks")}));
    let fetch = |t: &ScriptedTransport| {
        t.expect("GET", &format!("{ISS}/.well-known/openid-configuration"), Reply::Http(200, discovery.clone()))
            .expect("GET", &format!("{ISS}/jwks"), Reply::Http(200, keys.clone()));
    };
    let refresh = |p: Peer, force: bool| ask(&w, p, Request::RefreshJwks { issuer: ISS.into(), force });
    fetch(&w.t);
    assert!(matches!(refresh(peer(1000), false), Response::Refreshed { fetched: true, ok: true, .. }));
    // Within the window: a user's `force` is ignored, root's is honoured.
    assert!(matches!(refresh(peer(1000), true), Response::Refreshed { fetched: false, .. }));
    fetch(&w.t);
    assert!(matches!(refresh(root(), true), Response::Refreshed { fetched: true, ok: true, .. }));
    let Response::Status { issuers } = ask(&w, peer(1000), Request::Status) else { panic!() };
    assert_eq!((issuers[0].keys, issuers[0].fetches, issuers[0].rate_limited), (1, 2, 1));
    w.t.done();
}

#[test]
fn login_open_session_claims_close_round_trip() {
    let w = world("roundtrip", None);
    let id = login_id(ask(&w, root(), role_login("deploy", Some("jti:r1"))));
    let Response::SessionOpened { id: session, aws } = ask(&w, root(), open(&id)) else { panic!() };
    assert!(aws.is_none(), "no [aws] roles");
    // This process (real uid = deploy's) is inside the session: sudo's claim reuse.
    match ask(&w, root(), Request::SessionClaims) {
        Response::Claims { claims: Some(c), detail } => {
            assert_eq!((c.account.as_str(), c.sub.as_str()), ("deploy", "ci-1"));
            assert!(detail.contains(&format!("session {session}")), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let Response::Sessions { sessions, next } = ask(&w, root(), Request::Sessions { offset: 0 }) else { panic!() };
    assert_eq!((sessions.len(), sessions[0].tty.as_str(), next), (1, "pts/9", None));
    // A login id opens one session only.
    assert!(matches!(ask(&w, root(), open(&id)), Response::Error { .. }));
    assert!(matches!(ask(&w, root(), Request::CloseSession { pid: me() }), Response::SessionClosed { closed: 1 }));
    // No claims once closed. (The session may stay detached while processes
    // it started run: this test process is the opener, and tests running
    // beside it spawn children of it.)
    match ask(&w, root(), Request::SessionClaims) {
        Response::Claims { claims: None, detail } => {
            assert!(detail.contains("none is open") || detail.contains("in no OIDC session"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    w.t.done();
}

#[test]
fn an_admitted_oidc_account_gets_its_session_and_a_process_of_another_uid_gets_no_claims() {
    let w = world("admit", None);
    let id = login_id(ask(&w, root(), user_login("jti:u1")));
    let Response::Users { users, .. } = ask(&w, root(), Request::Users { offset: 0 }) else { panic!() };
    assert_eq!((users.len(), users[0].name.as_str(), users[0].uid), (1, "oidctest", PINNED));
    assert!(matches!(ask(&w, root(), open(&id)), Response::SessionOpened { .. }));
    let Response::Sessions { sessions, .. } = ask(&w, root(), Request::Sessions { offset: 0 }) else { panic!() };
    assert_eq!(sessions[0].uid, PINNED);
    // This process runs as another uid than oidctest's: no claims for it.
    match ask(&w, root(), Request::SessionClaims) {
        Response::Claims { claims: None, detail } => assert!(detail.contains("in no OIDC session"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // Nor AWS credentials, for the same reason.
    assert!(matches!(ask(&w, peer(my_uid().max(1)), Request::AwsCredentials), Response::Error { .. }));
    // A role-account login may not take an OIDC user's account name.
    assert_eq!(refused(&ask(&w, root(), role_login("oidctest", None))), "name-of-another-issuer");
    w.t.done();
}

#[test]
fn a_token_logs_in_once_until_it_expires() {
    let w = world("replay", None);
    login_id(ask(&w, root(), role_login("deploy", Some("jti:once"))));
    assert_eq!(refused(&ask(&w, root(), role_login("deploy", Some("jti:once")))), "replayed");
    // Also as another account, and across a restart of helperd.
    assert_eq!(refused(&ask(&w, root(), user_login("jti:once"))), "replayed");
    let again = crate::replay::ReplayCache::open(&w.dir.join("state"), T0);
    assert!(again.reserve(ISS, "jti:once", T0 + 660, T0 + 1).is_err());
    // A login refused for another reason gives its token back.
    login_id(ask(&w, root(), user_login("jti:u0")));
    assert_eq!(refused(&ask(&w, root(), role_login("oidctest", Some("jti:back")))), "name-of-another-issuer");
    login_id(ask(&w, root(), role_login("deploy", Some("jti:back"))));
    // Remembered until exp plus the issuer's leeway (T0 + 600 + 60), by the clock.
    w.clock.advance(std::time::Duration::from_secs(660));
    assert_eq!(refused(&ask(&w, root(), role_login("deploy", Some("jti:once")))), "replayed");
    w.clock.advance(std::time::Duration::from_secs(1));
    login_id(ask(&w, root(), role_login("deploy", Some("jti:once"))));
    w.t.done();
}

#[test]
fn a_login_not_opened_within_ten_minutes_is_dropped() {
    let w = world("pending", None);
    let early = login_id(ask(&w, root(), role_login("deploy", None)));
    let late = login_id(ask(&w, root(), role_login("deploy", None)));
    w.clock.advance(std::time::Duration::from_secs(599));
    assert!(matches!(ask(&w, root(), open(&early)), Response::SessionOpened { .. }));
    w.clock.advance(std::time::Duration::from_secs(1));
    assert!(matches!(ask(&w, root(), open(&late)), Response::Error { .. }));
    w.t.done();
}

#[test]
fn users_come_in_pages_that_fit_a_frame() {
    let n = 1500;
    let users = (0..n)
        .map(|i| StoredUser {
            issuer: ISS.into(),
            sub: format!("sub-{i:05}-{}", "x".repeat(40)),
            name: format!("user{i:05}"),
            uid: PINNED + 1 + i,
            gecos: "A Person With A Long Display Name".into(),
            groups: vec!["devs".into(), "ops".into()],
            first_login: T0,
            last_login: T0,
        })
        .collect();
    let w = world("users", Some(Store { users, ..Store::default() }));
    let (mut all, mut offset, mut pages) = (vec![], 0, 0);
    loop {
        let Response::Users { users, next } = ask(&w, root(), Request::Users { offset }) else { panic!() };
        let frame = serde_json::to_vec(&Response::Users { users: users.clone(), next }).unwrap();
        assert!(frame.len() <= oidc_core::MAX_FRAME, "{} bytes", frame.len());
        all.extend(users.into_iter().map(|u| u.name));
        pages += 1;
        match next {
            Some(o) => offset = o,
            None => break,
        }
    }
    assert!(pages > 1, "{pages} page(s)");
    let want: Vec<String> = (0..n).map(|i| format!("user{i:05}")).collect();
    assert_eq!(all, want, "every user once, in order");
    w.t.done();
}

#[test]
fn sessions_come_in_pages_and_end_together_with_their_process() {
    let w = world("sessions", None);
    let n = 400;
    for _ in 0..n {
        let id = login_id(ask(&w, root(), role_login("deploy", None)));
        assert!(matches!(ask(&w, root(), open(&id)), Response::SessionOpened { .. }));
    }
    let (mut ids, mut offset, mut pages) = (vec![], 0, 0);
    loop {
        let Response::Sessions { sessions, next } = ask(&w, root(), Request::Sessions { offset }) else { panic!() };
        ids.extend(sessions.iter().map(|s| s.id));
        pages += 1;
        match next {
            Some(o) => offset = o,
            None => break,
        }
    }
    assert!(pages > 1, "{pages} page(s)");
    assert_eq!(ids, (1..=n).collect::<Vec<u64>>());
    let Response::SessionClosed { closed } = ask(&w, root(), Request::CloseSession { pid: me() }) else { panic!() };
    assert_eq!(closed, n as usize);
    w.t.done();
}

#[test]
fn a_device_wait_gives_its_slot_back_before_it_blocks() {
    let w = world("device", None);
    let mut released = 0;
    let r = dispatch(&w.svc, root(), Request::DeviceWait { flow_id: "nope".into(), timeout_secs: 1 }, &mut || {
        released += 1
    });
    assert!(matches!(r, Response::DeviceFailed { .. }), "{r:?}");
    assert_eq!(released, 1);
    // Other requests never do.
    let _ = dispatch(&w.svc, root(), Request::Sessions { offset: 0 }, &mut || released += 1);
    assert_eq!(released, 1);
    // A device start with an issuer lacking device_client_id asks the IdP nothing.
    let r = ask(&w, root(), Request::DeviceStart { issuer: ISS.into(), rhost: "198.51.100.7".into() });
    assert!(matches!(&r, Response::DeviceFailed { reason, .. } if reason.contains("device_client_id")), "{r:?}");
    w.t.done();
}

/// Issue 15: a role account is many people on one uid — any of them can reach
/// the others' session processes. Its sessions get no AWS credentials and no
/// claim reuse (sudo) unless its rule opts in.
#[test]
fn role_account_sessions_get_no_credentials_or_claim_reuse_unless_opted_in() {
    let aws = String::from(
        "[aws]\nregion = \"eu-west-1\"\nimds_endpoint = \"http://imds.test\"\n\
         [[aws.role]]\ngroup = \"ops\"\nrole_arn = \"arn:aws:iam::123456789012:role/ops\"\nsource = \"instance\"\n",
    );
    let ops_login = |w: &World| {
        let mut r = role_login("deploy", None);
        if let Request::Login { claims, role_groups, .. } = &mut r {
            claims.groups = vec!["ops".into()];
            *role_groups = vec!["ops".into()];
        }
        login_id(ask(w, root(), r))
    };
    // Default: no broker call at all (the script expects none), no claims.
    let w = world_with("role-default", None, &aws);
    let id = ops_login(&w);
    let Response::SessionOpened { aws: status, .. } = ask(&w, root(), open(&id)) else { panic!() };
    assert!(status.is_none(), "{status:?}");
    match ask(&w, root(), Request::SessionClaims) {
        Response::Claims { claims: None, detail } => assert!(detail.contains("claim reuse is off"), "{detail}"),
        other => panic!("{other:?}"),
    }
    w.t.done();
    // Opted in: the broker is asked (here IMDS is down, so the status says why).
    let w = world_with("role-optin", None, &format!("aws_credentials = true\nreuse_claims = true\n{aws}"));
    w.t.expect("PUT", "http://imds.test/latest/api/token", Reply::Fail("connection refused".into()));
    let id = ops_login(&w);
    let opened = ask(&w, root(), open(&id));
    let Response::SessionOpened { aws: Some(status), .. } = opened else { panic!("{opened:?}") };
    assert!(!status.granted && status.message.contains("imds"), "{status:?}");
    assert!(matches!(ask(&w, root(), Request::SessionClaims), Response::Claims { claims: Some(_), .. }));
    w.t.done();
}

/// Two rules may grant one account (per issuer): the account-wide switches
/// hold only if every rule for the name turns them on — a login through the
/// rule that leaves them off never gets them from the other rule.
#[test]
fn a_second_rule_for_the_same_account_cannot_lend_its_switches() {
    // deploy's first rule (CI tokens) turns both on; a second rule for the
    // same account (an `ops` group) leaves them off.
    let rules = "aws_credentials = true\nreuse_claims = true\n\
                 [[role_account]]\nname = \"deploy\"\nissuer = \"https://idp.test\"\ngroup = \"ops\"\n";
    let w = world_with("role-two-rules", None, rules);
    let id = login_id(ask(&w, root(), role_login("deploy", None)));
    assert!(matches!(ask(&w, root(), open(&id)), Response::SessionOpened { aws: None, .. }));
    match ask(&w, root(), Request::SessionClaims) {
        Response::Claims { claims: None, detail } => assert!(detail.contains("claim reuse is off"), "{detail}"),
        other => panic!("{other:?}"),
    }
    w.t.done();
}

mod revalidate;
mod revoke;
