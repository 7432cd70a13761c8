//! The device poller against a scripted IdP and a fake clock: every path of
//! RFC 8628 §3.5 without waiting a second.

use super::*;
use crate::clock::FakeClock;
use crate::testing::{json, Reply, ScriptedTransport};
use serde_json::json;

const ISS: &str = "https://idp.test";
const DEV: &str = "https://idp.test/device";
const TOK: &str = "https://idp.test/token";
const FORM: &str = "grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=dc-1&client_id=cli";

fn config(extra: &str) -> Config {
    let text = format!(
        "version = 1\n[helperd]\nmax_device_flows = 3\nmax_device_flows_per_host = 2\n{extra}\n\
         [[issuer]]\nurl = \"{ISS}\"\naudiences = [\"cli\"]\ndevice_client_id = \"cli\"\n"
    );
    Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

fn setup() -> (Arc<DeviceFlows>, Arc<ScriptedTransport>, Arc<FakeClock>) {
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(1_800_000_000));
    (Arc::new(DeviceFlows::new(config(""), t.clone(), clock.clone())), t, clock)
}

fn token_reply(status: u16, v: serde_json::Value) -> Reply {
    Reply::Http(status, json(v))
}

fn error(e: &str) -> Reply {
    token_reply(400, json!({"error": e, "error_description": "(test)"}))
}

/// Expect one poll of the token endpoint with the device-code grant.
fn poll_answers(t: &ScriptedTransport, reply: Reply) {
    t.expect_with("POST", TOK, |c| if c.body == FORM { Ok(()) } else { Err(format!("form {}", c.body)) }, reply);
}

fn secs(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs(*s)).collect()
}

fn poll(f: &DeviceFlows, interval: u64, limit: u64) -> State {
    let grant = [("grant_type", GRANT), ("device_code", "dc-1")];
    f.poll(TOK, "cli", &ClientAuth::Public, &grant, interval, Duration::from_secs(limit), None)
}

#[test]
fn pending_then_slow_down_adds_five_seconds_each_time_then_the_token() {
    let (f, t, clock) = setup();
    for r in [
        error("authorization_pending"),
        error("authorization_pending"),
        error("slow_down"),
        error("slow_down"),
        error("authorization_pending"),
        token_reply(200, json!({"id_token": "the.id.token", "access_token": "x"})),
    ] {
        poll_answers(&t, r);
    }
    match poll(&f, 5, 300) {
        State::Done(tok, _) => assert_eq!(tok.expose(), "the.id.token"),
        other => panic!("{other:?}"),
    }
    // RFC 8628 §3.5: slow_down adds 5 s to the interval, for this and every later poll.
    assert_eq!(clock.sleeps(), secs(&[5, 5, 5, 10, 15, 15]));
    t.done();
}

#[test]
fn denied_and_expired_end_the_flow_with_their_own_code() {
    for (e, code) in [("access_denied", "denied"), ("expired_token", "expired"), ("invalid_grant", "error")] {
        let (f, t, _) = setup();
        poll_answers(&t, error("authorization_pending"));
        poll_answers(&t, error(e));
        match poll(&f, 5, 300) {
            State::Failed(c, why) => assert!(c.as_str() == code && why.contains("(test)"), "{e}: {c} {why}"),
            other => panic!("{e}: {other:?}"),
        }
        t.done();
    }
}

#[test]
fn the_hard_deadline_ends_polling_even_under_slow_down() {
    let (f, t, clock) = setup();
    poll_answers(&t, error("authorization_pending"));
    poll_answers(&t, error("authorization_pending"));
    match poll(&f, 5, 12) {
        State::Failed(oidc_core::DeviceFailure::Timeout, why) => assert!(why.contains("12s"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(clock.sleeps(), secs(&[5, 5, 5]), "no poll after the deadline");
    t.done();

    let (f, t, clock) = setup();
    poll_answers(&t, error("slow_down"));
    poll_answers(&t, error("slow_down"));
    assert!(matches!(poll(&f, 5, 30), State::Failed(oidc_core::DeviceFailure::Timeout, _)));
    assert_eq!(clock.sleeps(), secs(&[5, 10, 15]));
    t.done();
}

#[test]
fn an_idp_answering_garbage_ends_the_flow() {
    let cases = [
        (Reply::Http(200, "<html>sign in</html>".into()), "not JSON"),
        (token_reply(200, json!({"access_token": "only"})), "no id_token"),
        (token_reply(400, json!({"message": "nope"})), "without an error code"),
        (token_reply(200, json!({"id_token": 42})), "no id_token"),
    ];
    for (reply, want) in cases {
        let (f, t, _) = setup();
        poll_answers(&t, reply);
        match poll(&f, 5, 300) {
            State::Failed(oidc_core::DeviceFailure::Error, why) => assert!(why.contains(want), "{want}: {why}"),
            other => panic!("{want}: {other:?}"),
        }
        t.done();
    }
}

/// A proxy's or a restarting IdP's error page (502, 503, 504, 429) is not the
/// IdP's answer: polled again at the next interval, like a connection error.
#[test]
fn a_gateway_error_page_is_retried_not_taken_as_the_answer() {
    let (f, t, clock) = setup();
    poll_answers(&t, Reply::Http(502, "<html>Bad Gateway</html>".into()));
    poll_answers(&t, Reply::Http(503, "Service Unavailable".into()));
    poll_answers(&t, token_reply(200, json!({"id_token": "after.the.outage"})));
    assert!(matches!(poll(&f, 5, 300), State::Done(..)));
    t.done();
    assert_eq!(clock.sleeps(), secs(&[5, 5, 5]));
}

#[test]
fn an_unreachable_token_endpoint_is_retried_until_the_deadline() {
    // A pooled connection the IdP (or a load balancer) closed while idle:
    // the poll is sent again at once, not an interval later.
    let (f, t, clock) = setup();
    t.expect("POST", TOK, Reply::Fail("io: Connection reset by peer (os error 104)".into()));
    poll_answers(&t, token_reply(200, json!({"id_token": "late.but.fine"})));
    assert!(matches!(poll(&f, 5, 300), State::Done(..)));
    t.done();
    assert_eq!(clock.sleeps(), secs(&[5]));

    // Still failing: once more at once, then at the next interval.
    let (f, t, clock) = setup();
    for _ in 0..6 {
        t.expect("POST", TOK, Reply::Fail("timed out".into()));
    }
    assert!(matches!(poll(&f, 5, 20), State::Failed(oidc_core::DeviceFailure::Timeout, _)));
    assert_eq!(clock.sleeps(), secs(&[5, 5, 5, 5]));
    t.done();
}

#[test]
fn a_flow_whose_login_process_is_gone_ends_without_polling() {
    let (f, t, _) = setup();
    let me = std::process::id() as i32;
    let gone = crate::server::Peer { uid: 0, pid: me, start: crate::procfs::start_time(me).map(|s| s + 1) };
    let grant = [("grant_type", GRANT), ("device_code", "dc-1")];
    let flow = Flow::new(Duration::ZERO, String::new(), Some(gone), String::new());
    match f.poll(TOK, "cli", &ClientAuth::Public, &grant, 5, Duration::from_secs(300), Some(&flow)) {
        State::Failed(oidc_core::DeviceFailure::Abandoned, why) => assert!(why.contains(&me.to_string()), "{why}"),
        other => panic!("{other:?}"),
    }
    t.done();
}

fn discovery(t: &ScriptedTransport, issuer: &str, dev: &str) {
    let doc = json!({"issuer": issuer, "device_authorization_endpoint": dev, "token_endpoint": TOK});
    t.expect("GET", &format!("{ISS}/.well-known/openid-configuration"), Reply::Http(200, json(doc)));
}

#[test]
fn start_then_wait_hands_over_the_id_token() {
    let (f, t, clock) = setup();
    discovery(&t, ISS, DEV);
    t.expect_with(
        "POST",
        DEV,
        |c| if c.body == "client_id=cli&scope=openid profile" { Ok(()) } else { Err(c.body.clone()) },
        token_reply(
            200,
            json!({"device_code": "dc-1", "user_code": "ABCD-EFGH", "verification_uri": "https://idp.test/activate",
                   "expires_in": 600, "interval": 2}),
        ),
    );
    poll_answers(&t, error("authorization_pending"));
    poll_answers(&t, token_reply(200, json!({"id_token": "the.id.token"})));
    let r = f.start(ISS, "198.51.100.7", None);
    let Response::DeviceStarted { flow_id, user_code, expires_in, .. } = r else { panic!("not started: {r:?}") };
    assert_eq!((user_code.as_str(), expires_in), ("ABCD-EFGH", 600));
    match f.wait(&flow_id, Duration::from_secs(10)) {
        Response::DeviceToken { id_token } => assert_eq!(id_token.expose(), "the.id.token"),
        other => panic!("{other:?}"),
    }
    assert_eq!(clock.sleeps(), secs(&[2, 2]));
    assert!(matches!(f.wait(&flow_id, Duration::from_secs(1)), Response::DeviceFailed { .. }), "collected once");
    t.done();
}

#[test]
fn discovery_must_name_the_configured_issuer_and_usable_endpoints() {
    for (issuer, dev, want) in [
        ("https://idp.test/", DEV, "discovery issuer mismatch"),
        ("https://evil.test", DEV, "discovery issuer mismatch"),
        (ISS, "http://idp.test/device", "device_authorization_endpoint"),
    ] {
        let (f, t, _) = setup();
        discovery(&t, issuer, dev);
        match f.start(ISS, "198.51.100.7", None) {
            Response::DeviceFailed { code, reason } => {
                assert!(code.as_str() == "error" && reason.contains(want), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        t.done();
        assert!(f.flows.lock().unwrap().is_empty(), "a failed start leaves no flow behind");
    }
}

#[test]
fn flows_are_capped_per_host_and_in_all_until_they_age_out() {
    let (f, t, clock) = setup();
    assert!(f.reserve("2001:db8:1:2::1", None, "").is_ok());
    assert!(f.reserve("2001:db8:1:2::99", None, "").is_ok());
    let Err(Response::DeviceFailed { code, reason }) = f.reserve("2001:db8:1:2:ffff::1", None, "") else {
        panic!("a third flow from one /64")
    };
    assert!(code.as_str() == "busy" && reason.contains("max_device_flows_per_host"), "{reason}");
    assert!(f.reserve("198.51.100.7", None, "").is_ok());
    let Err(Response::DeviceFailed { reason, .. }) = f.reserve("203.0.113.9", None, "") else {
        panic!("a fourth flow")
    };
    assert!(reason.contains("max_device_flows"), "{reason}");
    // Pending flows are forgotten after an hour (their pollers gave up long before).
    clock.advance(Duration::from_secs(3600));
    assert!(f.reserve("203.0.113.9", None, "").is_ok());
    t.done();
}

#[test]
fn hosts_are_capped_by_address_ipv6_by_prefix() {
    assert_eq!(host_key("2001:db8:1:2:aaaa::1"), host_key("2001:db8:1:2:ffff::9"));
    assert_ne!(host_key("2001:db8:1:2::1"), host_key("2001:db8:1:3::1"));
    assert_eq!(host_key("::ffff:198.51.100.7"), "198.51.100.7");
    assert_eq!(host_key("198.51.100.7"), "198.51.100.7");
    assert_eq!(host_key("host.example"), "host.example");
}

/// Issue 16 (confidential clients): with `device_client_secret_file`, the
/// secret goes with the device authorization request and every poll
/// (client_secret_post), read from the root-only file at each use.
#[test]
fn a_confidential_device_client_sends_its_secret() {
    let dir = crate::testing::temp_dir("device-secret");
    let file = dir.join("client.secret");
    std::fs::write(&file, "s3cret-value\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        "version = 1\n[[issuer]]\nurl = \"{ISS}\"\naudiences = [\"cli\"]\ndevice_client_id = \"cli\"\n\
         device_client_secret_file = \"{}\"\n",
        file.display()
    );
    let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(1_800_000_000));
    let f = Arc::new(DeviceFlows::new(cfg, t.clone(), clock.clone()));
    discovery(&t, ISS, DEV);
    let want = "client_id=cli&scope=openid profile&client_secret=s3cret-value";
    t.expect_with(
        "POST",
        DEV,
        move |c| if c.body == want { Ok(()) } else { Err(c.body.clone()) },
        token_reply(
            200,
            json!({"device_code": "dc-1", "user_code": "ABCD-EFGH", "verification_uri": "https://idp.test/activate"}),
        ),
    );
    let poll_form = format!("{FORM}&client_secret=s3cret-value");
    t.expect_with(
        "POST",
        TOK,
        move |c| if c.body == poll_form { Ok(()) } else { Err(c.body.clone()) },
        token_reply(200, json!({"id_token": "the.id.token"})),
    );
    let Response::DeviceStarted { flow_id, .. } = f.start(ISS, "198.51.100.7", None) else { panic!("not started") };
    assert!(matches!(f.wait(&flow_id, Duration::from_secs(10)), Response::DeviceToken { .. }));
    t.done();
    // A secret file others may read is refused at use too (and at config load).
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    assert!(ClientAuth::load(&f.cfg, ISS, Client::Device).unwrap_err().contains("chmod 600"));
}
