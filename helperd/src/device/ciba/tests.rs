//! The push-login flow against a scripted IdP and a fake clock.

use super::*;
use crate::clock::FakeClock;
use crate::testing::{json, Reply, ScriptedTransport};
use oidc_core::Config;
use serde_json::json;

const ISS: &str = "https://idp.test";
const BC: &str = "https://idp.test/backchannel";
const TOK: &str = "https://idp.test/token";

fn setup(dir: &std::path::Path) -> (Arc<DeviceFlows>, Arc<ScriptedTransport>, Arc<FakeClock>) {
    let secret = dir.join("ciba.secret");
    std::fs::write(&secret, "ciba-s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        "version = 1\n[pam]\ndevice_timeout_secs = 60\n[helperd]\nciba_user_cooldown_secs = 30\n\
         [[issuer]]\nurl = \"{ISS}\"\naudiences = [\"push\"]\nname_prefix = \"x-\"\n\
         ciba_client_id = \"push\"\nciba_client_secret_file = \"{}\"\nciba_login_hint = \"{{name}}@example.com\"\n",
        secret.display()
    );
    let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(1_800_000_000));
    (Arc::new(DeviceFlows::new(cfg, t.clone(), clock.clone())), t, clock)
}

fn discovery(t: &ScriptedTransport) {
    let doc = json!({"issuer": ISS, "backchannel_authentication_endpoint": BC, "token_endpoint": TOK});
    t.expect("GET", &format!("{ISS}/.well-known/openid-configuration"), Reply::Http(200, json(doc)));
}

fn reply(status: u16, v: serde_json::Value) -> Reply {
    Reply::Http(status, json(v))
}

fn field(body: &str, k: &str) -> Option<String> {
    body.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
}

/// The backchannel request: the hint from the template, a binding message
/// with the code, service, user, host and remote address, the client's
/// secret; polls with the CIBA grant honour `interval` and `slow_down`.
#[test]
fn a_push_login_asks_for_the_user_then_polls_until_the_token() {
    let dir = crate::testing::temp_dir("ciba-start");
    let (f, t, clock) = setup(&dir);
    discovery(&t);
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let s2 = seen.clone();
    t.expect_with(
        "POST",
        BC,
        move |c| {
            *s2.lock().unwrap() = c.body.clone();
            Ok(())
        },
        reply(200, json!({"auth_req_id": "req-1", "expires_in": 120, "interval": 2})),
    );
    let poll =
        "grant_type=urn:openid:params:grant-type:ciba&auth_req_id=req-1&client_id=push&client_secret=ciba-s3cret";
    for r in [
        reply(400, json!({"error": "authorization_pending"})),
        reply(400, json!({"error": "slow_down"})),
        reply(200, json!({"id_token": "the.id.token", "refresh_token": "dropped"})),
    ] {
        t.expect_with("POST", TOK, move |c| if c.body == poll { Ok(()) } else { Err(c.body.clone()) }, r);
    }
    let r = f.start_ciba(ISS, "x-alice", "sshd", "203.0.113.9", &["phr".into()], None);
    let Response::CibaStarted { flow_id, code, expires_in } = r else { panic!("{r:?}") };
    assert_eq!((code.len(), expires_in), (4, 120));
    match f.wait(&flow_id, Duration::from_secs(10)) {
        Response::DeviceToken { id_token } => assert_eq!(id_token.expose(), "the.id.token"),
        other => panic!("{other:?}"),
    }
    // CIBA §7.3 / RFC 8628 §3.5: slow_down adds 5 s for this and later polls.
    assert_eq!(clock.sleeps(), [2, 2, 7].map(Duration::from_secs));
    let body = seen.lock().unwrap().clone();
    assert_eq!(field(&body, "login_hint").as_deref(), Some("alice@example.com"), "{body}");
    assert_eq!(field(&body, "client_secret").as_deref(), Some("ciba-s3cret"));
    assert_eq!(field(&body, "scope").as_deref(), Some("openid profile"));
    assert_eq!(field(&body, "requested_expiry").as_deref(), Some("60"));
    assert_eq!(field(&body, "acr_values").as_deref(), Some("phr"), "the stack's acr= is asked for");
    let m = field(&body, "binding_message").unwrap();
    let host = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
    assert!(m.starts_with(&format!("{code} sshd x-alice on ")) && m.ends_with(" from 203.0.113.9"), "{m}");
    assert!(m.contains(&host[..host.len().min(8)]), "{m} names the host");
    t.done();
}

/// Denied: its own code, and then no push to that user from that origin for
/// the cooldown (by no spelling of the name); one push waits per user and
/// origin at a time. Another origin is not held back: no one elsewhere (a
/// local user running `su bob`, a stranger on port 22) can keep bob's own
/// pushes from him.
#[test]
fn a_denied_push_cools_the_user_down_at_its_origin_and_one_waits_per_user() {
    let dir = crate::testing::temp_dir("ciba-deny");
    let (f, t, clock) = setup(&dir);
    discovery(&t);
    t.expect("POST", BC, reply(200, json!({"auth_req_id": "req-1", "expires_in": 120, "interval": 1})));
    t.expect("POST", TOK, reply(400, json!({"error": "access_denied"})));
    let Response::CibaStarted { flow_id, .. } = f.start_ciba(ISS, "x-bob", "su", "uid:1002", &[], None) else {
        panic!()
    };
    match f.wait(&flow_id, Duration::from_secs(10)) {
        Response::DeviceFailed { code: DeviceFailure::Denied, reason } => {
            assert!(reason.contains("denied"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    for name in ["x-bob", "x-BOB", "x-Bob"] {
        match f.start_ciba(ISS, name, "su", "uid:1002", &[], None) {
            Response::DeviceFailed { code: DeviceFailure::Busy, reason } => {
                assert!(reason.contains("not approved") && reason.contains("ciba_user_cooldown_secs"), "{reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    t.done();
    // bob himself, from his own address, is not held back by uid 1002's denial.
    discovery(&t);
    t.expect("POST", BC, reply(200, json!({"auth_req_id": "req-2", "expires_in": 120, "interval": 60})));
    t.expect("POST", TOK, reply(200, json!({"id_token": "bobs.own.token"})));
    let Response::CibaStarted { flow_id, .. } = f.start_ciba(ISS, "x-bob", "sshd", "192.0.2.1", &[], None) else {
        panic!()
    };
    assert!(matches!(f.wait(&flow_id, Duration::from_secs(10)), Response::DeviceToken { .. }));
    t.done();
    // A pending push holds the user at that origin: a second one is refused before any request.
    let _pending = f.reserve("192.0.2.9", None, "bob@example.com").unwrap();
    match f.start_ciba(ISS, "x-Bob", "sudo", "192.0.2.9", &[], None) {
        Response::DeviceFailed { code: DeviceFailure::Busy, reason } => {
            assert!(reason.contains("already waiting"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    t.done();
    clock.advance(Duration::from_secs(31));
}

/// The cooldown starts when the request goes out: an IdP that took the
/// request and then timed out or answered garbage allows no push at once.
#[test]
fn a_push_that_may_have_gone_out_cools_the_user_down_whatever_came_back() {
    let dir = crate::testing::temp_dir("ciba-sent");
    let (f, t, clock) = setup(&dir);
    for reply_ in [Reply::Fail("timed out".into()), reply(200, json!({"expires_in": 120}))] {
        discovery(&t);
        t.expect("POST", BC, reply_);
        assert!(matches!(f.start_ciba(ISS, "x-bob", "sshd", "192.0.2.1", &[], None), Response::DeviceFailed { .. }));
        match f.start_ciba(ISS, "x-bob", "sshd", "192.0.2.1", &[], None) {
            Response::DeviceFailed { code: DeviceFailure::Busy, reason } => assert!(reason.contains("not approved")),
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_secs(31));
    }
    t.done();
}

/// The module stopped waiting: the flow is marked, and a marked flow's
/// poller stops before its next request (no push stays live for no one).
#[test]
fn a_push_nobody_waits_for_any_more_stops_polling() {
    let dir = crate::testing::temp_dir("ciba-abandon");
    let (f, t, _) = setup(&dir);
    let (flow_id, flow) = f.reserve("192.0.2.1", None, "x-bob").unwrap();
    let r = f.wait(&flow_id, Duration::from_millis(1));
    assert!(matches!(r, Response::DeviceFailed { code: DeviceFailure::Timeout, .. }), "{r:?}");
    assert!(flow.abandoned.load(std::sync::atomic::Ordering::Relaxed));
    let grant = [("grant_type", GRANT), ("auth_req_id", "req-1")];
    match f.poll(TOK, "push", &ClientAuth::Public, &grant, 1, Duration::from_secs(60), Some(&flow)) {
        State::Failed(DeviceFailure::Abandoned, why) => assert!(why.contains("stopped waiting"), "{why}"),
        other => panic!("{other:?}"),
    }
    t.done(); // no request was made
}

/// An IdP that refuses the request (unknown user) ends it as denied; one
/// without auth_req_id is an error; a hint with a newline, a space or an
/// invisible character is never sent.
#[test]
fn refused_and_malformed_backchannel_answers_end_the_login() {
    let dir = crate::testing::temp_dir("ciba-refused");
    let (f, t, _) = setup(&dir);
    discovery(&t);
    t.expect("POST", BC, reply(400, json!({"error": "unknown_user_id"})));
    let r = f.start_ciba(ISS, "x-nobody", "sshd", "192.0.2.1", &[], None);
    assert!(matches!(r, Response::DeviceFailed { code: DeviceFailure::Denied, .. }), "{r:?}");
    discovery(&t);
    t.expect("POST", BC, reply(200, json!({"expires_in": 120})));
    let r = f.start_ciba(ISS, "x-nobody", "sshd", "192.0.2.2", &[], None);
    assert!(
        matches!(r, Response::DeviceFailed { code: DeviceFailure::Error, ref reason } if reason.contains("auth_req_id"))
    );
    for bad in ["x-a\nb", "x-a b", "x-al\u{202e}ice", "x-\u{200b}"] {
        let r = f.start_ciba(ISS, bad, "sshd", "192.0.2.3", &[], None);
        assert!(
            matches!(r, Response::DeviceFailed { code: DeviceFailure::Error, ref reason } if reason.contains("login hint")),
            "{bad:?}: {r:?}"
        );
    }
    t.done();
}

#[test]
fn binding_messages_are_short_and_plain() {
    let m = binding_message("X7Q2", "sshd", "alice", "web1.example.com", "2001:db8::1");
    assert_eq!(m, "X7Q2 sshd alice on web1.example.com from 2001:db8::1");
    let long = binding_message("X7Q2", "sshd", &"u".repeat(40), &"h".repeat(100), "203.0.113.9");
    assert!(long.len() <= MAX_BINDING && long.ends_with(" from 203.0.113.9"), "{long}");
    assert!(long.contains(&format!(" on {}~ from", "h".repeat(19))), "the host keeps 20 characters: {long}");
    // A long IPv6 address or remote name never pushes the host out; a DNS
    // name keeps its registered domain (the look-alike's start is what is cut).
    let v6 = binding_message("X7Q2", "sshd", "alice", "web1.example.com", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
    assert!(v6.len() <= MAX_BINDING && v6.contains(" on web1.example.com from 2001:db8:aaaa:bbbb"), "{v6}");
    assert!(v6.ends_with('~'), "{v6}");
    let dns = binding_message("X7Q2", "sshd", "alice", "web1", "vpn-gw-01.internal.corp.example.com.aaa.evil.io");
    assert!(dns.len() <= MAX_BINDING && dns.contains(" from ~") && dns.ends_with(".evil.io"), "{dns}");
    let odd = binding_message("X7Q2", "su\u{1b}[2J", "a b\"c", "h<o>st", "");
    assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || " .:_+-#,".contains(c)), "{odd}");
    assert_eq!(code_of([0, 31, 32, 255]).len(), 4);
}
