use super::*;
use crate::config::Issuer;
use crate::token::parse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000;

fn keys() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap()
}

fn sign(header: Value, claims: Value, key: &str) -> String {
    let k = keys();
    let pem = k[key]["pem"].as_str().unwrap_or("").as_bytes();
    let (ek, alg) = match header["alg"].as_str().unwrap() {
        "RS256" => (EncodingKey::from_rsa_pem(pem).unwrap(), Algorithm::RS256),
        "PS256" => (EncodingKey::from_rsa_pem(pem).unwrap(), Algorithm::PS256),
        "ES256" => (EncodingKey::from_ec_pem(pem).unwrap(), Algorithm::ES256),
        "EdDSA" => (EncodingKey::from_ed_pem(pem).unwrap(), Algorithm::EdDSA),
        "HS256" => (EncodingKey::from_secret(key.as_bytes()), Algorithm::HS256),
        a => panic!("{a}"),
    };
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = crate::crypto::sign(input.as_bytes(), &ek, alg).unwrap();
    format!("{input}.{sig}")
}

fn issuer() -> Issuer {
    toml::from_str(
        r#"url = "https://idp.test"
           audiences = ["host-login"]
           algorithms = ["RS256", "ES256", "EdDSA"]"#,
    )
    .unwrap()
}

fn jwks() -> Jwks {
    let k = keys();
    Jwks::from_value(&json!({"keys": [k["rsa"]["jwk"], k["ec"]["jwk"], k["ed"]["jwk"]]})).unwrap()
}

fn claims() -> Value {
    json!({"iss":"https://idp.test","sub":"u-1","aud":"host-login","exp":NOW+300,"iat":NOW-10,
           "preferred_username":"alice","groups":["devs","ops"],"jti":"j-1"})
}

fn run(tok: &str, iss: &Issuer) -> Result<Verified, Rejection> {
    let j = jwks();
    let p = parse(tok, 16384)?;
    verify(&p, iss, Keys { jwks: Some(&j), hmac_secret: None }, NOW, &mut Report::default())
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

#[test]
fn accepts_rs256_es256_eddsa() {
    for (alg, key, kid) in [("RS256", "rsa", "rsa1"), ("ES256", "ec", "ec1"), ("EdDSA", "ed", "ed1")] {
        let t = sign(json!({"alg":alg,"kid":kid,"typ":"JWT"}), claims(), key);
        let v = run(&t, &issuer()).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.username, "alice");
        assert_eq!(v.groups, vec!["devs", "ops"]);
        assert_eq!(v.jti.as_deref(), Some("j-1"));
    }
}

fn code(t: &str, iss: &Issuer) -> &'static str {
    run(t, iss).unwrap_err().code()
}

#[test]
fn claim_rejections() {
    let rs = |c: Value| sign(json!({"alg":"RS256","kid":"rsa1"}), c, "rsa");
    let i = issuer();
    assert_eq!(code(&rs(with(|c| c["exp"] = json!(NOW - 61))), &i), "expired");
    assert!(run(&rs(with(|c| c["exp"] = json!(NOW - 59))), &i).is_ok(), "within leeway");
    assert_eq!(code(&rs(with(|c| c["nbf"] = json!(NOW + 120))), &i), "not-yet-valid");
    assert_eq!(code(&rs(with(|c| c["iat"] = json!(NOW + 120))), &i), "issued-in-future");
    assert_eq!(code(&rs(with(|c| c["iss"] = json!("https://evil.test"))), &i), "untrusted-issuer");
    assert_eq!(code(&rs(with(|c| c["aud"] = json!("other"))), &i), "audience-mismatch");
    assert_eq!(code(&rs(with(|c| c["aud"] = json!(["other", "x"]))), &i), "audience-mismatch");
    assert_eq!(code(&rs(with(|c| c["aud"] = json!(5))), &i), "bad-claim");
    assert_eq!(code(&rs(with(|c| c["aud"] = json!({"a": 1}))), &i), "bad-claim");
    assert_eq!(code(&rs(with(|c| c["exp"] = json!("soon"))), &i), "bad-claim");
    assert_eq!(code(&rs(with(|c| drop(c.as_object_mut().unwrap().remove("sub")))), &i), "missing-claim");
    assert_eq!(code(&rs(with(|c| drop(c.as_object_mut().unwrap().remove("exp")))), &i), "missing-claim");
    assert_eq!(code(&rs(with(|c| c["iat"] = json!(NOW - 200_000))), &i), "lifetime-too-long");
    assert_eq!(code(&rs(with(|c| c["preferred_username"] = json!("Root:x"))), &i), "invalid-username");
    // Groups that cannot be served are dropped with a warning; the login goes on.
    let v = run(&rs(with(|c| c["groups"] = json!([["nested"], "a:b", "Sales, EMEA", "devs"]))), &i).unwrap();
    assert_eq!(v.groups, ["devs"]);
    assert_eq!(v.warnings.len(), 3, "{:?}", v.warnings);
    assert_eq!(code(&rs(with(|c| c["groups"] = json!(vec!["g"; 1025]))), &i), "bad-claim");
    // several audiences: azp must name one of ours
    assert_eq!(code(&rs(with(|c| c["aud"] = json!(["host-login", "x"]))), &i), "azp-mismatch");
    // an ID token of another client of the same IdP (single aud, foreign azp)
    assert_eq!(code(&rs(with(|c| c["azp"] = json!("other-client"))), &i), "azp-mismatch");
    assert!(run(
        &rs(with(|c| {
            c["aud"] = json!(["host-login", "x"]);
            c["azp"] = json!("host-login");
        })),
        &i
    )
    .is_ok());
}

#[test]
fn optional_policies() {
    let rs = |c: Value| sign(json!({"alg":"RS256","kid":"rsa1"}), c, "rsa");
    let mut i = issuer();
    i.required_azp = Some("cli".into());
    i.acr_values = vec!["mfa".into()];
    i.required_amr = vec!["hwk".into()];
    i.max_auth_age_secs = Some(600);
    let good = with(|c| {
        c["azp"] = json!("cli");
        c["acr"] = json!("mfa");
        c["amr"] = json!(["pwd", "hwk"]);
        c["auth_time"] = json!(NOW - 100);
    });
    assert!(run(&rs(good.clone()), &i).is_ok());
    let mut g = good.clone();
    g["azp"] = json!("web");
    assert_eq!(code(&rs(g), &i), "azp-mismatch");
    let mut g = good.clone();
    g["acr"] = json!("pwd");
    assert_eq!(code(&rs(g), &i), "acr-not-accepted");
    let mut g = good.clone();
    g["amr"] = json!(["pwd"]);
    assert_eq!(code(&rs(g), &i), "amr-missing");
    let mut g = good;
    g["auth_time"] = json!(NOW - 601);
    assert_eq!(code(&rs(g), &i), "auth-too-old");
}

#[test]
fn signature_and_key_rejections() {
    let i = issuer();
    let t = sign(json!({"alg":"RS256","kid":"rsa1"}), claims(), "rsa");
    // tampered payload
    let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(with(|c| c["preferred_username"] = json!("root")).to_string());
    assert_eq!(code(&parts.join("."), &i), "bad-signature");
    // tampered signature
    let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
    parts[2] = URL_SAFE_NO_PAD.encode([7u8; 256]);
    assert_eq!(code(&parts.join("."), &i), "bad-signature");
    // signed by another key that claims the same kid
    assert_eq!(code(&sign(json!({"alg":"RS256","kid":"rsa1"}), claims(), "rsa_other"), &i), "bad-signature");
    assert_eq!(code(&sign(json!({"alg":"RS256","kid":"nope"}), claims(), "rsa"), &i), "unknown-kid");
    // alg/key family confusion: an ES256 token pointing at the RSA key
    assert_eq!(code(&sign(json!({"alg":"ES256","kid":"rsa1"}), claims(), "ec"), &i), "no-usable-key");
    // not on the allow-list
    assert_eq!(code(&sign(json!({"alg":"PS256","kid":"rsa1"}), claims(), "rsa"), &i), "alg-not-allowed");
    // HS256 "signed" with the issuer's public key as the secret
    let pubkey = keys()["rsa"]["jwk"]["n"].as_str().unwrap().to_string();
    assert_eq!(code(&sign(json!({"alg":"HS256","kid":"rsa1"}), claims(), &pubkey), &i), "alg-not-allowed");
    // even if HS256 were allowed, it uses only the configured secret, never a JWKS key
    let mut ih = issuer();
    ih.algorithms.push(crate::alg::Alg::HS256);
    assert_eq!(code(&sign(json!({"alg":"HS256","kid":"rsa1"}), claims(), &pubkey), &ih), "no-usable-key");
    // jku/jwk/x5u in the header never change which key is used
    let t =
        sign(json!({"alg":"RS256","kid":"rsa1","jku":"https://evil/jwks","jwk":{"kty":"oct"}}), claims(), "rsa_other");
    assert_eq!(code(&t, &i), "bad-signature");
}

#[test]
fn hmac_with_configured_secret() {
    let mut i = issuer();
    i.algorithms = vec![crate::alg::Alg::HS256];
    let t = sign(json!({"alg":"HS256"}), claims(), "shared-secret-of-32-bytes-or-more!!");
    let p = parse(&t, 16384).unwrap();
    let keys = Keys { jwks: None, hmac_secret: Some(b"shared-secret-of-32-bytes-or-more!!") };
    assert!(verify(&p, &i, keys, NOW, &mut Report::default()).is_ok());
    let keys = Keys { jwks: None, hmac_secret: Some(b"wrong") };
    assert_eq!(verify(&p, &i, keys, NOW, &mut Report::default()).unwrap_err().code(), "bad-signature");
}

#[test]
fn report_lists_every_claim_check() {
    let t = sign(
        json!({"alg":"RS256","kid":"rsa1"}),
        with(|c| {
            c["exp"] = json!(NOW - 1000);
            c["aud"] = json!("other");
        }),
        "rsa",
    );
    let j = jwks();
    let p = parse(&t, 16384).unwrap();
    let mut r = Report::default();
    let e = verify(&p, &issuer(), Keys { jwks: Some(&j), hmac_secret: None }, NOW, &mut r).unwrap_err();
    assert_eq!(e.code(), "expired");
    let failed: Vec<_> = r.checks.iter().filter(|c| c.result.is_err()).map(|c| c.name).collect();
    assert_eq!(failed, ["exp", "aud"]);
    assert!(r.checks.iter().any(|c| c.name == "signature" && c.result.is_ok()));
}

#[test]
fn username_domain_maps_emails_of_one_domain() {
    let rs = |c: Value| sign(json!({"alg":"RS256","kid":"rsa1"}), c, "rsa");
    let mut i = issuer();
    i.username_domain = Some("example.com".into());
    let v = run(&rs(with(|c| c["preferred_username"] = json!("Alice@Example.com"))), &i).unwrap();
    assert_eq!(v.username, "alice");
    assert_eq!(code(&rs(with(|c| c["preferred_username"] = json!("alice@evil.com"))), &i), "invalid-username");
    assert_eq!(code(&rs(with(|c| c["preferred_username"] = json!("alice"))), &i), "invalid-username");
    assert_eq!(code(&rs(with(|c| c["preferred_username"] = json!("a:b@example.com"))), &i), "invalid-username");
}

/// Issue 11: token type, kid-less tokens, aliases, conditions, names and groups by claim path.
#[test]
fn access_tokens_are_not_login_tokens() {
    let mut i = issuer();
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let t = sign(json!({"alg":"RS256","kid":"rsa1","typ":typ}), claims(), "rsa");
        assert_eq!(code(&t, &i), "access-token", "{typ}");
    }
    i.allow_access_tokens = true;
    assert!(run(&sign(json!({"alg":"RS256","kid":"rsa1","typ":"at+jwt"}), claims(), "rsa"), &i).is_ok());
}

#[test]
fn kidless_token_tries_every_key_that_fits() {
    let rsa2 = keys()["rsa_other"]["jwk"].clone();
    let mut k2 = rsa2.as_object().unwrap().clone();
    k2.insert("kid".into(), json!("rsa2"));
    let k = keys();
    let j = Jwks::from_value(&json!({"keys": [k["rsa"]["jwk"], Value::Object(k2), k["ec"]["jwk"]]})).unwrap();
    for key in ["rsa", "rsa_other"] {
        let t = sign(json!({"alg":"RS256"}), claims(), key);
        let p = parse(&t, 16384).unwrap();
        let v = verify(&p, &issuer(), Keys { jwks: Some(&j), hmac_secret: None }, NOW, &mut Report::default());
        assert!(v.is_ok(), "{key}: {v:?}");
    }
    // Signed by a key the issuer does not have: every candidate fails.
    assert_eq!(code(&sign(json!({"alg":"RS256"}), claims(), "rsa_other"), &issuer()), "bad-signature");
}

#[test]
fn aliases_conditions_and_email_verified() {
    let rs = |c: Value| sign(json!({"alg":"RS256","kid":"rsa1"}), c, "rsa");
    let mut i = issuer();
    i.aliases = vec!["idp.test".into()];
    let v = run(&rs(with(|c| c["iss"] = json!("idp.test"))), &i).unwrap();
    assert_eq!(v.issuer, "https://idp.test", "the canonical URL, whatever alias signed");
    i.require = toml::from_str("hd = \"example.com\"\n").unwrap();
    assert_eq!(code(&rs(claims()), &i), "claim-condition");
    assert!(run(&rs(with(|c| c["hd"] = json!("example.com"))), &i).is_ok());
    assert_eq!(code(&rs(with(|c| c["hd"] = json!("evil.com"))), &i), "claim-condition");
    // A name from email needs email_verified = true.
    let mut e = issuer();
    e.username_claim = "email".into();
    e.username_domain = Some("example.com".into());
    let mail = |verified: Value| {
        rs(with(|c| {
            c["email"] = json!("Alice@EXAMPLE.com");
            c["email_verified"] = verified;
        }))
    };
    assert_eq!(run(&mail(json!(true)), &e).unwrap().username, "alice");
    assert_eq!(code(&mail(json!(false)), &e), "claim-condition");
    assert_eq!(code(&rs(with(|c| c["email"] = json!("alice@example.com"))), &e), "claim-condition");
    e.require_email_verified = false;
    assert!(run(&mail(json!(false)), &e).is_ok());
}

#[test]
fn names_groups_and_identity_from_claim_paths() {
    let rs = |c: Value| sign(json!({"alg":"RS256","kid":"rsa1"}), c, "rsa");
    let mut i = issuer();
    // Reserved names in any case or punctuation are refused as login names.
    for bad in ["Admin", "ADMIN", "wheel", "Docker", "root", "systemd-coredump", "_apt", "uuidd"] {
        assert_eq!(code(&rs(with(|c| c["preferred_username"] = json!(bad))), &i), "reserved-name", "{bad}");
    }
    // Case folding (opt-in) and prefix.
    i.name_prefix = "ext-".into();
    assert_eq!(
        code(&rs(with(|c| c["preferred_username"] = json!("Alice"))), &i),
        "invalid-username",
        "no folding by default"
    );
    i.username_lowercase = true;
    assert_eq!(run(&rs(with(|c| c["preferred_username"] = json!("Alice"))), &i).unwrap().username, "ext-alice");
    // Template over nested claims; identity from oid; groups from a nested path.
    i.name_prefix.clear();
    i.username_template = Some("gh-{repository_owner}".into());
    i.identity_claim = "oid".into();
    i.groups_claim = "realm_access.roles".into();
    let v = run(
        &rs(with(|c| {
            c["repository_owner"] = json!("Acme");
            c["oid"] = json!("0000-oid");
            c["realm_access"] = json!({"roles": ["ops", "devs"]});
        })),
        &i,
    )
    .unwrap();
    assert_eq!((v.username.as_str(), v.identity.as_str()), ("gh-acme", "0000-oid"));
    assert_eq!(v.groups, ["ops", "devs"]);
    assert_eq!(code(&rs(claims()), &i), "bad-claim", "no oid");
    // Cognito's colon claim, a single string group.
    let mut c2 = issuer();
    c2.groups_claim = "cognito:groups".into();
    assert_eq!(run(&rs(with(|c| c["cognito:groups"] = json!("admins-x"))), &c2).unwrap().groups, ["admins-x"]);
    // Entra overage: reported, not silently empty.
    let v = run(
        &rs(with(|c| {
            c.as_object_mut().unwrap().remove("groups");
            c["_claim_names"] = json!({"groups": "src1"});
        })),
        &issuer(),
    )
    .unwrap();
    assert!(v.groups.is_empty());
    assert!(v.warnings.iter().any(|w| w.contains("groups not in token: overage")), "{:?}", v.warnings);
    // An issuer without user accounts needs no login name.
    let mut m = issuer();
    m.user_accounts = false;
    let v = run(&rs(with(|c| drop(c.as_object_mut().unwrap().remove("preferred_username")))), &m).unwrap();
    assert_eq!(v.username, "");
}
