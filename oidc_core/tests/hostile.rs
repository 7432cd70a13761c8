//! Hostile tokens: every crafted token is refused, each with its reason code.
//! Through the same path the PAM module uses (cache file, refresh callback).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use oidc_core::verify_token;
use oidc_core::Config;
use serde_json::{json, Value};
use std::path::Path;

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://idp.test";

fn keys() -> Value {
    serde_json::from_str(include_str!("fixtures/test-keys.json")).unwrap()
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Sign arbitrary header/payload JSON text (so duplicates and odd values survive).
fn sign_raw(header: &str, payload: &[u8], key: &str, alg: Algorithm) -> String {
    let k = keys();
    let pem = k[key]["pem"].as_str().unwrap_or("").as_bytes();
    let ek = match alg {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem).unwrap(),
        _ => EncodingKey::from_secret(key.as_bytes()),
    };
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload));
    let sig = oidc_core::crypto::sign(input.as_bytes(), &ek, alg).unwrap();
    format!("{input}.{sig}")
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "s-1", "aud": "host", "exp": NOW + 300, "iat": NOW - 5,
           "preferred_username": "alice", "groups": ["devs"]})
}

fn rs(header: Value, payload: Value) -> String {
    sign_raw(&header.to_string(), payload.to_string().as_bytes(), "rsa", Algorithm::RS256)
}

fn good_header() -> Value {
    json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"})
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

fn setup() -> (Config, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let cfg = Config::parse(
        &format!(
            "version = 1\n[helperd]\ncache_dir = \"{}\"\n[pam]\nmax_token_bytes = 16384\n[[issuer]]\nurl = \"{ISS}\"\naudiences = [\"host\"]\nalgorithms = [\"RS256\", \"ES256\"]\nleeway_secs = 60\n",
            dir.0.display()
        ),
        Path::new("t.toml"),
    )
    .unwrap();
    let k = keys();
    let cache = oidc_core::CacheFile {
        v: 1,
        issuer: ISS.into(),
        jwks_uri: format!("{ISS}/jwks"),
        fetched_at: NOW,
        expires_at: NOW + 3600,
        jwks: json!({"keys": [k["rsa"]["jwk"], k["ec"]["jwk"]]}),
    };
    let p = oidc_core::jwks_cache_path(&dir.0, ISS);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_vec(&cache).unwrap()).unwrap();
    (cfg, dir)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("oidc-hostile-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn fifty_plus_hostile_tokens_are_refused_with_their_reason() {
    let (cfg, _dir) = setup();
    let k = keys();
    let rsa_pub = k["rsa"]["jwk"].to_string();
    let good = rs(good_header(), claims());
    let parts: Vec<&str> = good.split('.').collect();
    let sig_of = |t: &str| t.rsplit('.').next().unwrap().to_string();
    let payload_b64 = b64(claims().to_string().as_bytes());
    let hs_pub =
        sign_raw(r#"{"alg":"HS256","kid":"rsa1"}"#, claims().to_string().as_bytes(), &rsa_pub, Algorithm::HS256);
    let cases: Vec<(&str, String, &str)> = vec![
        // --- algorithm confusion
        ("alg none", format!("{}.{}.", b64(br#"{"alg":"none"}"#), payload_b64), "alg-none"),
        ("alg none with a signature", format!("{}.{}.AAAA", b64(br#"{"alg":"none"}"#), payload_b64), "alg-none"),
        ("alg NONE", format!("{}.{}.AAAA", b64(br#"{"alg":"NONE"}"#), payload_b64), "alg-none"),
        ("alg nOnE", format!("{}.{}.AAAA", b64(br#"{"alg":"nOnE"}"#), payload_b64), "alg-none"),
        ("HS256 with the public key as secret", hs_pub, "alg-not-allowed"),
        ("HS384 not allowed", sign_raw(r#"{"alg":"HS384"}"#, claims().to_string().as_bytes(), "k", Algorithm::HS384), "alg-not-allowed"),
        ("PS256 with the RSA key (not allowed)", sign_raw(r#"{"alg":"PS256","kid":"rsa1"}"#, claims().to_string().as_bytes(), "rsa", Algorithm::PS256), "alg-not-allowed"),
        ("ES256 header pointing at the RSA key", sign_raw(r#"{"alg":"ES256","kid":"rsa1"}"#, claims().to_string().as_bytes(), "ec", Algorithm::ES256), "no-usable-key"),
        ("RS256 header pointing at the EC key", rs(json!({"alg": "RS256", "kid": "ec1"}), claims()), "no-usable-key"),
        ("EdDSA not allowed", sign_raw(r#"{"alg":"EdDSA","kid":"ed1"}"#, claims().to_string().as_bytes(), "ed", Algorithm::EdDSA), "alg-not-allowed"),
        ("unknown alg", format!("{}.{}.{}", b64(br#"{"alg":"RS1"}"#), payload_b64, parts[2]), "alg-unsupported"),
        ("alg as a number", format!("{}.{}.{}", b64(br#"{"alg":256}"#), payload_b64, parts[2]), "bad-header"),
        ("alg missing", format!("{}.{}.{}", b64(br#"{"kid":"rsa1"}"#), payload_b64, parts[2]), "bad-header"),
        // --- header tricks
        ("jku to an attacker JWKS (signed by another key)", sign_raw(r#"{"alg":"RS256","kid":"rsa1","jku":"https://evil/jwks"}"#, claims().to_string().as_bytes(), "rsa_other", Algorithm::RS256), "bad-signature"),
        ("x5u to an attacker cert", sign_raw(r#"{"alg":"RS256","kid":"rsa1","x5u":"https://evil/cert"}"#, claims().to_string().as_bytes(), "rsa_other", Algorithm::RS256), "bad-signature"),
        ("embedded jwk of the attacker", sign_raw(&format!(r#"{{"alg":"RS256","kid":"rsa1","jwk":{}}}"#, k["rsa_other"]["jwk"]), claims().to_string().as_bytes(), "rsa_other", Algorithm::RS256), "bad-signature"),
        ("kid path traversal", rs(json!({"alg": "RS256", "kid": "../../../../etc/passwd"}), claims()), "unknown-kid"),
        ("kid SQL-ish", rs(json!({"alg": "RS256", "kid": "x' OR '1'='1"}), claims()), "unknown-kid"),
        ("kid huge", rs(json!({"alg": "RS256", "kid": "k".repeat(5000)}), claims()), "bad-header"),
        ("kid a number", rs(json!({"alg": "RS256", "kid": 7}), claims()), "bad-header"),
        ("kid an object", rs(json!({"alg": "RS256", "kid": {"a": 1}}), claims()), "bad-header"),
        ("kid null bytes", rs(json!({"alg": "RS256", "kid": "rsa1\u{0}"}), claims()), "unknown-kid"),
        ("crit", rs(json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"]}), claims()), "crit"),
        ("crit empty", rs(json!({"alg": "RS256", "kid": "rsa1", "crit": []}), claims()), "crit"),
        ("typ JWE", rs(json!({"alg": "RS256", "kid": "rsa1", "typ": "JWE"}), claims()), "bad-header"),
        ("duplicate alg in header", sign_raw(r#"{"alg":"RS256","kid":"rsa1","alg":"none"}"#, claims().to_string().as_bytes(), "rsa", Algorithm::RS256), "bad-json"),
        ("header not an object", format!("{}.{}.{}", b64(b"[1,2]"), payload_b64, parts[2]), "bad-json"),
        // --- claim tricks
        ("aud a number", rs(good_header(), with(|c| c["aud"] = json!(5))), "bad-claim"),
        ("aud an object", rs(good_header(), with(|c| c["aud"] = json!({"host": true}))), "bad-claim"),
        ("aud array with a number", rs(good_header(), with(|c| c["aud"] = json!(["host", 1]))), "bad-claim"),
        ("aud empty array", rs(good_header(), with(|c| c["aud"] = json!([]))), "missing-claim"),
        ("duplicate sub", sign_raw(&good_header().to_string(), format!(r#"{{"iss":"{ISS}","sub":"s-1","sub":"root","aud":"host","exp":{},"iat":{},"preferred_username":"alice"}}"#, NOW + 300, NOW).as_bytes(), "rsa", Algorithm::RS256), "bad-json"),
        ("duplicate preferred_username", sign_raw(&good_header().to_string(), format!(r#"{{"iss":"{ISS}","sub":"s-1","aud":"host","exp":{},"iat":{},"preferred_username":"alice","preferred_username":"root"}}"#, NOW + 300, NOW).as_bytes(), "rsa", Algorithm::RS256), "bad-json"),
        ("exp a string", rs(good_header(), with(|c| c["exp"] = json!("2100-01-01"))), "bad-claim"),
        ("exp a float in the past", rs(good_header(), with(|c| c["exp"] = json!((NOW - 600) as f64 + 0.5))), "expired"),
        ("exp huge", rs(good_header(), with(|c| c["exp"] = json!(1e300))), "bad-claim"),
        ("exp negative", rs(good_header(), with(|c| c["exp"] = json!(-1))), "expired"),
        ("exp u64 max", sign_raw(&good_header().to_string(), format!(r#"{{"iss":"{ISS}","sub":"s","aud":"host","exp":18446744073709551615,"iat":{NOW},"preferred_username":"alice"}}"#).as_bytes(), "rsa", Algorithm::RS256), "bad-claim"),
        ("exp null", rs(good_header(), with(|c| c["exp"] = Value::Null)), "missing-claim"),
        ("exp far future (lifetime cap)", rs(good_header(), with(|c| c["exp"] = json!(NOW + 10 * 86400))), "lifetime-too-long"),
        ("iat in the future", rs(good_header(), with(|c| c["iat"] = json!(NOW + 3600))), "issued-in-future"),
        ("nbf in the future", rs(good_header(), with(|c| c["nbf"] = json!(NOW + 3600))), "not-yet-valid"),
        ("iss an array", rs(good_header(), with(|c| c["iss"] = json!([ISS]))), "bad-claim"),
        ("iss with a trailing slash", rs(good_header(), with(|c| c["iss"] = json!(format!("{ISS}/")))), "untrusted-issuer"),
        ("sub empty", rs(good_header(), with(|c| c["sub"] = json!(""))), "bad-claim"),
        ("sub a number", rs(good_header(), with(|c| c["sub"] = json!(42))), "bad-claim"),
        ("1025 groups", rs(good_header(), with(|c| c["groups"] = json!(vec!["g"; 1025]))), "bad-claim"),
        ("username with a colon", rs(good_header(), with(|c| c["preferred_username"] = json!("root:0"))), "invalid-username"),
        ("username with control characters", rs(good_header(), with(|c| c["preferred_username"] = json!("ali\u{7}ce"))), "invalid-username"),
        ("username root-like upper case", rs(good_header(), with(|c| c["preferred_username"] = json!("ROOT"))), "reserved-name"),
        ("username Admin", rs(good_header(), with(|c| c["preferred_username"] = json!("Admin"))), "reserved-name"),
        ("username ADMIN", rs(good_header(), with(|c| c["preferred_username"] = json!("ADMIN"))), "reserved-name"),
        ("username wheel", rs(good_header(), with(|c| c["preferred_username"] = json!("wheel"))), "reserved-name"),
        ("username Docker", rs(good_header(), with(|c| c["preferred_username"] = json!("Docker"))), "reserved-name"),
        ("username a.d.m.i.n", rs(good_header(), with(|c| c["preferred_username"] = json!("a.d.m.i.n"))), "reserved-name"),
        ("username systemd-network", rs(good_header(), with(|c| c["preferred_username"] = json!("systemd-network"))), "reserved-name"),
        ("username _apt", rs(good_header(), with(|c| c["preferred_username"] = json!("_apt"))), "reserved-name"),
        ("access token (typ at+jwt)", rs(json!({"alg": "RS256", "kid": "rsa1", "typ": "at+jwt"}), claims()), "access-token"),
        ("access token (application/at+jwt)", rs(json!({"alg": "RS256", "kid": "rsa1", "typ": "application/at+jwt"}), claims()), "access-token"),
        ("ID token of another client (foreign azp)", rs(good_header(), with(|c| c["azp"] = json!("other-client"))), "azp-mismatch"),
        ("username too long", rs(good_header(), with(|c| c["preferred_username"] = json!("a".repeat(40)))), "invalid-username"),
        ("payload not UTF-8", sign_raw(&good_header().to_string(), b"{\"iss\":\"\xff\xfe\"}", "rsa", Algorithm::RS256), "bad-json"),
        ("payload not an object", sign_raw(&good_header().to_string(), b"\"alice\"", "rsa", Algorithm::RS256), "bad-json"),
        ("deep JSON nesting", sign_raw(&good_header().to_string(), format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000)).as_bytes(), "rsa", Algorithm::RS256), "bad-json"),
        // --- size and structure
        ("empty", String::new(), "empty-token"),
        ("one part", "eyJhbGciOiJSUzI1NiJ9".into(), "malformed"),
        ("two parts", format!("{}.{}", parts[0], parts[1]), "malformed"),
        ("four parts", format!("{good}.x"), "malformed"),
        ("empty header", format!(".{}.{}", parts[1], parts[2]), "malformed"),
        ("empty payload", format!("{}..{}", parts[0], parts[2]), "malformed"),
        ("only dots", "..".into(), "malformed"),
        ("standard base64 with padding", format!("{}.{}.{}", STANDARD.encode(br#"{"alg":"RS256","kid":"rsa1"}"#), parts[1], parts[2]), "bad-base64"),
        ("bad base64 in the signature", format!("{}.{}.###", parts[0], parts[1]), "bad-base64"),
        ("1 MiB token", format!("{}.{}.{}", parts[0], "A".repeat(1 << 20), parts[2]), "oversize"),
        ("tampered payload", format!("{}.{}.{}", parts[0], b64(with(|c| c["groups"] = json!(["admins"])).to_string().as_bytes()), parts[2]), "bad-signature"),
        ("signature from another token", format!("{}.{}.{}", parts[0], parts[1], sig_of(&rs(good_header(), with(|c| c["sub"] = json!("s-2"))))), "bad-signature"),
        ("truncated signature", format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]), "bad-signature"),
    ];
    assert!(cases.len() >= 50, "{} cases", cases.len());
    // helperd answers the refresh (rate-limited): an unknown kid stays unknown.
    let mut no_refresh = |_: &str| Ok("not fetched: rate-limited (test)".to_string());
    for (name, token, code) in &cases {
        let out = verify_token(&cfg, token, NOW, &mut no_refresh);
        match &out.result {
            Ok(v) => panic!("{name}: accepted as {}", v.username),
            Err(r) => assert_eq!(r.code(), *code, "{name}: {r}"),
        }
        // The reason is printable on one log line.
        assert!(!out.reason().contains('\n'), "{name}");
    }
    // Groups that cannot be served are dropped (logged), never turned into something else.
    for (name, groups) in [
        ("nested groups", json!([["admins"], "devs"])),
        ("group with a colon", json!(["root:x:0", "devs"])),
        ("group with a newline", json!(["devs\nsudo", "devs"])),
        ("group with a comma", json!(["Sales, EMEA", "devs"])),
    ] {
        let out = verify_token(&cfg, &rs(good_header(), with(|c| c["groups"] = groups)), NOW, &mut no_refresh);
        let v = out.result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.groups, ["devs"], "{name}");
        assert_eq!(v.warnings.len(), 1, "{name}: {:?}", v.warnings);
    }
    let out =
        verify_token(&cfg, &rs(good_header(), with(|c| c["groups"] = json!({"admins": true}))), NOW, &mut no_refresh);
    assert!(out.result.unwrap().groups.is_empty(), "groups an object: none");
    // And the untouched token is accepted (the refusals are not for lack of a valid path).
    assert!(verify_token(&cfg, &good, NOW, &mut no_refresh).result.is_ok());
}
