//! The AWS broker against a scripted IMDS and STS and a fake clock: retries
//! and when they stop, renewal before expiry, clock skew, IMDS failures.

use super::*;
use crate::clock::FakeClock;
use crate::testing::{json, Reply, ScriptedTransport};
use oidc_core::parse_rfc3339;

const IMDS: &str = "http://169.254.169.254";
const STS: &str = "https://sts.test/";
const OPS: &str = "arn:aws:iam::123456789012:role/ops";
const DEVS: &str = "arn:aws:iam::123456789012:role/devs";
/// The fake clock's start.
const T0: &str = "2027-01-15T08:00:00Z";

fn t0() -> i64 {
    parse_rfc3339(T0).unwrap()
}

fn broker(extra: &str) -> (Broker, Arc<ScriptedTransport>, Arc<FakeClock>) {
    let text = format!(
        "version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
         [aws]\nregion = \"eu-west-1\"\nsts_endpoint = \"https://sts.test\"\nimds_endpoint = \"{IMDS}\"\n\
         refresh_before_secs = 300\n{extra}\n\
         [[aws.role]]\ngroup = \"ops\"\nrole_arn = \"{OPS}\"\nsource = \"instance\"\nduration_secs = 3600\n\
         tags = {{ login = \"account\" }}\n\
         [[aws.role]]\ngroup = \"devs\"\nrole_arn = \"{DEVS}\"\nsource = \"web_identity\"\nduration_secs = 900\n"
    );
    let cfg = oidc_core::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(t0()));
    (Broker::new(cfg.aws, t.clone(), clock.clone()), t, clock)
}

fn claims(group: &str) -> SessionClaims {
    SessionClaims {
        issuer: "https://idp.test".into(),
        sub: "sub-1".into(),
        account: "alice".into(),
        identity: "alice".into(),
        groups: vec![group.into()],
        idp_groups: vec![],
        jti: None,
        sid: None,
        exp: t0() + 3600,
        iat: t0(),
        auth_time: None,
        acr: None,
        verified_at: t0(),
        identity_id: String::new(),
    }
}

fn creds_xml(key: &str, expiration: &str) -> String {
    format!(
        "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>{key}</AccessKeyId>\
         <SecretAccessKey>secret-{key}</SecretAccessKey><SessionToken>token-{key}</SessionToken>\
         <Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"
    )
}

fn sts_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::Http(
        status,
        format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"),
    )
}

/// IMDSv2: the session token, the role name, the instance role's credentials.
fn imds_ok(t: &ScriptedTransport) {
    t.expect_with(
        "PUT",
        &format!("{IMDS}/latest/api/token"),
        |c| match c.header("X-aws-ec2-metadata-token-ttl-seconds") {
            Some("300") => Ok(()),
            h => Err(format!("ttl header {h:?}")),
        },
        Reply::Http(200, "imds-token".into()),
    );
    let with_token = |c: &crate::testing::Call| match c.header("X-aws-ec2-metadata-token") {
        Some("imds-token") => Ok(()),
        h => Err(format!("token header {h:?}")),
    };
    let creds = format!("{IMDS}/latest/meta-data/iam/security-credentials/");
    t.expect_with("GET", &creds, with_token, Reply::Http(200, "instance-role\n".into()));
    let body = json(serde_json::json!({
        "Code": "Success", "AccessKeyId": "ASIAINSTANCE", "SecretAccessKey": "instance-secret",
        "Token": "instance-token", "Expiration": "2027-01-15T14:00:00Z"
    }));
    t.expect_with("GET", &format!("{creds}instance-role"), with_token, Reply::Http(200, body));
}

fn sts_ok(t: &ScriptedTransport, key: &str, expiration: &str) {
    t.expect("POST", STS, Reply::Http(200, creds_xml(key, expiration)));
}

fn failed(o: Outcome) -> (bool, &'static str, String) {
    match o {
        Outcome::Failed { required, code, reason } => (required, code, reason),
        Outcome::Granted(m) => panic!("granted: {m}"),
        Outcome::NoRole => panic!("no role"),
    }
}

#[test]
fn instance_role_assume_role_is_signed_at_the_clocks_time_and_tagged() {
    let (b, t, _) = broker("");
    imds_ok(&t);
    t.expect_with(
        "POST",
        STS,
        |c| {
            let auth = c.header("authorization").unwrap_or("");
            let checks = [
                (
                    auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAINSTANCE/20270115/eu-west-1/sts/aws4_request"),
                    "auth",
                ),
                (c.header("x-amz-date") == Some("20270115T080000Z"), "signed at the fake clock's time"),
                (c.header("x-amz-security-token") == Some("instance-token"), "session token"),
                (c.body.contains("Action=AssumeRole&"), "action"),
                (c.body.contains("RoleSessionName=alice") && c.body.contains("SourceIdentity=sub-1"), "names"),
                (c.body.contains("Tags.member.1.Key=login&Tags.member.1.Value=alice"), "tags"),
                (c.body.contains("DurationSeconds=3600"), "duration"),
            ];
            match checks.iter().find(|(ok, _)| !ok) {
                None => Ok(()),
                Some((_, what)) => Err(format!("{what}: {c:?}")),
            }
        },
        Reply::Http(200, creds_xml("ASIASESSION1", "2027-01-15T09:00:00Z")),
    );
    match b.open(7, &claims("ops"), None) {
        Outcome::Granted(m) => assert!(m.contains(OPS) && m.contains("2027-01-15T09:00:00Z"), "{m}"),
        o => panic!("{:?}", failed(o)),
    }
    let c = b.credentials(7).unwrap();
    assert_eq!(
        (c.access_key_id.as_str(), c.secret.expose(), c.expires_at),
        ("ASIASESSION1", "secret-ASIASESSION1", t0() + 3600)
    );
    assert!(!format!("{c:?}").contains("secret-"), "Debug never shows the secret: {c:?}");
    t.done();
}

#[test]
fn web_identity_sends_the_kept_token_unsigned() {
    let (b, t, _) = broker("");
    t.expect_with(
        "POST",
        STS,
        |c| {
            let ok = c.header("authorization").is_none()
                && c.body.contains("Action=AssumeRoleWithWebIdentity")
                && c.body.contains("WebIdentityToken=the.user.token");
            if ok {
                Ok(())
            } else {
                Err(format!("{c:?}"))
            }
        },
        Reply::Http(200, creds_xml("ASIAWEB", "2027-01-15T08:15:00Z")),
    );
    assert!(b.wants_web_token(&["devs".into()], "https://idp.test") && !b.wants_web_token(&["ops".into()], "x"));
    assert!(matches!(b.open(1, &claims("devs"), Some(Secret::new("the.user.token".into()))), Outcome::Granted(_)));
    t.done();
}

#[test]
fn throttling_is_retried_with_backoff_then_succeeds() {
    let (b, t, clock) = broker("max_attempts = 3");
    t.expect("POST", STS, sts_error(400, "Throttling", "Rate exceeded"));
    t.expect("POST", STS, sts_error(503, "ServiceUnavailable", "busy"));
    sts_ok(&t, "ASIAOK", "2027-01-15T08:15:00Z");
    assert!(matches!(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))), Outcome::Granted(_)));
    let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
    assert_eq!(clock.sleeps(), ms(&[200, 400]), "exponential backoff between attempts");
    t.done();
}

#[test]
fn retrying_stops_at_max_attempts_and_at_the_deadline() {
    let (b, t, clock) = broker("max_attempts = 3");
    for _ in 0..3 {
        t.expect("POST", STS, sts_error(400, "Throttling", "Rate exceeded"));
    }
    let (required, code, reason) = failed(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))));
    assert!(!required && code == "sts-throttled" && reason.contains("after 3 attempts"), "{code}: {reason}");
    assert_eq!(clock.sleeps().len(), 2);
    t.done();

    // 10 attempts allowed, but the next backoff (800 ms) would end past the 1 s deadline.
    let (b, t, clock) = broker("max_attempts = 10\ntimeout_secs = 1");
    for _ in 0..3 {
        t.expect("POST", STS, sts_error(500, "InternalFailure", "oops"));
    }
    let (_, code, reason) = failed(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))));
    assert!(code == "sts-throttled" && reason.contains("after 3 attempts"), "{code}: {reason}");
    assert_eq!(clock.sleeps().len(), 2);
    t.done();
}

#[test]
fn refusals_are_not_retried_and_keep_their_code() {
    for (reply, want) in [
        (sts_error(403, "AccessDenied", "not authorized"), "sts-access-denied"),
        (sts_error(400, "ExpiredTokenException", "token expired"), "sts-expired-token"),
        (
            sts_error(403, "SignatureDoesNotMatch", "Signature expired: 20270115T075000Z is now earlier than ..."),
            "clock-skew",
        ),
        (Reply::Http(200, "<html>captive portal</html>".into()), "sts-error"),
        (Reply::Fail("connection refused".into()), "sts-unreachable"),
    ] {
        let (b, t, clock) = broker("max_attempts = 5");
        t.expect("POST", STS, reply);
        let (_, code, reason) = failed(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))));
        assert_eq!(code, want, "{reason}");
        assert!(clock.sleeps().is_empty(), "{want}: not retried");
        if want == "clock-skew" {
            assert!(reason.contains("check the clock"), "{reason}");
        }
        t.done();
    }
}

#[test]
fn credentials_are_cached_then_renewed_shortly_before_they_expire() {
    let (b, t, clock) = broker("");
    sts_ok(&t, "ASIAONE", "2027-01-15T08:15:00Z");
    assert!(matches!(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))), Outcome::Granted(_)));
    clock.advance(Duration::from_secs(599)); // 301 s left: more than refresh_before_secs
    assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIAONE", "cached: no STS call");
    clock.advance(Duration::from_secs(1)); // 300 s left: renew
    sts_ok(&t, "ASIATWO", "2027-01-15T08:25:00Z");
    assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIATWO");
    assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIATWO", "the renewed ones are cached");
    // A failed renewal serves the still-valid credentials.
    clock.advance(Duration::from_secs(660)); // 08:21, 240 s left
    t.expect("POST", STS, sts_error(403, "AccessDenied", "revoked"));
    assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIATWO");
    assert!(b.describe(1).unwrap().ends_with("until 2027-01-15T08:25:00Z"), "{:?}", b.describe(1));
    // Once they expire, a failed renewal is an error.
    clock.advance(Duration::from_secs(240));
    t.expect("POST", STS, sts_error(403, "AccessDenied", "revoked"));
    assert!(b.credentials(1).unwrap_err().contains("sts-access-denied"));
    t.done();
}

#[test]
fn web_identity_is_not_renewed_past_the_tokens_expiry() {
    let (b, t, clock) = broker("");
    sts_ok(&t, "ASIAONE", "2027-01-15T08:15:00Z");
    assert!(matches!(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))), Outcome::Granted(_)));
    clock.advance(Duration::from_secs(3600)); // the IdP token's exp
    assert!(b.credentials(1).unwrap_err().contains("log in again"));
    t.done();
}

#[test]
fn credentials_already_expired_by_this_hosts_clock_are_refused_as_clock_skew() {
    // The host clock is ahead of AWS's: what STS just issued looks expired.
    let (b, t, _) = broker("");
    sts_ok(&t, "ASIAPAST", "2027-01-15T07:59:59Z");
    let (_, code, reason) = failed(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))));
    assert_eq!(code, "clock-skew", "{reason}");
    assert!(reason.contains("2027-01-15T08:00:00Z") && reason.contains("check the clock"), "{reason}");
    t.done();
}

#[test]
fn credentials_far_in_the_future_are_cached_and_not_renewed() {
    // A host clock far behind AWS's: Expiration looks days away. Today they
    // are served from the cache without renewal (see the report: they are
    // not capped to DurationSeconds).
    let (b, t, clock) = broker("");
    sts_ok(&t, "ASIAFUTURE", "2027-02-15T08:00:00Z");
    assert!(matches!(b.open(1, &claims("devs"), Some(Secret::new("tok".into()))), Outcome::Granted(_)));
    clock.advance(Duration::from_secs(3000));
    assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIAFUTURE");
    t.done();
}

#[test]
fn imds_failures_have_their_own_codes_and_never_fall_back_to_imdsv1() {
    let token_url = format!("{IMDS}/latest/api/token");
    let creds = format!("{IMDS}/latest/meta-data/iam/security-credentials/");
    type Script<'a> = Box<dyn Fn(&ScriptedTransport) + 'a>;
    let cases: Vec<(Script, &str)> = vec![
        (
            Box::new(|t| {
                t.expect("PUT", &token_url, Reply::Fail("connection refused".into()));
            }),
            "imds-unreachable",
        ),
        (
            Box::new(|t| {
                t.expect("PUT", &token_url, Reply::Http(403, String::new()));
            }),
            "imdsv2-refused",
        ),
        (
            Box::new(|t| {
                t.expect("PUT", &token_url, Reply::Http(200, "imds-token".into()));
                t.expect("GET", &creds, Reply::Http(404, String::new()));
            }),
            "imds-error",
        ),
        (
            Box::new(|t| {
                t.expect("PUT", &token_url, Reply::Http(200, "imds-token".into()));
                t.expect("GET", &creds, Reply::Http(200, String::new()));
            }),
            "imds-error",
        ),
        (
            Box::new(|t| {
                t.expect("PUT", &token_url, Reply::Http(200, "imds-token".into()));
                t.expect("GET", &creds, Reply::Http(200, "r\n".into()));
                t.expect("GET", &format!("{creds}r"), Reply::Http(200, "{\"AccessKeyId\": \"A\"}".into()));
            }),
            "imds-error",
        ),
    ];
    for (script, want) in cases {
        let (b, t, _) = broker("");
        script(&t);
        let (_, code, reason) = failed(b.open(1, &claims("ops"), None));
        assert_eq!(code, want, "{reason}");
        t.done();
    }
}

#[test]
fn sessions_without_a_role_and_ended_sessions_get_nothing() {
    let (b, t, _) = broker("");
    assert!(matches!(b.open(1, &claims("nobody"), None), Outcome::NoRole));
    assert!(b.credentials(1).is_err());
    sts_ok(&t, "ASIAONE", "2027-01-15T08:15:00Z");
    assert!(matches!(b.open(2, &claims("devs"), Some(Secret::new("tok".into()))), Outcome::Granted(_)));
    b.forget(&[]);
    assert!(b.credentials(2).is_err() && b.describe(2).is_none());
    t.done();

    let (b, t, _) = broker("require_credentials = true");
    let (required, code, _) = failed(b.open(1, &claims("nobody"), None));
    assert!(required && code == "no-role");
    t.done();
}

#[test]
fn sts_names_and_forms() {
    assert_eq!(sts_name("alice"), "alice");
    assert_eq!(sts_name("a b/c"), "a-b-c");
    assert_eq!(sts_name("x"), "x-");
    assert_eq!(sts_name(&"y".repeat(100)).len(), 64);
    assert_eq!(crate::fetch::form_encode(&[("a b".into(), "x/y=z".into())]), "a%20b=x%2Fy%3Dz");
    let xml = "<R><Error><Code>AccessDenied</Code><Message>no</Message></Error></R>";
    assert_eq!(sts::xml_text(xml, "Code").as_deref(), Some("AccessDenied"));
    assert_eq!(sts::xml_text(xml, "Nope"), None);
}

/// A transport that holds the next POST (an STS call) until released: a
/// renewal that hangs at STS for its whole deadline.
struct Gate {
    inner: Arc<ScriptedTransport>,
    armed: std::sync::atomic::AtomicBool,
    entered: Mutex<std::sync::mpsc::Sender<()>>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Transport for Gate {
    fn get(&self, url: &str) -> Result<crate::fetch::Fetched, String> {
        self.inner.get(url)
    }
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let answer = self.inner.send(method, url, headers, body);
        if method == "POST" && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.release.lock().unwrap().recv();
        }
        answer
    }
}

/// Nothing one session's user can do may hold up another's credentials or a
/// login: a renewal waiting on STS (up to `timeout_secs`) holds no lock the
/// other sessions, `open` or `forget` need.
#[test]
fn a_renewal_waiting_on_sts_blocks_no_other_session() {
    let text = format!(
        "version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
         [aws]\nregion = \"eu-west-1\"\nsts_endpoint = \"https://sts.test\"\nimds_endpoint = \"{IMDS}\"\n\
         refresh_before_secs = 300\n\
         [[aws.role]]\ngroup = \"devs\"\nrole_arn = \"{DEVS}\"\nsource = \"web_identity\"\nduration_secs = 900\n"
    );
    let cfg = oidc_core::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let t = ScriptedTransport::new();
    let gate = Arc::new(Gate {
        inner: t.clone(),
        armed: false.into(),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let clock = FakeClock::at(t0());
    let b = Broker::new(cfg.aws, gate.clone(), clock.clone());
    sts_ok(&t, "ASIAONE", "2027-01-15T08:15:00Z");
    sts_ok(&t, "ASIABOB", "2027-01-15T09:00:00Z");
    assert!(matches!(b.open(1, &claims("devs"), Some(Secret::new("tok-1".into()))), Outcome::Granted(_)));
    assert!(matches!(b.open(2, &claims("devs"), Some(Secret::new("tok-2".into()))), Outcome::Granted(_)));
    clock.advance(Duration::from_secs(600)); // session 1 renews, session 2's are fresh
    sts_ok(&t, "ASIATWO", "2027-01-15T08:30:00Z");
    sts_ok(&t, "ASIATHREE", "2027-01-15T08:45:00Z");
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::scope(|s| {
        let renewing = s.spawn(|| b.credentials(1));
        entered.recv_timeout(Duration::from_secs(5)).expect("session 1's renewal reached STS");
        let (done_tx, done) = std::sync::mpsc::channel();
        let b = &b;
        s.spawn(move || {
            let other = b.credentials(2).map(|c| c.access_key_id);
            let opened = matches!(b.open(3, &claims("devs"), Some(Secret::new("tok-3".into()))), Outcome::Granted(_));
            b.forget(&[1, 2, 3]);
            let _ = done_tx.send((other, opened));
        });
        let got = done.recv_timeout(Duration::from_secs(5));
        let _ = release.send(());
        let (other, opened) = got.expect("another session, a login and forget() waited behind session 1's STS call");
        assert_eq!(other.unwrap(), "ASIABOB");
        assert!(opened);
        assert_eq!(renewing.join().unwrap().unwrap().access_key_id, "ASIATWO");
    });
}

/// Issue 15: an instance-role session kept credentials coming long after its
/// token expired (IMDS mints at will). Now nothing is served past the
/// token's exp plus `aws.token_grace_secs` — neither renewed nor cached
/// credentials — whatever the source.
#[test]
fn no_credentials_are_served_past_the_tokens_exp_plus_grace() {
    for grace in [0u64, 120] {
        let (b, t, clock) = broker(&format!("token_grace_secs = {grace}"));
        imds_ok(&t);
        sts_ok(&t, "ASIAONE", "2027-01-15T09:00:00Z");
        let mut c = claims("ops");
        c.exp = t0() + 600; // a 10-minute token; the role's credentials last an hour
        assert!(matches!(b.open(1, &c, None), Outcome::Granted(_)));
        clock.advance(Duration::from_secs(599));
        assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIAONE", "cached while the token is valid");
        clock.advance(Duration::from_secs(1)); // exp
        if grace > 0 {
            // Within the grace: still served (cached, no new call).
            clock.advance(Duration::from_secs(grace - 1));
            assert_eq!(b.credentials(1).unwrap().access_key_id, "ASIAONE");
            clock.advance(Duration::from_secs(1));
        }
        // exp + grace: refused, though the cached ones are valid until 09:00 and IMDS would mint more.
        let e = b.credentials(1).unwrap_err();
        assert!(e.contains("token expired") && e.contains(&format!("token_grace_secs={grace}")), "{e}");
        clock.advance(Duration::from_secs(3600));
        assert!(b.credentials(1).is_err(), "never again for this session");
        t.done();
    }
}
