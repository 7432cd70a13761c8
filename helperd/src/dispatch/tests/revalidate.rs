//! Issue 15 (part 2): device-code sessions revalidated with the refresh token
//! helperd kept from the device flow — over a scripted IdP and a fake clock.
//! The flow runs for real (discovery, device authorization, token poll), the
//! module's `Login` and `OpenSession` go through `dispatch`, and the
//! background step is called as helperd's thread calls it.

use super::revoke::{token_at, Opener};

/// An ID token issued now (the world's clock).
fn fresh(w: &World, sub: &str, name: &str, exp: i64, jti: &str) -> oidc_core::Secret {
    use oidc_core::Clock as _;
    token_at(sub, name, w.clock.now(), exp, jti, "acme/infra")
}
use super::*;
use crate::revalidate::step;

const DEV: &str = "https://idp.test/device";
const TOK: &str = "https://idp.test/token";
const RT1: &str = "rt-1-the-refresh-token-never-logged";
const RT2: &str = "rt-2-the-rotated-refresh-token";

/// An HS256 issuer with device-code login; `extra` issuer keys and config after it.
fn dev_world(tag: &str, extra: &str, after: &str) -> World {
    let dir = temp_dir(&format!("dispatch-dev-{tag}"));
    let key = dir.join("hmac.key");
    std::fs::write(&key, "a-shared-secret-of-at-least-32-bytes-long\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let issuer = format!(
        "algorithms = [\"HS256\"]\nhmac_secret_file = \"{}\"\ndevice_client_id = \"a\"\n{extra}",
        key.display()
    );
    world_full(tag, None, &issuer, &format!("reuse_claims = true\n{after}"))
}

fn reply(status: u16, v: serde_json::Value) -> Reply {
    Reply::Http(status, json(v))
}

/// The IdP's side of one device flow: discovery, authorization (the scope
/// asked for must be `scope`), one poll answered with `answer`.
fn script_flow(t: &ScriptedTransport, scope: &'static str, answer: serde_json::Value) {
    let doc = serde_json::json!({"issuer": ISS, "device_authorization_endpoint": DEV, "token_endpoint": TOK});
    t.expect("GET", &format!("{ISS}/.well-known/openid-configuration"), reply(200, doc));
    t.expect_with(
        "POST",
        DEV,
        move |c| if c.body == format!("client_id=a&scope={scope}") { Ok(()) } else { Err(c.body.clone()) },
        reply(
            200,
            serde_json::json!({"device_code": "dc", "user_code": "UC", "verification_uri": "https://idp.test/a"}),
        ),
    );
    t.expect("POST", TOK, reply(200, answer));
}

/// A device login of alice into `deploy` (sub `ci-1`), as the module runs it:
/// the flow, then `Login` with the token's replay id, then `OpenSession` by `by`.
fn device_session(w: &World, by: &Opener, id_token: &Secret) -> u64 {
    let Response::DeviceStarted { flow_id, .. } = w.svc.device.start(ISS, "198.51.100.7", None) else { panic!() };
    let Response::DeviceToken { id_token: got } = w.svc.device.wait(&flow_id, Duration::from_secs(10)) else {
        panic!("no token")
    };
    assert_eq!(got.expose(), id_token.expose());
    // The module's login of that token: its replay id picks the refresh token up.
    super::revoke::alice_session_ending(w, by, &oidc_core::replay_id(got.expose(), Some("j-0")), false)
}

/// Expect one refresh with `refresh_token`; answer `r`.
fn expect_refresh(t: &ScriptedTransport, refresh_token: &'static str, r: Reply) {
    let want = format!("grant_type=refresh_token&refresh_token={refresh_token}&client_id=a");
    t.expect_with("POST", TOK, move |c| if c.body == want { Ok(()) } else { Err(c.body.clone()) }, r);
}

/// A device session of alice whose refresh token is RT1 (token exp T0 + 600).
fn started(tag: &str, extra: &str, after: &str) -> (World, Opener, u64) {
    let w = dev_world(tag, &format!("device_refresh = true\n{extra}"), after);
    let t0 = fresh(&w, "ci-1", "alice", T0 + 600, "j-0");
    script_flow(
        &w.t,
        "openid profile offline_access",
        serde_json::json!({"id_token": t0.expose(), "refresh_token": RT1}),
    );
    let a = Opener::new();
    let id = device_session(&w, &a, &t0);
    (w, a, id)
}

/// Move the clock to `t` (unix seconds; the device poll already slept 5 s).
fn at(w: &World, t: i64) {
    use oidc_core::Clock as _;
    let now = w.clock.now();
    assert!(t >= now, "{t} < {now}");
    w.clock.advance(Duration::from_secs((t - now) as u64));
}

fn exp(w: &World) -> i64 {
    w.svc.sessions.list()[0].claims.exp
}

/// Refresh succeeds: at the due time (80 % of the lifetime or exp − 60 s,
/// the later: T0 + 540 here) the session is renewed with the new token's exp,
/// the rotated refresh token is kept, and the next refresh is scheduled from
/// the new token. Nothing is asked of the IdP before it is due.
#[test]
fn a_refresh_renews_the_session_and_keeps_the_rotated_refresh_token() {
    let (w, a, id) = started("ok", "", "");
    assert_eq!(w.svc.sessions.refresh_token_of(id).unwrap().expose(), RT1);
    at(&w, T0 + 539);
    step(&w.svc);
    w.t.done();
    at(&w, T0 + 540);
    let t1 = fresh(&w, "ci-1", "alice", T0 + 1200, "j-1");
    expect_refresh(&w.t, RT1, reply(200, serde_json::json!({"id_token": t1.expose(), "refresh_token": RT2})));
    step(&w.svc);
    w.t.done();
    assert_eq!(exp(&w), T0 + 1200, "the session's exp moved");
    assert_eq!(w.svc.sessions.refresh_token_of(id).unwrap().expose(), RT2, "rotated");
    // Claims reuse runs on the new token.
    let Response::Claims { claims: Some(c), .. } = ask(&w, a.peer(), Request::SessionClaims) else { panic!() };
    assert_eq!(c.exp, T0 + 1200);
    // Next: the later of 80 % of the new token's lifetime (iat T0, exp T0 + 1200:
    // T0 + 960) and exp − 60 s (T0 + 1140).
    at(&w, T0 + 1139);
    step(&w.svc);
    w.t.done();
    at(&w, T0 + 1140);
    let t2 = fresh(&w, "ci-1", "alice", T0 + 1800, "j-2");
    expect_refresh(&w.t, RT2, reply(200, serde_json::json!({"id_token": t2.expose()})));
    step(&w.svc);
    w.t.done();
    assert_eq!(exp(&w), T0 + 1800);
    assert_eq!(w.svc.sessions.refresh_token_of(id).unwrap().expose(), RT2, "not rotated: the same one kept");
}

/// `invalid_grant` (the user disabled, the grant revoked): the session ends
/// at once — its process gets SIGHUP, no claims, no listing, no grant.
#[test]
fn invalid_grant_ends_the_session() {
    let (w, mut a, id) = started("revoked", "", "");
    at(&w, T0 + 540);
    let e = serde_json::json!({"error": "invalid_grant", "error_description": "grant request is invalid"});
    expect_refresh(&w.t, RT1, reply(400, e));
    step(&w.svc);
    w.t.done();
    assert!(w.svc.sessions.ids().is_empty(), "ended");
    assert!(!w.svc.sessions.has_grant(id), "the refresh token is dropped");
    assert!(a.gone_within(Duration::from_secs(5)), "its process got SIGHUP");
    let log = crate::log::CAPTURED.lock().unwrap().join("\n");
    let line = log.lines().find(|l| l.contains(&format!("session {id} ended")) && l.contains("invalid_grant"));
    let line = line.unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("user=deploy") && line.contains("sub=ci-1") && line.contains("grant request is invalid"));
}

/// A refreshed token of another identity (or one that does not verify) ends
/// the session: the IdP no longer vouches for this one.
#[test]
fn a_refreshed_token_of_another_identity_ends_the_session() {
    for (n, (sub, name)) in [("ci-2", "bob"), ("ci-1", "alice")].into_iter().enumerate() {
        let (w, mut a, _) = started(&format!("other-{n}"), "", "");
        at(&w, T0 + 540);
        let bad = fresh(&w, sub, name, T0 + 1200, &format!("j-{n}"));
        let bad = if n == 0 { bad } else { Secret::new(format!("{}x", bad.expose())) };
        expect_refresh(&w.t, RT1, reply(200, serde_json::json!({"id_token": bad.expose()})));
        step(&w.svc);
        w.t.done();
        assert!(w.svc.sessions.ids().is_empty(), "case {n}: ended");
        assert!(a.gone_within(Duration::from_secs(5)));
    }
}

/// 503, 429, a connection error: retried with backoff (5 s, 10 s, 20 s), the
/// session untouched; then a success renews it.
#[test]
fn transient_errors_are_retried_with_backoff() {
    let (w, a, _) = started("retry", "", "");
    at(&w, T0 + 540);
    expect_refresh(&w.t, RT1, Reply::Http(503, "<html>Service Unavailable</html>".into()));
    step(&w.svc);
    for (wait, r) in
        [(5, Reply::Http(429, "{\"error\":\"slow down\"}".into())), (10, Reply::Fail("connection refused".into()))]
    {
        w.clock.advance(Duration::from_secs(wait - 1));
        step(&w.svc);
        w.t.done();
        w.clock.advance(Duration::from_secs(1));
        expect_refresh(&w.t, RT1, r);
        step(&w.svc);
        w.t.done();
    }
    assert_eq!((w.svc.sessions.ids().len(), exp(&w)), (1, T0 + 600), "the session is untouched");
    w.clock.advance(Duration::from_secs(20));
    let t1 = fresh(&w, "ci-1", "alice", T0 + 1200, "j-1");
    expect_refresh(&w.t, RT1, reply(200, serde_json::json!({"id_token": t1.expose()})));
    step(&w.svc);
    w.t.done();
    assert_eq!(exp(&w), T0 + 1200);
    assert!(a.peer().start.is_some());
}

/// `on_revoked = "keep"`: the processes live, but claims and AWS credentials stop.
#[test]
fn on_revoked_keep_stops_claims_and_leaves_the_processes() {
    let (w, mut a, id) = started("keep", "", "[sessions]\non_revoked = \"keep\"\n");
    at(&w, T0 + 540);
    expect_refresh(&w.t, RT1, reply(401, serde_json::json!({"error": "invalid_grant"})));
    step(&w.svc);
    w.t.done();
    assert_eq!(w.svc.sessions.ids(), vec![id], "still listed");
    assert!(!a.gone_within(Duration::from_millis(300)), "its process lives");
    match ask(&w, a.peer(), Request::SessionClaims) {
        Response::Claims { claims: None, detail } => assert!(detail.contains("revoked"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(w.svc.sessions.for_credentials(&a.peer()).is_none());
    assert!(!w.svc.sessions.has_grant(id));
}

/// The refresh token never leaves helperd: not in the token handed to the
/// module, not in any log line, not in any `Debug` output; it is dropped
/// (wiped: `Secret`) when the session closes.
#[test]
fn the_refresh_token_is_never_shown_and_dropped_on_close() {
    let (w, a, id) = started("secret", "", "");
    let grant = w.svc.sessions.due_grants(i64::MAX);
    assert_eq!(grant.len(), 1);
    assert!(!format!("{grant:?}").contains(RT1), "Debug is redacted");
    w.svc.sessions.grant_done(id, crate::revalidate::Next::Retry { at: T0 + 540 });
    at(&w, T0 + 540);
    let t1 = fresh(&w, "ci-1", "alice", T0 + 1200, "j-1");
    expect_refresh(&w.t, RT1, reply(200, serde_json::json!({"id_token": t1.expose(), "refresh_token": RT2})));
    step(&w.svc);
    w.t.done();
    let log = crate::log::CAPTURED.lock().unwrap().join("\n");
    assert!(log.contains(&format!("session {id} revalidated")), "{log}");
    assert!(!log.contains(RT1) && !log.contains(RT2), "a refresh token was logged");
    assert!(matches!(ask(&w, root(), Request::CloseSession { pid: a.pid() }), Response::SessionClosed { closed: 1 }));
    assert!(!w.svc.sessions.has_grant(id) && w.svc.sessions.refresh_token_of(id).is_none(), "dropped on close");
    step(&w.svc);
    w.t.done();
}

/// Only the login that reports the device flow's own token (its replay id,
/// its issuer and sub) gets the refresh token, once; a refused login drops it.
/// Without `device_refresh` nothing is kept and `offline_access` is not asked.
#[test]
fn the_grant_goes_only_to_the_login_of_its_own_token() {
    let w = dev_world("claim", "device_refresh = true\n", "");
    let t0 = fresh(&w, "ci-1", "alice", T0 + 600, "j-0");
    script_flow(
        &w.t,
        "openid profile offline_access",
        serde_json::json!({"id_token": t0.expose(), "refresh_token": RT1}),
    );
    let Response::DeviceStarted { flow_id, .. } = w.svc.device.start(ISS, "198.51.100.7", None) else { panic!() };
    assert!(matches!(w.svc.device.wait(&flow_id, Duration::from_secs(10)), Response::DeviceToken { .. }));
    let rid = oidc_core::replay_id(t0.expose(), Some("j-0"));
    let bob = SessionClaims { identity: "bob".into(), ..claims("deploy", "ci-2") };
    assert!(w.svc.device.take_grant("jti:other", &claims("deploy", "ci-1")).is_none(), "another token");
    assert!(w.svc.device.take_grant(&rid, &bob).is_none(), "another identity: and now it is gone");
    assert!(w.svc.device.take_grant(&rid, &claims("deploy", "ci-1")).is_none(), "taken once");

    let w = dev_world("off", "", "");
    script_flow(&w.t, "openid profile", serde_json::json!({"id_token": t0.expose(), "refresh_token": RT1}));
    let a = Opener::new();
    let id = device_session(&w, &a, &t0);
    assert!(!w.svc.sessions.has_grant(id), "device_refresh is off: not kept");
    w.clock.advance(Duration::from_secs(3600));
    step(&w.svc);
    w.t.done();
}
