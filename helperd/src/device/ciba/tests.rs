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
    let r = f.start_ciba(ISS, "x-alice", "sshd", "203.0.113.9", None);
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
    assert_eq!(field(&body, "requested_expiry").as_deref(), Some("90"));
    let m = field(&body, "binding_message").unwrap();
    let host = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
    assert!(m.starts_with(&format!("{code} sshd x-alice on ")) && m.ends_with(" from 203.0.113.9"), "{m}");
    assert!(m.contains(&host[..host.len().min(8)]), "{m} names the host");
    t.done();
}

/// Denied: its own code, and then no push to that user for the cooldown;
/// one push waits per user at a time.
#[test]
fn a_denied_push_cools_the_user_down_and_one_waits_per_user() {
    let dir = crate::testing::temp_dir("ciba-deny");
    let (f, t, clock) = setup(&dir);
    discovery(&t);
    t.expect("POST", BC, reply(200, json!({"auth_req_id": "req-1", "expires_in": 120, "interval": 1})));
    t.expect("POST", TOK, reply(400, json!({"error": "access_denied"})));
    let Response::CibaStarted { flow_id, .. } = f.start_ciba(ISS, "x-bob", "sshd", "", None) else { panic!() };
    match f.wait(&flow_id, Duration::from_secs(10)) {
        Response::DeviceFailed { code: DeviceFailure::Denied, reason } => {
            assert!(reason.contains("denied"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Not by another spelling of the name either (IdPs match hints without case).
    for name in ["x-bob", "x-BOB", "x-Bob"] {
        match f.start_ciba(ISS, name, "sshd", "198.51.100.1", None) {
            Response::DeviceFailed { code: DeviceFailure::Busy, reason } => {
                assert!(reason.contains("not approved") && reason.contains("ciba_user_cooldown_secs"), "{reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    t.done();
    clock.advance(Duration::from_secs(31));
    // A pending push holds the user: a second one is refused before any request.
    discovery(&t);
    t.expect("POST", BC, reply(200, json!({"auth_req_id": "req-2", "expires_in": 120, "interval": 60})));
    let first = f.start_ciba(ISS, "x-bob", "sshd", "", None);
    assert!(matches!(first, Response::CibaStarted { .. }), "{first:?}");
    match f.start_ciba(ISS, "x-Bob", "sudo", "", None) {
        Response::DeviceFailed { code: DeviceFailure::Busy, reason } => {
            assert!(reason.contains("already waiting"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    t.done();
}

/// An IdP that refuses the request (unknown user) ends it as denied; one
/// without auth_req_id is an error; a hint with a newline is never sent.
#[test]
fn refused_and_malformed_backchannel_answers_end_the_login() {
    let dir = crate::testing::temp_dir("ciba-refused");
    let (f, t, _) = setup(&dir);
    discovery(&t);
    t.expect("POST", BC, reply(400, json!({"error": "unknown_user_id"})));
    let r = f.start_ciba(ISS, "x-nobody", "sshd", "", None);
    assert!(matches!(r, Response::DeviceFailed { code: DeviceFailure::Denied, .. }), "{r:?}");
    discovery(&t);
    t.expect("POST", BC, reply(200, json!({"expires_in": 120})));
    let r = f.start_ciba(ISS, "x-nobody", "sshd", "", None);
    assert!(
        matches!(r, Response::DeviceFailed { code: DeviceFailure::Error, ref reason } if reason.contains("auth_req_id"))
    );
    let r = f.start_ciba(ISS, "x-a\nb", "sshd", "", None);
    assert!(
        matches!(r, Response::DeviceFailed { code: DeviceFailure::Error, ref reason } if reason.contains("control"))
    );
    t.done();
}

#[test]
fn binding_messages_are_short_and_plain() {
    let m = binding_message("X7Q2", "sshd", "alice", "web1.example.com", "2001:db8::1");
    assert_eq!(m, "X7Q2 sshd alice on web1.example.com from 2001:db8::1");
    let long = binding_message("X7Q2", "sshd", &"u".repeat(40), &"h".repeat(100), "203.0.113.9");
    assert!(long.len() <= MAX_BINDING && long.ends_with(" from 203.0.113.9"), "{long}");
    let odd = binding_message("X7Q2", "su\u{1b}[2J", "a b\"c", "h<o>st", "");
    assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || " .:_+-#,".contains(c)), "{odd}");
    assert_eq!(code_of([0, 31, 32, 255]).len(), 4);
}
