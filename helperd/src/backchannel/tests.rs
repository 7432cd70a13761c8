//! The receiver over a real loopback socket, on `Services` built on fakes (a
//! fake clock, a scripted transport, a temporary state and cache directory
//! holding the IdP's keys), with real sessions bound to real processes.

use super::*;
use crate::clock::FakeClock;
use crate::testing::{temp_dir, ScriptedTransport};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

const ISS: &str = "https://idp.test";
const T0: i64 = 1_800_000_000;

struct World {
    svc: Arc<Services>,
    addr: SocketAddr,
    dir: PathBuf,
    procs: Vec<std::process::Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keys() -> Value {
    serde_json::from_str(include_str!("../../../oidc_core/tests/fixtures/test-keys.json")).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// helperd's services, the IdP's keys in its cache, and the receiver on a
/// free loopback port (HTTPS with the test certificate when `tls`).
fn world(tag: &str, tls: bool) -> World {
    let dir = temp_dir(&format!("bcl-{tag}"));
    std::fs::write(dir.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("group"), "root:x:0:\n").unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let text = format!(
        "version = 1\n[helperd]\ncache_dir = \"{d}/cache\"\nstate_dir = \"{d}/state\"\nnss_snapshot = \"{d}/snapshot\"\n\
         [accounts]\nid_key_file = \"{d}/no-id-key\"\npasswd_file = \"{d}/passwd\"\ngroup_file = \"{d}/group\"\n\
         [[issuer]]\nurl = \"{ISS}\"\naudiences = [\"host-login\"]\nalgorithms = [\"RS256\"]\nleeway_secs = 30\n",
        d = dir.display()
    );
    let cfg = oidc_core::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let file = oidc_core::CacheFile {
        v: oidc_core::JWKS_CACHE_VERSION,
        issuer: ISS.into(),
        jwks_uri: format!("{ISS}/jwks"),
        fetched_at: T0 - 60,
        expires_at: i64::MAX / 2,
        jwks: json!({"keys": [keys()["rsa"]["jwk"]]}),
    };
    let p = oidc_core::jwks_cache_path(&cfg.helperd.cache_dir, ISS);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_vec(&file).unwrap()).unwrap();
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(T0));
    let svc = Arc::new(Services {
        keys: crate::keys::KeyCache::new(cfg.clone(), Box::new(t.clone())),
        accounts: crate::accounts::AccountService::open(cfg.clone()).unwrap(),
        sessions: crate::sessions::Sessions::new(clock.clone(), Duration::from_secs(5)),
        device: Arc::new(crate::device::DeviceFlows::new(cfg.clone(), t.clone(), clock.clone())),
        aws: crate::aws::Broker::new(cfg.aws.clone(), t.clone(), clock.clone()),
        replay: crate::replay::ReplayCache::open(&dir.join("state"), T0),
        locks: crate::locks::Locks::open(&dir.join("state")),
        clock,
    });
    let tls = tls.then(|| Tls::open(&fixture("bcl-test-cert.pem"), &fixture("bcl-test-key.pem")).unwrap());
    let addr = serve(TcpListener::bind("127.0.0.1:0").unwrap(), tls, Arc::clone(&svc)).unwrap().unwrap();
    World { svc, addr, dir, procs: vec![] }
}

impl World {
    /// A live session of `sub` (its ID token had `sid`), bound to a new `sleep` process.
    fn session(&mut self, sub: &str, sid: Option<&str>) -> (u64, i32) {
        let child = crate::testing::sleeper(300);
        let pid = child.id() as i32;
        self.procs.push(child);
        let claims = oidc_core::SessionClaims {
            issuer: ISS.into(),
            sub: sub.into(),
            account: sub.trim_start_matches("u-").into(),
            identity: sub.trim_start_matches("u-").into(),
            groups: vec![],
            idp_groups: vec![],
            jti: None,
            sid: sid.map(str::to_string),
            exp: T0 + 600,
            iat: T0 - 60,
            auth_time: None,
            acr: None,
            verified_at: T0 - 60,
            identity_id: String::new(),
        };
        let id = self.svc.sessions.add_pending(claims, None).unwrap();
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        (self.svc.sessions.open(&id, uid, pid, "", "", |_| None).unwrap().0, pid)
    }

    /// Has the process of a session ended (reaped here)?
    fn gone(&mut self, pid: i32) -> bool {
        let c = self.procs.iter_mut().find(|c| c.id() as i32 == pid).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if c.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn alive(&mut self, pid: i32) -> bool {
        let c = self.procs.iter_mut().find(|c| c.id() as i32 == pid).unwrap();
        c.try_wait().unwrap().is_none()
    }

    /// One raw HTTP exchange: (status, headers + body).
    fn send(&self, raw: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0), out)
    }

    fn post_form(&self, body: &str) -> (u16, String) {
        let req = format!(
            "POST /backchannel-logout HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(req.as_bytes())
    }

    fn post(&self, token: &str) -> (u16, String) {
        self.post_form(&format!(
            "logout_token={}",
            form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        ))
    }
}

fn sign_header(h: Header, claims: &Value) -> String {
    let k = EncodingKey::from_rsa_pem(keys()["rsa"]["pem"].as_str().unwrap().as_bytes()).unwrap();
    oidc_core::crypto::encode(&h, claims, &k).unwrap()
}

fn sign(claims: &Value) -> String {
    let h = Header { typ: Some("logout+jwt".into()), kid: Some("rsa1".into()), ..Header::new(Algorithm::RS256) };
    sign_header(h, claims)
}

fn logout(jti: &str, sub: Option<&str>, sid: Option<&str>) -> Value {
    let mut c = json!({"iss": ISS, "aud": "host-login", "iat": T0 - 2, "exp": T0 + 118, "jti": jti,
                       "events": {oidc_core::BACKCHANNEL_LOGOUT_EVENT: {}}});
    if let Some(s) = sub {
        c["sub"] = json!(s);
    }
    if let Some(s) = sid {
        c["sid"] = json!(s);
    }
    c
}

/// The IdP's valid logout tokens end exactly the sessions they name, at once
/// (claims, AWS credentials, the processes); one that names no session is
/// still a 200; the same token again is a 400 and ends nothing.
#[test]
fn a_logout_token_ends_the_sessions_it_names_once() {
    let mut w = world("ends", false);
    let (a1, pa1) = w.session("u-alice", Some("sid-1"));
    let (a2, pa2) = w.session("u-alice", Some("sid-2"));
    let (b, pb) = w.session("u-bob", Some("sid-3"));
    let tok = sign(&logout("lt-1", Some("u-alice"), Some("sid-1")));
    let t = Instant::now();
    let (status, resp) = w.post(&tok);
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("Cache-Control: no-store"), "{resp}");
    assert!(w.gone(pa1), "alice's sid-1 session's process ended");
    eprintln!("POST to the process gone: {:?}", t.elapsed());
    assert_eq!(w.svc.sessions.ids(), vec![a2, b], "session {a1} dropped; her other IdP session stays");
    assert!(w.alive(pa2) && w.alive(pb));
    // Replayed: refused, nothing more ends.
    let (status, resp) = w.post(&tok);
    assert_eq!(status, 400, "{resp}");
    assert!(resp.contains("\"error\":\"invalid_request\"") && resp.contains("replayed"), "{resp}");
    assert!(resp.contains("Content-Type: application/json") && resp.contains("Cache-Control: no-store"), "{resp}");
    // By sub: every session of bob.
    assert_eq!(w.post(&sign(&logout("lt-2", Some("u-bob"), None))).0, 200);
    assert!(w.gone(pb));
    assert_eq!(w.svc.sessions.ids(), vec![a2]);
    // By sid alone.
    assert_eq!(w.post(&sign(&logout("lt-3", None, Some("sid-2")))).0, 200);
    assert!(w.gone(pa2));
    assert!(w.svc.sessions.ids().is_empty());
    // Valid, but no live session: still 200 (§2.8).
    assert_eq!(w.post(&sign(&logout("lt-4", Some("u-carol"), None))).0, 200);
    // The replay record survives a restart of helperd.
    let again = crate::replay::ReplayCache::open(&w.dir.join("state"), T0);
    assert!(again.reserve(ISS, "logout-jti:lt-1", T0 + 700, T0).is_err());
}

/// Forged and wrong tokens get a 400 naming the reason; the session lives.
#[test]
fn attacker_tokens_are_refused_and_the_session_lives() {
    let mut w = world("refused", false);
    let (id, pid) = w.session("u-alice", Some("sid-1"));
    let good = logout("lt-x", Some("u-alice"), Some("sid-1"));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        sign(&c)
    };
    let valid = sign(&good);
    let (head, _) = valid.rsplit_once('.').unwrap();
    let other_key = EncodingKey::from_rsa_pem(keys()["rsa_other"]["pem"].as_str().unwrap().as_bytes()).unwrap();
    let h = Header { typ: Some("logout+jwt".into()), kid: Some("rsa1".into()), ..Header::new(Algorithm::RS256) };
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("forged", oidc_core::crypto::encode(&h, &good, &other_key).unwrap(), "bad-signature"),
        ("tampered", format!("{head}.AAAA"), "bad-signature"),
        ("alg-none", format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good)), "alg-none"),
        ("wrong-aud", with(&|c| c["aud"] = json!("other-app")), "audience-mismatch"),
        ("wrong-iss", with(&|c| c["iss"] = json!("https://evil.test")), "untrusted-issuer"),
        ("with-nonce", with(&|c| c["nonce"] = json!("n")), "nonce: a logout token must not carry a nonce"),
        ("no-event", with(&|c| c["events"] = json!({})), "no http://schemas.openid.net/event/backchannel-logout"),
        ("wrong-event", with(&|c| c["events"] = json!({oidc_core::BACKCHANNEL_LOGOUT_EVENT: 1})), "not a JSON object"),
        ("no-jti", with(&|c| drop(c.as_object_mut().unwrap().remove("jti"))), "missing claim jti"),
        ("future-iat", with(&|c| c["iat"] = json!(T0 + 600)), "issued-in-future"),
        ("old-iat", with(&|c| c["iat"] = json!(T0 - 700)), "a logout token is accepted for 600s"),
        (
            "an-id-token",
            sign_header(
                Header::new(Algorithm::RS256),
                &json!({"iss": ISS, "aud": "host-login",
            "sub": "u-alice", "iat": T0, "exp": T0 + 60, "jti": "id-1", "nonce": "n"}),
            ),
            "missing claim events",
        ),
    ];
    for (name, tok, why) in cases {
        let (status, resp) = w.post(&tok);
        assert_eq!(status, 400, "{name}: {resp}");
        assert!(resp.contains("\"error\":\"invalid_request\"") && resp.contains(why), "{name}: {resp}");
        assert_eq!(w.svc.sessions.ids(), vec![id], "{name}: the session lives");
    }
    assert!(w.alive(pid));
    // The untouched token still works: none of the refusals used up its jti.
    assert_eq!(w.post(&valid).0, 200);
    assert!(w.gone(pid));
}

/// The HTTP rules: POST, the path, the form, one token, a capped body with a
/// length; a silent client does not hold up a logout.
#[test]
fn http_rules() {
    let w = world("http", false);
    let (s, r) = w.send(b"GET /backchannel-logout HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(s == 405 && r.contains("Allow: POST"), "{r}");
    assert_eq!(w.send(b"POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0, 404);
    let json_body =
        "POST /backchannel-logout HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(w.send(json_body.as_bytes()).0, 400);
    assert_eq!(w.send(b"POST /backchannel-logout HTTP/1.1\r\nHost: h\r\n\r\n").0, 411);
    let big = "POST /backchannel-logout HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
               Content-Length: 20000\r\n\r\n";
    assert_eq!(w.send(big.as_bytes()).0, 413);
    assert_eq!(w.send(b"POST /backchannel-logout HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").0, 400);
    assert_eq!(w.send(b"\x16\x03\x01 not http\r\n\r\n").0, 400);
    let (s, r) = w.post_form("logout_token=a&logout_token=b");
    assert!(s == 400 && r.contains("more than one logout_token"), "{r}");
    assert!(w.post_form("token=x").1.contains("no logout_token"));
    // With a query string and `; charset`, and a client that sends nothing meanwhile.
    let _idle = TcpStream::connect(w.addr).unwrap();
    let body = format!("logout_token={}", sign(&logout("lt-q", Some("u-nobody"), None)));
    let req = format!(
        "POST /backchannel-logout?x=1 HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let t = Instant::now();
    assert_eq!(w.send(req.as_bytes()).0, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// HTTPS with the configured certificate: the same exchange over TLS.
#[test]
fn over_tls() {
    let mut w = world("tls", true);
    let (_, pid) = w.session("u-alice", None);
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(fixture("bcl-test-ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, TcpStream::connect(w.addr).unwrap());
    s.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = format!("logout_token={}", sign(&logout("lt-tls", Some("u-alice"), None)));
    let req = format!(
        "POST /backchannel-logout HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(w.gone(pid));
    // Plain HTTP on the TLS port gets nothing.
    assert_eq!(w.post("x").0, 0);
}
