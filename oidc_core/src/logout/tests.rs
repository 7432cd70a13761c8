//! The OpenID RP conformance back-channel logout cases (`rp-backchannel-*`)
//! and the other refusals of §2.6, each through `verify_logout_token_with`
//! over an in-memory key store. Each refusal is checked for its precise
//! reason, so a lax verifier (a check dropped) fails here.

use super::*;
use crate::jwks::{CacheFile, Jwks};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://idp.test";

fn keys() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap()
}

struct Mem(Value);

impl KeyStore for Mem {
    fn cached(&self, issuer: &str) -> Result<(CacheFile, Jwks), String> {
        let file = CacheFile {
            v: crate::jwks::CACHE_VERSION,
            issuer: issuer.into(),
            jwks_uri: String::new(),
            fetched_at: 0,
            expires_at: i64::MAX,
            jwks: self.0.clone(),
        };
        Ok((file, Jwks::from_value(&self.0).map_err(|e| e.to_string())?))
    }
    fn hmac_secret(&self, _: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        Err("none".into())
    }
    fn refresh(&mut self, _: &str) -> Result<String, String> {
        Ok("fetched: nothing new".into())
    }
}

fn cfg(algs: &str) -> Config {
    let text = format!(
        "version = 1\n[[issuer]]\nurl = \"{ISS}\"\naliases = [\"https://alias.idp.test\"]\naudiences = [\"host-login\"]\n\
         algorithms = [{algs}]\nleeway_secs = 30\n"
    );
    Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

fn sign_with(header: Value, claims: &Value, key: &str) -> String {
    let k = keys();
    let pem = k[key]["pem"].as_str().unwrap().as_bytes();
    let (ek, alg) = match header["alg"].as_str().unwrap() {
        "RS256" => (EncodingKey::from_rsa_pem(pem).unwrap(), Algorithm::RS256),
        "ES256" => (EncodingKey::from_ec_pem(pem).unwrap(), Algorithm::ES256),
        "EdDSA" => (EncodingKey::from_ed_pem(pem).unwrap(), Algorithm::EdDSA),
        a => panic!("{a}"),
    };
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = crate::crypto::sign(input.as_bytes(), &ek, alg).unwrap();
    format!("{input}.{sig}")
}

/// RS256 with the IdP's key, `typ: logout+jwt`.
fn sign(claims: &Value) -> String {
    sign_with(json!({"alg": "RS256", "kid": "rsa1", "typ": "logout+jwt"}), claims, "rsa")
}

/// A valid logout token's claims (oidc-provider's shape).
fn claims() -> Value {
    json!({"iss": ISS, "aud": "host-login", "iat": NOW - 5, "exp": NOW + 115, "jti": "lt-1", "sub": "u-alice",
           "sid": "sid-1", "events": {EVENT: {}}})
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c
}

fn check_in(cfg: &Config, tok: &str) -> Result<LogoutToken, Rejection> {
    let k = keys();
    let mut store = Mem(json!({"keys": [k["rsa"]["jwk"], k["ec"]["jwk"], k["ed"]["jwk"]]}));
    verify_logout_token_with(cfg, tok, NOW, &mut store).result
}

fn check(tok: &str) -> Result<LogoutToken, Rejection> {
    check_in(&cfg("\"RS256\", \"ES256\", \"EdDSA\""), tok)
}

fn refused(tok: &str) -> (String, String) {
    let e = check(tok).unwrap_err();
    (e.code().to_string(), e.to_string())
}

fn session(sub: &str, sid: Option<&str>) -> SessionClaims {
    SessionClaims {
        issuer: ISS.into(),
        sub: sub.into(),
        account: "alice".into(),
        identity: "alice".into(),
        groups: vec![],
        idp_groups: vec![],
        jti: None,
        sid: sid.map(str::to_string),
        exp: NOW + 600,
        iat: NOW - 60,
        auth_time: None,
        acr: None,
        verified_at: 0,
        identity_id: String::new(),
    }
}

/// rp-backchannel-rpinitlogout: a valid token is accepted (every algorithm
/// of the issuer, typed or not, through an alias) and names its sessions.
#[test]
fn rpinitlogout_a_valid_token_is_accepted() {
    let t = check(&sign(&claims())).unwrap();
    assert_eq!(
        t,
        LogoutToken {
            issuer: ISS.into(),
            sub: Some("u-alice".into()),
            sid: Some("sid-1".into()),
            jti: "lt-1".into(),
            iat: NOW - 5,
            alg: Alg::RS256,
            kid: Some("rsa1".into()),
        }
    );
    assert_eq!(t.replay_id(), "logout-jti:lt-1");
    assert_eq!(t.accepted_until(30), NOW - 5 + MAX_AGE_SECS + 30);
    for (alg, key) in [("ES256", "ec"), ("EdDSA", "ed")] {
        assert!(check(&sign_with(json!({"alg": alg, "typ": "logout+jwt"}), &claims(), key)).is_ok(), "{alg}");
    }
    for typ in [json!("JWT"), json!("application/logout+jwt")] {
        assert!(check(&sign_with(json!({"alg": "RS256", "typ": typ}), &claims(), "rsa")).is_ok(), "{typ}");
    }
    assert!(check(&sign_with(json!({"alg": "RS256"}), &claims(), "rsa")).is_ok(), "no typ");
    let alias = check(&sign(&with(|c| drop(c.insert("iss".into(), json!("https://alias.idp.test")))))).unwrap();
    assert_eq!(alias.issuer, ISS, "the canonical URL, also through an alias");
    // sub only, sid only; no exp (drafts before the final spec had none).
    assert!(check(&sign(&with(|c| drop(c.remove("sid"))))).is_ok());
    assert!(check(&sign(&with(|c| drop(c.remove("sub"))))).is_ok());
    assert!(check(&sign(&with(|c| drop(c.remove("exp"))))).is_ok());
    // events may carry other events beside it; aud may be a list.
    assert!(check(&sign(&with(|c| drop(c.insert("events".into(), json!({EVENT: {}, "urn:other": {}})))))).is_ok());
    assert!(check(&sign(&with(|c| drop(c.insert("aud".into(), json!(["other", "host-login"])))))).is_ok());
}

/// §2.7: by sid when the token has one, by sub when it has one, both when both.
#[test]
fn which_sessions_a_token_ends() {
    let t = |sub: Option<&str>, sid: Option<&str>| LogoutToken {
        issuer: ISS.into(),
        sub: sub.map(str::to_string),
        sid: sid.map(str::to_string),
        jti: "j".into(),
        iat: NOW,
        alg: Alg::RS256,
        kid: None,
    };
    let (a1, a2, b) = (session("u-alice", Some("s1")), session("u-alice", None), session("u-bob", Some("s2")));
    let by_sub = t(Some("u-alice"), None);
    assert!(by_sub.matches(&a1) && by_sub.matches(&a2) && !by_sub.matches(&b));
    let by_sid = t(None, Some("s1"));
    assert!(by_sid.matches(&a1) && !by_sid.matches(&a2) && !by_sid.matches(&b));
    let both = t(Some("u-alice"), Some("s2"));
    assert!(!both.matches(&a1) && !both.matches(&b), "sid of bob's session, sub of alice: neither");
    let mut other = a1.clone();
    other.issuer = "https://other.idp".into();
    assert!(!by_sub.matches(&other), "another issuer's session with the same sub");
    assert_eq!(by_sub.who(), "sub=u-alice sid=-");
}

/// rp-backchannel-alg-none: an unsigned token never verifies.
#[test]
fn alg_none() {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "logout+jwt"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    assert_eq!(check(&format!("{input}.")).unwrap_err(), Rejection::AlgNone);
    assert_eq!(check(&format!("{input}.c2ln")).unwrap_err(), Rejection::AlgNone, "with a signature part too");
}

/// rp-backchannel-no-event: events missing, or without the back-channel member.
#[test]
fn no_event() {
    assert_eq!(check(&sign(&with(|c| drop(c.remove("events"))))).unwrap_err(), Rejection::MissingClaim("events"));
    let (code, why) = refused(&sign(&with(|c| drop(c.insert("events".into(), json!({}))))));
    assert_eq!(code, "bad-claim");
    assert!(why.contains("no http://schemas.openid.net/event/backchannel-logout member"), "{why}");
}

/// rp-backchannel-wrong-event: the event's value is not an object, events is
/// not an object, or only another event URI is there.
#[test]
fn wrong_event() {
    for (events, want) in [
        (json!({EVENT: "yes"}), "is not a JSON object"),
        (json!({EVENT: true}), "is not a JSON object"),
        (json!({EVENT: []}), "is not a JSON object"),
        (json!([EVENT]), "events: not a JSON object"),
        (json!(EVENT), "events: not a JSON object"),
        (json!({"http://schemas.openid.net/event/backchannel-logout/": {}}), "no http"),
        (json!({"https://schemas.openid.net/secevent/risc/event-type/sessions-revoked": {}}), "no http"),
    ] {
        let (code, why) = refused(&sign(&with(|c| drop(c.insert("events".into(), events.clone())))));
        assert_eq!(code, "bad-claim", "{events}");
        assert!(why.contains(want), "{events}: {why}");
    }
}

/// rp-backchannel-with-nonce: a nonce (any value) is refused.
#[test]
fn with_nonce() {
    for nonce in [json!("n-1"), json!(""), json!(null)] {
        let (code, why) = refused(&sign(&with(|c| drop(c.insert("nonce".into(), nonce.clone())))));
        assert_eq!(code, "bad-claim", "{nonce}");
        assert!(why.contains("nonce: a logout token must not carry a nonce"), "{why}");
    }
}

/// rp-backchannel-wrong-alg: an algorithm off the issuer's allow-list, a key
/// of another type than the header's alg, HS256 signed with the public key.
#[test]
fn wrong_alg() {
    let rs_only = cfg("\"RS256\"");
    let es = sign_with(json!({"alg": "ES256", "typ": "logout+jwt"}), &claims(), "ec");
    let e = check_in(&rs_only, &es).unwrap_err();
    assert_eq!(e.code(), "alg-not-allowed", "{e}");
    // The header names the RSA key but says ES256: that key never checks it.
    let confused = sign_with(json!({"alg": "ES256", "kid": "rsa1", "typ": "logout+jwt"}), &claims(), "ec");
    let e = check(&confused).unwrap_err();
    assert_eq!(e.code(), "no-usable-key", "{e}");
    // HS256 keyed with the RSA public key: HS* is not on the allow-list.
    let k = keys();
    let public = k["rsa"]["jwk"]["n"].as_str().unwrap();
    let hs = crate::crypto::encode(
        &jsonwebtoken::Header { typ: Some("logout+jwt".into()), ..jsonwebtoken::Header::new(Algorithm::HS256) },
        &claims(),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(check(&hs).unwrap_err().code(), "alg-not-allowed");
}

/// rp-backchannel-wrong-aud: aud names another client, or is absent.
#[test]
fn wrong_aud() {
    let (code, why) = refused(&sign(&with(|c| drop(c.insert("aud".into(), json!("other-app"))))));
    assert_eq!(code, "audience-mismatch");
    assert!(why.contains("got other-app want host-login"), "{why}");
    assert_eq!(check(&sign(&with(|c| drop(c.remove("aud"))))).unwrap_err(), Rejection::MissingClaim("aud"));
}

/// rp-backchannel-wrong-iss: another issuer (signed with its key), or an
/// issuer spelled differently.
#[test]
fn wrong_iss() {
    for iss in ["https://evil.test", "https://idp.test/", "https://IDP.test"] {
        let (code, _) = refused(&sign(&with(|c| drop(c.insert("iss".into(), json!(iss))))));
        assert_eq!(code, "untrusted-issuer", "{iss}");
    }
}

#[test]
fn missing_jti_and_neither_sub_nor_sid() {
    assert_eq!(check(&sign(&with(|c| drop(c.remove("jti"))))).unwrap_err(), Rejection::MissingClaim("jti"));
    assert_eq!(check(&sign(&with(|c| drop(c.insert("jti".into(), json!("")))))).unwrap_err().code(), "bad-claim");
    assert_eq!(check(&sign(&with(|c| drop(c.insert("jti".into(), json!(7)))))).unwrap_err().code(), "bad-claim");
    let none = with(|c| {
        c.remove("sub");
        c.remove("sid");
    });
    assert_eq!(check(&sign(&none)).unwrap_err(), Rejection::MissingClaim("sub or sid"));
    let (code, why) = refused(&sign(&with(|c| drop(c.insert("sub".into(), json!(["u-alice"]))))));
    assert_eq!(code, "bad-claim");
    assert!(why.contains("sub: not a string"), "{why}");
    assert_eq!(check(&sign(&with(|c| drop(c.insert("sid".into(), json!("")))))).unwrap_err().code(), "bad-claim");
}

/// iat: required, not in the future beyond the leeway, not older than
/// MAX_AGE_SECS + leeway; exp and nbf, when present, hold with the leeway.
#[test]
fn times() {
    assert_eq!(check(&sign(&with(|c| drop(c.remove("iat"))))).unwrap_err(), Rejection::MissingClaim("iat"));
    assert!(check(&sign(&with(|c| drop(c.insert("iat".into(), json!(NOW + 30)))))).is_ok(), "within the leeway");
    let e = check(&sign(&with(|c| drop(c.insert("iat".into(), json!(NOW + 31)))))).unwrap_err();
    assert_eq!(e.code(), "issued-in-future");
    let old = NOW - MAX_AGE_SECS - 30;
    assert!(check(&sign(&with(|c| drop(c.insert("iat".into(), json!(old)))))).is_ok(), "as old as allowed");
    let (code, why) = refused(&sign(&with(|c| drop(c.insert("iat".into(), json!(old - 1))))));
    assert_eq!(code, "bad-claim");
    assert!(why.contains("issued 631s ago: a logout token is accepted for 600s"), "{why}");
    assert_eq!(check(&sign(&with(|c| drop(c.insert("exp".into(), json!(NOW - 31)))))).unwrap_err().code(), "expired");
    assert_eq!(
        check(&sign(&with(|c| drop(c.insert("nbf".into(), json!(NOW + 31)))))).unwrap_err().code(),
        "not-yet-valid"
    );
    assert_eq!(check(&sign(&with(|c| drop(c.insert("iat".into(), json!("soon")))))).unwrap_err().code(), "bad-claim");
}

#[test]
fn bad_signature_and_typ() {
    let tok = sign(&claims());
    let (input, sig) = tok.rsplit_once('.').unwrap();
    // Another subject under the same signature.
    let forged = format!(
        "{}.{}.{sig}",
        input.split('.').next().unwrap(),
        URL_SAFE_NO_PAD.encode(with(|c| drop(c.insert("sub".into(), json!("u-bob")))).to_string())
    );
    assert_eq!(check(&forged).unwrap_err(), Rejection::BadSignature);
    // Signed with a key that is not the IdP's, under its kid.
    let other = sign_with(json!({"alg": "RS256", "kid": "rsa1", "typ": "logout+jwt"}), &claims(), "rsa_other");
    assert_eq!(check(&other).unwrap_err(), Rejection::BadSignature);
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[0] ^= 1;
    assert_eq!(check(&format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))).unwrap_err(), Rejection::BadSignature);
    // An access token is no logout token, whatever its claims.
    let at = sign_with(json!({"alg": "RS256", "typ": "at+jwt"}), &claims(), "rsa");
    let e = check(&at).unwrap_err();
    assert_eq!(e.code(), "bad-header");
    assert!(e.to_string().contains("typ at+jwt is not logout+jwt"), "{e}");
}

/// The other way round: a logout token (typed, or untyped with the event)
/// and an ID token are never confused; an ID token's `sid` is kept.
#[test]
fn id_tokens_and_logout_tokens_are_not_confused() {
    let cfg = cfg("\"RS256\"");
    let k = keys();
    let mut store = Mem(json!({"keys": [k["rsa"]["jwk"]]}));
    let mut login = with(|c| drop(c.insert("preferred_username".into(), json!("alice"))));
    let typed = sign(&login);
    let e = crate::login::verify_token_with(&cfg, &typed, NOW, &mut store).result.unwrap_err();
    assert!(e.to_string().contains("a logout token is not a login token"), "{e}");
    let untyped = sign_with(json!({"alg": "RS256"}), &login, "rsa");
    let e = crate::login::verify_token_with(&cfg, &untyped, NOW, &mut store).result.unwrap_err();
    assert!(e.to_string().contains("events: a back-channel logout token is not a login token"), "{e}");
    // The ID token of the same session: not a logout token; as a login, its sid is kept.
    login.as_object_mut().unwrap().remove("events");
    let id_token = sign_with(json!({"alg": "RS256"}), &login, "rsa");
    assert_eq!(check_in(&cfg, &id_token).unwrap_err(), Rejection::MissingClaim("events"));
    let v = crate::login::verify_token_with(&cfg, &id_token, NOW, &mut store).result.unwrap();
    assert_eq!(v.sid.as_deref(), Some("sid-1"));
    let c = SessionClaims::from_verified(&v, "alice", vec![], vec![]);
    assert_eq!(c.sid.as_deref(), Some("sid-1"));
}
