//! The SET poller over a scripted transmitter: the request (bearer token,
//! maxEvents, returnImmediately, acks), verified SETs turned into actions,
//! acks and setErrs for the next request, and nothing acked that could not be
//! applied.

use super::*;
use crate::testing::{Reply, ScriptedTransport};
use oidc_core::{Config, KeyStore};
use std::sync::Mutex;

const ISS: &str = "https://idp.test";
const AUD: &str = "https://hosts.example.com";
const POLL: &str = "https://idp.test/ssf/poll";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes-long";
const NOW: i64 = 1_800_000_000;

fn cfg() -> Config {
    let text = format!(
        "version = 1\n[[issuer]]\nurl = \"{ISS}\"\naliases = [\"https://alias.idp.test\"]\naudiences = [\"a\"]\n\
         algorithms = [\"HS256\"]\nhmac_secret_file = \"/nonexistent\"\n\
         [[locks.ssf]]\nissuer = \"{ISS}\"\npoll_url = \"{POLL}\"\naudience = \"{AUD}\"\ntoken_file = \"/nonexistent\"\nmax_events = 5\n"
    );
    Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

struct Hs;

impl KeyStore for Hs {
    fn cached(&self, _: &str) -> Result<(oidc_core::CacheFile, oidc_core::Jwks), String> {
        Err("no JWKS".into())
    }
    fn hmac_secret(&self, _: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        Ok(zeroize::Zeroizing::new(SECRET.as_bytes().to_vec()))
    }
    fn refresh(&mut self, _: &str) -> Result<String, String> {
        Err("no".into())
    }
}

/// Records the actions; `fail` makes `act` fail.
struct Rec {
    cfg: Config,
    acted: Mutex<Vec<Action>>,
    fail: bool,
}

impl Edges for Rec {
    fn verify(&mut self, set: &str) -> Result<SecEvent, Rejection> {
        oidc_core::verify_set_with(&self.cfg, set, ISS, AUD, NOW, &mut Hs)
    }
    fn bearer(&self) -> Result<String, String> {
        Ok("stream-token".into())
    }
    fn act(&self, a: &Action) -> Result<String, String> {
        if self.fail {
            return Err("the locks file is not writable".into());
        }
        self.acted.lock().unwrap().push(a.clone());
        Ok("done".into())
    }
}

fn set(jti: &str, event: &str, subject: Value, aud: &str) -> String {
    let claims = json!({"iss": ISS, "aud": aud, "iat": NOW - 1, "jti": jti, "events": {event: {"subject": subject}}});
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.typ = Some("secevent+jwt".into());
    oidc_core::crypto::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

fn iss_sub(iss: &str, sub: &str) -> Value {
    json!({"format": "iss_sub", "iss": iss, "sub": sub})
}

fn sets(pairs: &[(&str, String)], more: bool) -> Reply {
    let m: serde_json::Map<String, Value> = pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    Reply::Headers(200, vec![], json!({"sets": m, "moreAvailable": more}).to_string())
}

/// Expect a poll whose body has exactly these acks and setErrs codes.
fn expect_poll(
    t: &ScriptedTransport,
    acks: &'static [&'static str],
    errs: &'static [(&'static str, &'static str)],
    reply: Reply,
) {
    t.expect_with(
        "POST",
        POLL,
        move |c| {
            let b: Value = serde_json::from_str(&c.body).map_err(|e| e.to_string())?;
            if c.header("authorization") != Some("Bearer stream-token") {
                return Err("no bearer token".into());
            }
            if b["maxEvents"] != json!(5) || b["returnImmediately"] != json!(true) {
                return Err(format!("body {b}"));
            }
            let got: Vec<&str> = b["ack"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            if got != acks {
                return Err(format!("acks {got:?}, want {acks:?}"));
            }
            let got: Vec<(String, String)> = b
                .get("setErrs")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v["err"].as_str().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            let want: Vec<(String, String)> = errs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            if got != want {
                return Err(format!("setErrs {got:?}, want {want:?}"));
            }
            Ok(())
        },
        reply,
    );
}

fn stream(t: &Arc<ScriptedTransport>) -> Stream {
    let c = cfg();
    Stream::new(c.locks.ssf[0].clone(), c.issuers[0].clone(), t.clone())
}

#[test]
fn revoked_sessions_end_disabled_accounts_lock_and_every_set_is_acked_or_refused() {
    let t = ScriptedTransport::new();
    let mut s = stream(&t);
    let mut rec = Rec { cfg: cfg(), acted: Mutex::new(vec![]), fail: false };
    expect_poll(
        &t,
        &[],
        &[],
        sets(
            &[
                ("j1", set("j1", SESSION_REVOKED, iss_sub(ISS, "u-1"), AUD)),
                ("j2", set("j2", ACCOUNT_DISABLED, iss_sub("https://alias.idp.test", "u-2"), AUD)),
                (
                    "j3",
                    set(
                        "j3",
                        "https://schemas.openid.net/secevent/caep/event-type/credential-change",
                        iss_sub(ISS, "u-3"),
                        AUD,
                    ),
                ),
                ("j4", set("j4", SESSION_REVOKED, iss_sub(ISS, "u-4"), "https://other")),
                ("j5", set("j5", ACCOUNT_DISABLED, json!({"format": "email", "email": "alice@example.com"}), AUD)),
            ],
            true,
        ),
    );
    // More available, and acks owed: at once again.
    expect_poll(
        &t,
        &["j1", "j2", "j3"],
        &[("j4", "invalid_audience"), ("j5", "invalid_request")],
        sets(
            &[
                ("j6", set("j6", ACCOUNT_ENABLED, iss_sub(ISS, "u-2"), AUD)),
                ("j7", set("j7", SESSION_REVOKED, iss_sub("https://evil.test", "u-1"), AUD)),
                ("not-j8", set("j8", SESSION_REVOKED, iss_sub(ISS, "u-1"), AUD)),
            ],
            false,
        ),
    );
    expect_poll(&t, &["j6"], &[("j7", "invalid_request"), ("not-j8", "invalid_request")], sets(&[], false));
    assert_eq!(s.poll(&mut rec), Ok(8));
    let acted = rec.acted.lock().unwrap().clone();
    assert_eq!(
        acted,
        [
            Action::EndSessions { issuer: ISS.into(), sub: "u-1".into(), why: "session-revoked SET j1".into() },
            Action::Lock { issuer: ISS.into(), sub: "u-2".into(), why: "account-disabled SET j2".into() },
            Action::Unlock { issuer: ISS.into(), sub: "u-2".into() },
        ],
        "an alias's subject is the issuer's; another issuer's never"
    );
    t.done();
}

#[test]
fn what_could_not_be_applied_is_not_acked_and_a_failed_poll_keeps_the_acks() {
    let t = ScriptedTransport::new();
    let mut s = stream(&t);
    let mut failing = Rec { cfg: cfg(), acted: Mutex::new(vec![]), fail: true };
    expect_poll(&t, &[], &[], sets(&[("j1", set("j1", ACCOUNT_DISABLED, iss_sub(ISS, "u-1"), AUD))], false));
    assert_eq!(s.poll(&mut failing), Ok(1));
    // Redelivered, applied this time; the poll that would ack it fails.
    let mut rec = Rec { cfg: cfg(), acted: Mutex::new(vec![]), fail: false };
    expect_poll(&t, &[], &[], sets(&[("j1", set("j1", ACCOUNT_DISABLED, iss_sub(ISS, "u-1"), AUD))], false));
    expect_poll(&t, &["j1"], &[], Reply::Headers(503, vec![], "busy".into()));
    assert!(s.poll(&mut rec).unwrap_err().contains("HTTP 503"));
    assert_eq!(s.next_in(), Duration::from_secs(120), "backing off");
    expect_poll(&t, &["j1"], &[], sets(&[], false));
    assert_eq!(s.poll(&mut rec), Ok(0));
    assert_eq!(s.next_in(), Duration::from_secs(60));
    assert_eq!(rec.acted.lock().unwrap().len(), 1);
    // A transmitter that sends more than asked, or no sets object: an error, nothing applied.
    let many: Vec<(&str, String)> = ["a", "b", "c", "d", "e", "f"].iter().map(|k| (*k, String::new())).collect();
    expect_poll(&t, &[], &[], sets(&many, false));
    assert!(s.poll(&mut rec).unwrap_err().contains("more than maxEvents"));
    expect_poll(&t, &[], &[], Reply::Headers(200, vec![], "{}".into()));
    assert!(s.poll(&mut rec).unwrap_err().contains("without a sets object"));
    t.done();
}

#[test]
fn the_token_file_must_be_roots_alone() {
    let dir = crate::testing::temp_dir("ssf-token");
    let f = dir.join("token");
    std::fs::write(&f, "stream-token\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(read_token(&f).unwrap_err().contains("chmod 600"));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(read_token(&f).unwrap(), "stream-token");
    } else {
        assert!(read_token(&f).unwrap_err().contains("not root"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
