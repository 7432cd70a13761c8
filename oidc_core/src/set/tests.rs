//! SET verification: what a SET must carry, and that a SET and an ID token
//! are never taken for each other.

use super::*;
use crate::jwks::{CacheFile, Jwks};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://idp.test";
const AUD: &str = "https://hosts.example.com";

fn keys() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap()
}

fn sign(header: Value, claims: &Value, key: &str) -> String {
    let pem = keys()[key]["pem"].as_str().unwrap().to_string();
    let ek = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = crate::crypto::sign(input.as_bytes(), &ek, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

fn set_header() -> Value {
    json!({"alg": "RS256", "kid": "rsa1", "typ": "secevent+jwt"})
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "iat": NOW - 5, "jti": "set-1",
        "events": {SESSION_REVOKED: {"subject": {"format": "iss_sub", "iss": ISS, "sub": "u-1"}}},
    })
}

/// The issuer's cached keys; `refreshes` counts refresh calls.
struct Mem {
    jwks: Option<Value>,
    refreshes: usize,
}

impl KeyStore for Mem {
    fn cached(&self, issuer: &str) -> Result<(CacheFile, Jwks), String> {
        let v = self.jwks.clone().ok_or("no cache")?;
        let file = CacheFile {
            v: 1,
            issuer: issuer.into(),
            jwks_uri: String::new(),
            fetched_at: NOW,
            expires_at: NOW + 60,
            jwks: v.clone(),
        };
        Ok((file, Jwks::from_value(&v)?))
    }
    fn hmac_secret(&self, _: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        Err("none".into())
    }
    fn refresh(&mut self, _: &str) -> Result<String, String> {
        self.refreshes += 1;
        Ok("refreshed".into())
    }
}

fn cfg() -> Config {
    let text = format!("version = 1\n[[issuer]]\nurl = \"{ISS}\"\naudiences = [\"host\"]\nalgorithms = [\"RS256\"]\n");
    Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

fn check(token: &str) -> Result<SecEvent, Rejection> {
    let mut m = Mem { jwks: Some(json!({"keys": [keys()["rsa"]["jwk"]]})), refreshes: 0 };
    verify_set_with(&cfg(), token, ISS, AUD, NOW, &mut m)
}

#[test]
fn a_good_set_verifies_and_names_its_subject() {
    let s = check(&sign(set_header(), &claims(), "rsa")).unwrap();
    assert_eq!((s.issuer.as_str(), s.jti.as_str(), s.iat), (ISS, "set-1", NOW - 5));
    let ev = &s.events[SESSION_REVOKED];
    assert_eq!(s.subject(ev), Subject::IssSub { iss: ISS.into(), sub: "u-1".into() });
    // Shared Signals 1.0: the subject in the SET's sub_id; a complex subject's user.
    let mut c = claims();
    c["events"] = json!({ACCOUNT_DISABLED: {}});
    c["sub_id"] = json!({"format": "complex", "user": {"format": "iss_sub", "iss": ISS, "sub": "u-2"}});
    let s = check(&sign(set_header(), &c, "rsa")).unwrap();
    assert_eq!(s.subject(&s.events[ACCOUNT_DISABLED]), Subject::IssSub { iss: ISS.into(), sub: "u-2".into() });
    c["sub_id"] = json!({"format": "email", "email": "alice@example.com"});
    let s = check(&sign(set_header(), &c, "rsa")).unwrap();
    assert_eq!(s.subject(&s.events[ACCOUNT_DISABLED]), Subject::Unsupported("subject format email".into()));
}

#[test]
fn every_set_rule_is_enforced() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        check(&sign(set_header(), &c, "rsa")).unwrap_err().code()
    };
    assert_eq!(with(&|c| c["aud"] = json!("https://other")), "audience-mismatch");
    assert_eq!(with(&|c| c["iss"] = json!("https://evil.test")), "untrusted-issuer");
    assert_eq!(with(&|c| c["iat"] = json!(NOW + 3600)), "issued-in-future");
    assert_eq!(with(&|c| c["exp"] = json!(NOW - 3600)), "expired");
    assert_eq!(with(&|c| drop(c.as_object_mut().unwrap().remove("jti"))), "missing-claim");
    assert_eq!(with(&|c| drop(c.as_object_mut().unwrap().remove("iat"))), "missing-claim");
    assert_eq!(with(&|c| c["events"] = json!({})), "bad-claim");
    assert_eq!(with(&|c| c["events"] = json!({SESSION_REVOKED: "x"})), "bad-claim");
    // Signed by another key, or with no typ / an ID token's typ.
    assert_eq!(check(&sign(set_header(), &claims(), "rsa_other")).unwrap_err().code(), "bad-signature");
    let no_typ = sign(json!({"alg": "RS256", "kid": "rsa1"}), &claims(), "rsa");
    assert_eq!(check(&no_typ).unwrap_err().code(), "bad-header");
    let jwt = sign(json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"}), &claims(), "rsa");
    assert_eq!(check(&jwt).unwrap_err().code(), "bad-header");
    // And a SET is never a login token.
    let set = sign(set_header(), &claims(), "rsa");
    assert_eq!(crate::token::parse(&set, 65536).unwrap_err().code(), "bad-header");
}

#[test]
fn an_unknown_kid_asks_for_one_refresh() {
    let mut h = set_header();
    h["kid"] = json!("rsa-new");
    let token = sign(h, &claims(), "rsa");
    let mut m = Mem { jwks: Some(json!({"keys": [keys()["rsa"]["jwk"]]})), refreshes: 0 };
    assert_eq!(verify_set_with(&cfg(), &token, ISS, AUD, NOW, &mut m).unwrap_err().code(), "unknown-kid");
    assert_eq!(m.refreshes, 1);
    let mut none = Mem { jwks: None, refreshes: 0 };
    let e = verify_set_with(&cfg(), &sign(set_header(), &claims(), "rsa"), ISS, AUD, NOW, &mut none).unwrap_err();
    assert_eq!((e.code(), none.refreshes), ("keys-unavailable", 1));
}
