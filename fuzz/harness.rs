//! The fuzz harnesses: one function per target, each taking the fuzzer's bytes.
//! Shared, as source, by the cargo-fuzz targets (fuzz/fuzz_targets/*.rs) and the
//! regression test (tests/tests/fuzz_regressions.rs), so a crash found by the
//! fuzzer is replayed by `cargo test` through exactly the same code.
//!
//! Each harness checks invariants, not just "no panic": a token is only
//! accepted if it meets every rule, a snapshot lookup never answers for another
//! name or id, an IPC message survives a round trip, a config error is one line.

#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey};
use oidc_core::Config;
use oidc_core::Jwks;
use oidc_core::{verify, Keys, Report, Verified};
use oidc_core::{Request, Response};
use serde_json::{json, Value};
use std::path::Path;

pub const TARGETS: [&str; 6] = ["token", "token_claims", "jwks", "snapshot", "ipc", "config"];

/// The clock every token harness runs at.
pub const NOW: i64 = 1_800_000_000;
pub const ISS: &str = "https://idp.test";
const HMAC_SECRET: &[u8] = b"fuzzing-secret-0123456789abcdef!";
const KEYS: &str = include_str!("../oidc_core/tests/fixtures/test-keys.json");

const CONFIG: &str = r#"version = 1
[pam]
max_token_bytes = 16384
[[issuer]]
url = "https://idp.test"
audiences = ["host"]
algorithms = ["RS256", "ES256", "EdDSA", "HS256"]
hmac_secret_file = "/nonexistent/fuzz-secret"
leeway_secs = 60
"#;

/// Built once per process: the config and the issuer's public keys.
struct Fixture {
    cfg: Config,
    jwks: Jwks,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let k: Value = serde_json::from_str(KEYS).unwrap_or(Value::Null);
        let cfg = match Config::parse(CONFIG, Path::new("fuzz.toml")) {
            Ok(c) => c,
            Err(e) => panic!("harness config: {e}"),
        };
        let jwks = match Jwks::from_value(&json!({"keys": [k["rsa"]["jwk"], k["ec"]["jwk"], k["ed"]["jwk"]]})) {
            Ok(j) => j,
            Err(e) => panic!("harness jwks: {e}"),
        };
        Fixture { cfg, jwks }
    })
}

/// Verify `token` the way the module does (parse, issuer, keys, claims) at [`NOW`].
fn verify_at_now(token: &str) -> Result<Verified, oidc_core::Rejection> {
    let f = fixture();
    let parsed = oidc_core::parse_token(token, f.cfg.pam.max_token_bytes)?;
    let iss = parsed.issuer()?;
    let icfg = f.cfg.issuer(iss).ok_or_else(|| oidc_core::Rejection::UntrustedIssuer(iss.to_string()))?;
    let keys = Keys { jwks: Some(&f.jwks), hmac_secret: Some(HMAC_SECRET) };
    let mut report = Report::default();
    let r = verify(&parsed, icfg, keys, NOW, &mut report);
    // Every refusal is printable on one log line.
    if let Err(e) = &r {
        assert!(!e.to_string().contains('\n'), "multi-line reason: {e:?}");
    }
    r
}

/// What an accepted token must satisfy, whatever bytes it came from.
fn check_accepted(token: &str, v: &Verified) {
    let f = fixture();
    let icfg = &f.cfg.issuers[0];
    assert_eq!(v.issuer, ISS, "accepted another issuer");
    assert!(token.len() <= f.cfg.pam.max_token_bytes, "accepted an oversize token");
    assert!(icfg.algorithms.contains(&v.alg), "accepted alg {}", v.alg);
    assert!(v.exp.saturating_add(60) >= NOW, "accepted an expired token (exp {})", v.exp);
    assert!(v.iat <= NOW + 60, "accepted a token from the future (iat {})", v.iat);
    assert!(!v.sub.is_empty() && v.sub.len() <= 255, "accepted sub {:?}", v.sub);
    assert!(oidc_core::check_login_name(&v.username).is_ok(), "accepted username {:?}", v.username);
    for g in &v.groups {
        assert!(oidc_core::check_group_name(g).is_ok(), "accepted group {g:?}");
    }
    let aud = match v.claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        other => panic!("accepted aud {other:?}"),
    };
    assert!(aud.iter().any(|a| a == "host"), "accepted aud {aud:?}");
    // The identity model: no reserved name, no foreign azp, no host group that
    // is not a safe name of this issuer's.
    assert!(!nss_snapshot::format::is_reserved(v.username.as_bytes()), "accepted reserved name {:?}", v.username);
    if let Some(azp) = v.claims.get("azp") {
        assert_eq!(azp, &Value::String("host".into()), "accepted a foreign azp");
    }
    let (host, _) = oidc_core::map_groups(&v.groups, icfg, &f.cfg);
    for h in host.iter().filter(|h| !h.explicit) {
        assert!(oidc_core::check_login_name(&h.name).is_ok(), "host group {:?}", h.name);
        assert!(!nss_snapshot::format::is_reserved(h.name.as_bytes()), "reserved host group {:?}", h.name);
        assert_eq!(h.name, h.raw, "a host group is the IdP group itself");
    }
}

/// Target `token`: any bytes as a compact JWS.
pub fn token(data: &[u8]) {
    if let Ok(t) = std::str::from_utf8(data) {
        accepted(t);
    }
}

/// Target `token_claims`: the bytes are the claims (and a header choice), signed
/// with the configured HMAC secret, so the fuzzer reaches every claim check.
pub fn token_claims(data: &[u8]) {
    claims_accepted(data);
}

/// [`token_claims`], telling whether the signed token was accepted.
pub fn claims_accepted(data: &[u8]) -> bool {
    let Some((&sel, payload)) = data.split_first() else { return false };
    let header = match sel % 7 {
        0 => r#"{"alg":"HS256","typ":"JWT"}"#,
        1 => r#"{"alg":"HS256","kid":"k1"}"#,
        2 => r#"{"alg":"HS256","crit":["exp"]}"#,
        3 => r#"{"alg":"HS256","typ":"JWT","alg":"HS256"}"#,
        4 => r#"{"alg":"HS384"}"#,
        5 => r#"{"alg":"HS256","typ":"at+jwt"}"#,
        _ => r#"{"alg":"HS256","jku":"https://evil.test/jwks"}"#,
    };
    let alg = if sel % 7 == 4 { Algorithm::HS384 } else { Algorithm::HS256 };
    let t = sign(header.as_bytes(), payload, alg, &EncodingKey::from_secret(HMAC_SECRET));
    let ok = accepted(&t);
    if ok {
        assert!(matches!(sel % 7, 0 | 1 | 6), "accepted header {header}");
    }
    ok
}

/// Verify `token`; if accepted, check it meets every rule. True if accepted.
pub fn accepted(token: &str) -> bool {
    match verify_at_now(token) {
        Ok(v) => {
            check_accepted(token, &v);
            true
        }
        Err(_) => false,
    }
}

/// Does `data` decode as a request or response frame (length-prefixed or bare)?
pub fn ipc_decodes(data: &[u8]) -> bool {
    let body = if data.len() >= 4 && u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize == data.len() - 4
    {
        &data[4..]
    } else {
        data
    };
    oidc_core::decode_frame::<Request>(body).is_ok() || oidc_core::decode_frame::<Response>(body).is_ok()
}

fn sign(header: &[u8], payload: &[u8], alg: Algorithm, key: &EncodingKey) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b.encode(header), b.encode(payload));
    match oidc_core::crypto::sign(input.as_bytes(), key, alg) {
        Ok(sig) => format!("{input}.{sig}"),
        Err(e) => panic!("signing: {e}"),
    }
}

/// Target `jwks`: the bytes as an IdP's JWKS document (helperd fetches it from
/// the network). Every key that parses can be used: its material decodes, so a
/// JWKS of garbage can never count as "usable keys" and replace a good cache.
pub fn jwks(data: &[u8]) {
    use base64::Engine as _;
    use oidc_core::Material;
    let Ok(j) = Jwks::from_idp_body(data) else { return };
    // An independent check of the material's shape (the oracle for "usable").
    let len = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).map(|b| b.len()).unwrap_or(0);
    for k in &j.keys {
        assert!(k.decoding_key().is_ok(), "a parsed key does not decode: {k:?}");
        let ok = match &k.material {
            Material::Rsa { n, e } => (256..=1025).contains(&len(n)) && (1..=4).contains(&len(e)),
            Material::Ec { crv, x, y } => {
                let want = if crv == "P-256" { 32 } else { 48 };
                len(x) == want && len(y) == want
            }
            Material::Okp { x, .. } => len(x) == 32,
        };
        assert!(ok, "a key with malformed material counts as usable: {k:?}");
    }
    for name in ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"] {
        let Some(alg) = oidc_core::Alg::parse(name) else { continue };
        // A token without a kid gets the keys that fit (never an HMAC key, never too many).
        if let Ok(keys) = j.select(None, alg) {
            assert!(!alg.is_hmac(), "an HMAC key was selected from a JWKS");
            assert!(!keys.is_empty() && keys.len() <= oidc_core::MAX_KIDLESS_KEYS);
        }
        for kid in j.keys.iter().filter_map(|k| k.kid.as_deref()) {
            if let Ok(sel) = j.select(Some(kid), alg) {
                assert_eq!(sel.len(), 1, "a kid selects one key");
                assert_eq!(sel[0].kid.as_deref(), Some(kid), "select answered another kid");
                assert!(!alg.is_hmac(), "an HMAC key was selected from a JWKS");
            }
        }
    }
}

/// Target `snapshot`: the bytes as an NSS snapshot file, read as is and with the
/// header's length and checksum fixed up (so mutations reach the records).
pub fn snapshot(data: &[u8]) {
    read_snapshot(data);
    use nss_snapshot::format::{header_sum, HEADER_LEN, HEADER_SUM_OFFSET};
    if data.len() >= HEADER_LEN && data.len() < u32::MAX as usize {
        let mut fixed = data.to_vec();
        fixed[16..20].copy_from_slice(&(data.len() as u32).to_le_bytes());
        let sum = header_sum(&fixed);
        fixed[HEADER_SUM_OFFSET..HEADER_SUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
        read_snapshot(&fixed);
    }
}

fn read_snapshot(buf: &[u8]) {
    use nss_snapshot::reader::Snapshot;
    let Ok(s) = Snapshot::parse(buf) else { return };
    let (mut names, mut ids) = (vec![b"root".to_vec(), b"alice".to_vec(), b"ci-bot".to_vec()], vec![0u32, 1000]);
    // Enumeration ends, moving forward every step.
    let mut off = 0usize;
    for _ in 0..=buf.len() / 4 {
        match s.user_next(off) {
            Ok(Some((u, next))) => {
                assert!(next > off, "user cursor went back: {off} -> {next}");
                names.push(u.name.to_vec());
                ids.push(u.uid);
                let _ = (u.groups().map(Iterator::count), u.n_groups(), u.gecos, u.dir(), u.shell);
                off = next;
            }
            _ => break,
        }
    }
    let mut off = 0usize;
    for _ in 0..=buf.len() / 4 {
        match s.group_next(off) {
            Ok(Some((g, next))) => {
                assert!(next > off, "group cursor went back: {off} -> {next}");
                names.push(g.name.to_vec());
                ids.push(g.gid);
                assert_eq!(g.members().count(), g.n_members());
                let _ = g.members_len();
                off = next;
            }
            _ => break,
        }
    }
    // A lookup answers only for the name or id it was asked for.
    for n in &names {
        if let Ok(Some(u)) = s.user_by_name(n) {
            assert_eq!(u.name, n.as_slice(), "user_by_name answered for another name");
        }
        if let Ok(Some(g)) = s.group_by_name(n) {
            assert_eq!(g.name, n.as_slice(), "group_by_name answered for another name");
        }
        let key = || Some(nss_snapshot::format::IdKey::from_bytes(*b"fuzz-fleet-key!!"));
        if let Ok(Some(p)) = s.prelogin_user(n, |_| key()) {
            assert!(nss_snapshot::format::portable_name(n), "pre-login answer for a non-portable name");
            assert!(!nss_snapshot::format::is_reserved(n), "pre-login answer for a reserved name");
            let _ = (p.uid, p.home_template, p.shell);
        }
    }
    for &id in &ids {
        if let Ok(Some(u)) = s.user_by_uid(id) {
            assert_eq!(u.uid, id, "user_by_uid answered for another uid");
        }
        if let Ok(Some(g)) = s.group_by_gid(id) {
            assert_eq!(g.gid, id, "group_by_gid answered for another gid");
        }
    }
}

/// Target `ipc`: the bytes as a frame on helperd's socket (length prefix and
/// body), read as a request and as a response; a decoded message re-encodes
/// and decodes to the same value.
pub fn ipc(data: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};
    if data.len() > 100_000 {
        return; // bigger than a socket buffer; the length check is covered below that
    }
    for as_request in [true, false] {
        let Ok((mut a, mut b)) = UnixStream::pair() else { return };
        let _ = a.write_all(data);
        let _ = a.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + Duration::from_millis(200);
        if as_request {
            if let Ok(r) = oidc_core::read_frame::<Request>(&mut b, deadline) {
                round_trip(&r);
            }
        } else if let Ok(r) = oidc_core::read_frame::<Response>(&mut b, deadline) {
            round_trip(&r);
        }
    }
    if let Ok(r) = oidc_core::decode_frame::<Request>(data) {
        round_trip(&r);
    }
    if let Ok(r) = oidc_core::decode_frame::<Response>(data) {
        round_trip(&r);
    }
}

fn round_trip<T: serde::Serialize + for<'de> serde::Deserialize<'de>>(msg: &T) {
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};
    let Ok((mut a, mut b)) = UnixStream::pair() else { return };
    let deadline = Instant::now() + Duration::from_secs(2);
    match oidc_core::write_frame(&mut a, msg, deadline) {
        Ok(()) => {}
        Err(oidc_core::IpcError::TooLarge(_)) => return,
        Err(e) => panic!("write_frame of a decoded message: {e}"),
    }
    let back: T = match oidc_core::read_frame(&mut b, deadline) {
        Ok(m) => m,
        Err(e) => panic!("a re-encoded message does not decode: {e}"),
    };
    let (x, y) = (serde_json::to_value(msg).ok(), serde_json::to_value(&back).ok());
    assert_eq!(x, y, "round trip changed the message");
}

/// Target `config`: the bytes as /etc/pam-oidc/config.toml.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, Path::new("/etc/pam-oidc/config.toml")) {
        Ok(c) => {
            for i in &c.issuers {
                assert!(c.issuer(&i.url).is_some(), "issuer {} not found by its url", i.url);
            }
            // Deterministic: the same text parses the same way again.
            assert!(Config::parse(text, Path::new("/etc/pam-oidc/config.toml")).is_ok());
        }
        Err(e) => {
            let s = e.to_string();
            assert!(s.starts_with("/etc/pam-oidc/config.toml"), "error without the file: {s}");
            assert!(!s.contains('\n'), "multi-line config error: {s:?}");
        }
    }
}

/// Run `data` through target `name` (the regression test's dispatcher).
pub fn run(name: &str, data: &[u8]) {
    match name {
        "token" => token(data),
        "token_claims" => token_claims(data),
        "jwks" => jwks(data),
        "snapshot" => snapshot(data),
        "ipc" => ipc(data),
        "config" => config(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// Seed inputs for each target: valid inputs that reach deep paths (and a few
/// near misses). `scripts/fuzz` writes them into the working corpus.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let claims = json!({"iss": ISS, "sub": "s-1", "aud": "host", "exp": NOW + 300, "iat": NOW - 5,
                        "preferred_username": "alice", "groups": ["devs", "ops"], "jti": "j1"});
    match name {
        "token" => {
            let k: Value = serde_json::from_str(KEYS).unwrap_or(Value::Null);
            let pem = |n: &str| k[n]["pem"].as_str().unwrap_or("").as_bytes().to_vec();
            let mut out = vec![];
            let ek = [
                ("RS256", "rsa1", EncodingKey::from_rsa_pem(&pem("rsa")), Algorithm::RS256),
                ("ES256", "ec1", EncodingKey::from_ec_pem(&pem("ec")), Algorithm::ES256),
                ("EdDSA", "ed1", EncodingKey::from_ed_pem(&pem("ed")), Algorithm::EdDSA),
            ];
            for (alg, kid, key, a) in ek {
                let Ok(key) = key else { continue };
                let h = json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
                out.push(sign(h.as_bytes(), claims.to_string().as_bytes(), a, &key).into_bytes());
            }
            let h = json!({"alg": "HS256"}).to_string();
            out.push(
                sign(
                    h.as_bytes(),
                    claims.to_string().as_bytes(),
                    Algorithm::HS256,
                    &EncodingKey::from_secret(HMAC_SECRET),
                )
                .into_bytes(),
            );
            out.push(b"eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lkcC50ZXN0In0.".to_vec());
            out
        }
        "token_claims" => {
            let mut c2 = claims.clone();
            c2["aud"] = json!(["host", "other"]);
            c2["azp"] = json!("host");
            c2["nbf"] = json!(NOW - 10);
            c2["auth_time"] = json!(NOW - 20);
            c2["acr"] = json!("mfa");
            c2["amr"] = json!(["pwd", "otp"]);
            vec![
                [&[0u8][..], claims.to_string().as_bytes()].concat(),
                [&[1u8][..], c2.to_string().as_bytes()].concat(),
                [&[0u8][..], br#"{"iss":"https://idp.test","sub":"x","aud":"host","exp":1800000100,"iat":1800000000,"preferred_username":"bob","groups":"one"}"#].concat(),
            ]
        }
        "jwks" => {
            let k: Value = serde_json::from_str(KEYS).unwrap_or(Value::Null);
            let all = json!({"keys": [k["rsa"]["jwk"], k["ec"]["jwk"], k["ed"]["jwk"], k["rsa_other"]["jwk"]]});
            vec![
                all.to_string().into_bytes(),
                json!({"keys": [k["ec"]["jwk"], {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "RSA", "n": "AQAB", "e": "AQAB"}]})
                    .to_string()
                    .into_bytes(),
            ]
        }
        "snapshot" => {
            use nss_snapshot::format::{build_with, Group, Prelogin, User};
            let user = |name: &str, uid: u32, groups: Vec<u32>| User {
                name: name.into(),
                uid,
                gid: uid,
                gecos: format!("{name} (OIDC)"),
                dir: format!("/home/{name}"),
                shell: "/bin/bash".into(),
                groups,
            };
            let users = vec![user("alice", 1_879_048_200, vec![2_013_265_920]), user("bob", 1_879_048_201, vec![])];
            let groups = vec![
                Group { name: "devs".into(), gid: 2_013_265_920, members: vec!["alice".into(), "bob".into()] },
                Group { name: "alice".into(), gid: 1_879_048_200, members: vec![] },
            ];
            let rule = Prelogin {
                key_file: "/etc/pam-oidc/id.key".into(),
                uid_min: 1_879_048_192,
                uid_max: 2_013_265_919,
                home: "/home/{name}".into(),
                shell: "/bin/bash".into(),
                patterns: vec!["ci-*".into(), "a?ice".into()],
            };
            // Format 4: one user whose record fills several lines, with its own dir and shell
            // (the others share the common home prefix and shell) and 30 gids.
            let mut more = users.clone();
            more.push(User {
                gecos: "Carol ".repeat(20),
                dir: "/srv/carol-home".into(),
                shell: "/bin/zsh".into(),
                ..user("carol", 1_879_048_202, (0..30).map(|g| 2_013_265_921 + g).collect())
            });
            [
                build_with(&users, &groups, Some(&rule), 7),
                build_with(&users[..1], &groups[..1], None, 1),
                build_with(&more, &groups, None, 2),
            ]
            .into_iter()
            .filter_map(Result::ok)
            .collect()
        }
        "ipc" => {
            let frame = |body: String| {
                let mut f = (body.len() as u32).to_be_bytes().to_vec();
                f.extend_from_slice(body.as_bytes());
                f
            };
            vec![
                frame(r#"{"v":1,"op":"ping"}"#.into()),
                frame(r#"{"v":1,"op":"refresh_jwks","issuer":"https://idp.test"}"#.into()),
                frame(r#"{"v":1,"op":"open_session","login_id":"abc","pid":42,"tty":"pts/0","rhost":"10.0.0.1"}"#.into()),
                frame(r#"{"v":1,"op":"login","event":{"issuer":"https://idp.test","sub":"s","name":"alice","groups":["devs"],"uid_claim":null,"gecos":"A"},"claims":{"issuer":"https://idp.test","sub":"s","account":"alice","identity":"alice","groups":["devs"],"jti":null,"exp":1800000300,"iat":1800000000,"auth_time":null,"acr":null},"web_token":"eyJ.x.y"}"#.into()),
                frame(r#"{"v":1,"op":"device_start","issuer":"https://idp.test"}"#.into()),
                frame(r#"{"v":1,"kind":"pong","version":"0.1.0"}"#.into()),
                frame(r#"{"v":1,"kind":"refreshed","fetched":true,"ok":false,"detail":"x"}"#.into()),
                r#"{"v":1,"op":"close_session","pid":7}"#.as_bytes().to_vec(),
            ]
        }
        "config" => {
            let shipped = include_str!("../packaging/config.toml");
            vec![CONFIG.as_bytes().to_vec(), shipped.as_bytes().to_vec()]
        }
        _ => vec![],
    }
}
