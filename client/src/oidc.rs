//! OpenID Connect for a person at a terminal: discovery, the authorization
//! code flow with PKCE (S256) and a loopback redirect (RFC 8252 §7.3), the
//! device flow (RFC 8628) when headless, and the refresh grant. The ID token
//! comes over TLS from the token endpoint; the client checks `iss`, `aud`,
//! `exp` and `nonce` only (the host verifies the signature).

use crate::config::Settings;
use crate::http::{check_url, Http};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use std::net::TcpListener;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod loopback;
pub use loopback::{open_browser, wait_for_callback};

/// The endpoints of an issuer's discovery document that the client uses.
#[derive(Clone, Debug)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
}

/// What a token endpoint gave.
pub struct Tokens {
    pub id_token: Zeroizing<String>,
    pub refresh_token: Option<Zeroizing<String>>,
}

/// A refresh that failed: `Rejected` (the grant is gone: log in again) or
/// anything else (network, server), which keeps the refresh token.
#[derive(Debug)]
pub enum RefreshError {
    Rejected(String),
    Failed(String),
    /// The IdP answered with an ID token that does not check (expired by a
    /// skewed clock, another audience...): its rotated refresh token, if it
    /// sent one, must still be kept — the old one is spent.
    Unusable(String, Option<Zeroizing<String>>),
}

pub fn discover(http: &Http, issuer: &str) -> Result<Provider, String> {
    check_url(issuer)?;
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let (status, doc) = http.get_json(&url, &[])?;
    if status != 200 {
        return Err(format!("discovery {url}: HTTP {status}"));
    }
    parse_discovery(issuer, &doc)
}

pub fn parse_discovery(issuer: &str, doc: &Value) -> Result<Provider, String> {
    if doc["issuer"].as_str() != Some(issuer) {
        return Err(format!(
            "the discovery document of {issuer} names issuer {}: configure the issuer exactly as the IdP spells it",
            doc["issuer"]
        ));
    }
    let endpoint = |k: &str| -> Result<Option<String>, String> {
        match doc[k].as_str() {
            None => Ok(None),
            Some(u) => check_url(u).map(|()| Some(u.to_string())).map_err(|e| format!("{k}: {e}")),
        }
    };
    Ok(Provider {
        issuer: issuer.to_string(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?.ok_or("the discovery document has no token_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
    })
}

/// `n` random bytes from the system CSPRNG, base64url.
pub fn random(n: usize) -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| "the system random generator failed".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

/// RFC 7636 S256: challenge = base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// The authorization request URL.
pub fn authorize_url(
    endpoint: &str,
    s: &Settings,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
    nonce: &str,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &s.scopes)
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(p) = s.prompt() {
        q.append_pair("prompt", &p);
    }
    for (k, v) in &s.extra_auth_params {
        q.append_pair(k, v);
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", q.finish())
}

/// The authorization code flow with PKCE and a loopback redirect.
pub fn browser_login(http: &Http, p: &Provider, s: &Settings, open: bool) -> Result<Tokens, String> {
    let endpoint = p.authorization_endpoint.as_deref().ok_or("the IdP has no authorization_endpoint: use --device")?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("loopback listener: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = Zeroizing::new(random(32)?);
    let (state, nonce) = (random(16)?, random(16)?);
    let url = authorize_url(endpoint, s, &redirect_uri, &pkce_challenge(&verifier), &state, &nonce);
    eprintln!("pam-oidc: log in at {} in your browser:\n\n    {}\n", p.issuer, crate::text::visible(&url));
    if open {
        if let Err(e) = open_browser(&url) {
            eprintln!("pam-oidc: {}; open the URL above yourself", crate::text::visible(&e));
        }
    }
    let code = wait_for_callback(&listener, &state, Duration::from_secs(s.login_timeout_secs))?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", s.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    if let Some(sec) = &s.client_secret {
        form.push(("client_secret", sec));
    }
    let tokens = token_request(http, p, &form).map_err(|e| match e {
        RefreshError::Rejected(m) | RefreshError::Failed(m) | RefreshError::Unusable(m, _) => m,
    })?;
    check_id_token(&tokens.id_token, &p.issuer, &s.client_id, Some(&nonce), now())?;
    Ok(tokens)
}

/// The device authorization grant (RFC 8628): for a terminal without a browser.
pub fn device_login(http: &Http, p: &Provider, s: &Settings) -> Result<Tokens, String> {
    let endpoint = p.device_authorization_endpoint.as_deref().ok_or("the IdP has no device_authorization_endpoint")?;
    let mut form = vec![("client_id", s.client_id.as_str()), ("scope", s.scopes.as_str())];
    if let Some(sec) = &s.client_secret {
        form.push(("client_secret", sec));
    }
    let (status, dev) = http.post_form(endpoint, &form)?;
    if status != 200 {
        return Err(format!("device authorization: HTTP {status}: {}", oauth_error(&dev)));
    }
    let device_code =
        Zeroizing::new(dev["device_code"].as_str().ok_or("device authorization: no device_code")?.to_string());
    let user_code = dev["user_code"].as_str().unwrap_or("");
    let uri = dev["verification_uri_complete"].as_str().or(dev["verification_uri"].as_str()).unwrap_or("");
    let (uri, user_code) = (crate::text::visible(uri), crate::text::visible(user_code));
    eprintln!("pam-oidc: to log in at {}, open\n\n    {uri}\n\nand confirm the code {user_code}", p.issuer);
    let mut interval = dev["interval"].as_u64().unwrap_or(5).clamp(1, 60);
    let expires = dev["expires_in"].as_u64().unwrap_or(600).min(s.login_timeout_secs.max(60));
    let deadline = Instant::now() + Duration::from_secs(expires);
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
        ("client_id", s.client_id.as_str()),
    ];
    if let Some(sec) = &s.client_secret {
        form.push(("client_secret", sec));
    }
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(interval));
        let (status, v) = http.post_form(&p.token_endpoint, &form)?;
        if status == 200 {
            let t = tokens_of(&v)?;
            check_id_token(&t.id_token, &p.issuer, &s.client_id, None, now())?;
            return Ok(t);
        }
        match v["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            _ => return Err(format!("device login: {}", oauth_error(&v))),
        }
    }
    Err("device login: the code expired before it was confirmed".into())
}

/// The refresh grant: a new ID token (each is fresh: a host accepts a token once).
pub fn refresh(http: &Http, p: &Provider, s: &Settings, refresh_token: &str) -> Result<Tokens, RefreshError> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", s.client_id.as_str()),
        ("scope", s.scopes.as_str()),
    ];
    if let Some(sec) = &s.client_secret {
        form.push(("client_secret", sec));
    }
    let t = token_request(http, p, &form)?;
    if let Err(e) = check_id_token(&t.id_token, &p.issuer, &s.client_id, None, now()) {
        return Err(RefreshError::Unusable(e, t.refresh_token));
    }
    Ok(t)
}

fn token_request(http: &Http, p: &Provider, form: &[(&str, &str)]) -> Result<Tokens, RefreshError> {
    let (status, v) = http.post_form(&p.token_endpoint, form).map_err(RefreshError::Failed)?;
    if status == 200 {
        return tokens_of(&v).map_err(RefreshError::Failed);
    }
    let msg = format!("token endpoint: HTTP {status}: {}", oauth_error(&v));
    match v["error"].as_str() {
        Some("invalid_grant") | Some("invalid_client") | Some("unauthorized_client") => {
            Err(RefreshError::Rejected(msg))
        }
        _ => Err(RefreshError::Failed(msg)),
    }
}

fn tokens_of(v: &Value) -> Result<Tokens, String> {
    let id = v["id_token"].as_str().ok_or("the token response has no id_token (is `openid` in the scopes?)")?;
    Ok(Tokens {
        id_token: Zeroizing::new(id.to_string()),
        refresh_token: v["refresh_token"].as_str().map(|r| Zeroizing::new(r.to_string())),
    })
}

fn oauth_error(v: &Value) -> String {
    let e = v["error"].as_str().unwrap_or("unknown error");
    match v["error_description"].as_str() {
        Some(d) => format!("{e} ({})", d.chars().filter(|c| !c.is_control()).take(200).collect::<String>()),
        None => e.to_string(),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Does `s` look like a compact JWS (three base64url parts, a JSON header)?
pub fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    s.starts_with("eyJ")
        && parts.len() == 3
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// The (unverified) claims of a JWT.
pub fn claims(jwt: &str) -> Result<Value, String> {
    if !looks_like_jwt(jwt) {
        return Err("not a JWT".into());
    }
    let payload = jwt.split('.').nth(1).unwrap_or("");
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "a JWT whose payload is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "a JWT whose payload is not JSON".into())
}

/// Seconds a JWT has left (its `exp` minus `now`); None without one.
pub fn remaining(jwt: &str, now: i64) -> Option<i64> {
    claims(jwt).ok()?["exp"].as_i64().map(|e| e - now)
}

/// The checks a client can make: issuer, audience, expiry, nonce. The
/// signature is the host's to verify.
pub fn check_id_token(
    jwt: &str,
    issuer: &str,
    client_id: &str,
    nonce: Option<&str>,
    now: i64,
) -> Result<Value, String> {
    let c = claims(jwt).map_err(|e| format!("the ID token: {e}"))?;
    if c["iss"].as_str() != Some(issuer) {
        return Err(format!("the ID token's issuer is {}, not {issuer}", c["iss"]));
    }
    let aud_ok = match &c["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(l) => l.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("the ID token is not for client {client_id} (aud {})", c["aud"]));
    }
    match c["exp"].as_i64() {
        Some(exp) if exp > now => {}
        _ => return Err("the ID token has expired (or has no exp): is the clock right?".into()),
    }
    if let Some(n) = nonce {
        if c["nonce"].as_str() != Some(n) {
            return Err("the ID token's nonce is not the one this login sent".into());
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::loopback::{parse_callback, Callback};
    use super::*;
    use serde_json::json;
    use std::io::Write as _;

    fn jwt(claims: &Value) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = random(32).unwrap();
        assert_eq!(v.len(), 43, "a 43-character verifier (RFC 7636 §4.1)");
        assert_ne!(v, random(32).unwrap());
    }

    #[test]
    fn authorize_url_carries_pkce_state_nonce_and_consent_for_offline_access() {
        let s = Settings::for_tests("https://idp.example", "cli");
        let u = authorize_url("https://idp.example/auth", &s, "http://127.0.0.1:5000/callback", "CH", "ST", "NO");
        assert!(u.starts_with("https://idp.example/auth?response_type=code&client_id=cli&"), "{u}");
        for part in [
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback",
            "scope=openid+profile+offline_access",
            "state=ST",
            "nonce=NO",
            "code_challenge=CH",
            "code_challenge_method=S256",
            "prompt=consent",
        ] {
            assert!(u.contains(part), "{part} in {u}");
        }
    }

    #[test]
    fn callbacks_need_our_state() {
        assert_eq!(parse_callback("GET /callback?code=abc&state=s1 HTTP/1.1\r\n", "s1"), Callback::Code("abc".into()));
        assert_eq!(parse_callback("GET /callback?code=abc&state=s2 HTTP/1.1", "s1"), Callback::Other);
        assert_eq!(parse_callback("GET /callback?code=abc HTTP/1.1", "s1"), Callback::Other);
        assert_eq!(parse_callback("GET /favicon.ico HTTP/1.1", "s1"), Callback::Other);
        assert_eq!(parse_callback("POST /callback?code=abc&state=s1 HTTP/1.1", "s1"), Callback::Other);
        assert_eq!(
            parse_callback("GET /callback?error=access_denied&error_description=no+way&state=s1 HTTP/1.1", "s1"),
            Callback::Error("access_denied: no way".into())
        );
    }

    #[test]
    fn loopback_listener_answers_the_browser_and_returns_the_code() {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let get = |path: &str| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
                let mut out = String::new();
                std::io::Read::read_to_string(&mut s, &mut out).unwrap();
                out
            };
            assert!(get("/favicon.ico").starts_with("HTTP/1.1 404"));
            assert!(get("/callback?code=c&state=forged").starts_with("HTTP/1.1 404"));
            get("/callback?code=the-code&state=st")
        });
        let code = wait_for_callback(&l, "st", Duration::from_secs(10)).unwrap();
        assert_eq!(code.as_str(), "the-code");
        assert!(t.join().unwrap().contains("Logged in"));
    }

    #[test]
    fn id_token_sanity_checks() {
        let now = 1_000_000;
        let good = json!({"iss": "https://i", "aud": "cli", "exp": now + 60, "nonce": "n"});
        assert!(check_id_token(&jwt(&good), "https://i", "cli", Some("n"), now).is_ok());
        let mut multi = good.clone();
        multi["aud"] = json!(["x", "cli"]);
        assert!(check_id_token(&jwt(&multi), "https://i", "cli", None, now).is_ok());
        for (k, v) in
            [("iss", json!("https://evil")), ("aud", json!("other")), ("exp", json!(now - 1)), ("nonce", json!("m"))]
        {
            let mut c = good.clone();
            c[k] = v;
            assert!(check_id_token(&jwt(&c), "https://i", "cli", Some("n"), now).is_err(), "{k}");
        }
        assert!(check_id_token("not-a-jwt", "https://i", "cli", None, now).is_err());
        assert_eq!(remaining(&jwt(&good), now), Some(60));
    }

    #[test]
    fn discovery_must_name_the_issuer_and_use_https() {
        let doc = json!({"issuer": "https://i", "token_endpoint": "https://i/token", "authorization_endpoint": "https://i/auth"});
        let p = parse_discovery("https://i", &doc).unwrap();
        assert_eq!(p.token_endpoint, "https://i/token");
        assert!(p.device_authorization_endpoint.is_none());
        assert!(parse_discovery("https://j", &doc).is_err());
        let mut bad = doc.clone();
        bad["token_endpoint"] = json!("http://i/token");
        assert!(parse_discovery("https://i", &bad).is_err());
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;
    use std::io::{Read, Write};

    /// The IdP rotated the refresh token but its ID token does not check (a
    /// skewed clock): the rotated refresh token comes back to be kept.
    #[test]
    fn a_rotated_refresh_token_is_kept_when_the_id_token_does_not_check() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}");
        let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let expired = format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"iss": issuer, "aud": "cli", "exp": 1_000, "iat": 900, "sub": "u"}))
        );
        let body = serde_json::json!({"id_token": expired, "refresh_token": "rt-2"}).to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).unwrap();
        });
        let p = Provider {
            issuer: issuer.clone(),
            authorization_endpoint: None,
            token_endpoint: format!("{issuer}/token"),
            device_authorization_endpoint: None,
        };
        let s = Settings::for_tests(&issuer, "cli");
        let http = Http::new(std::time::Duration::from_secs(5));
        match refresh(&http, &p, &s, "rt-1") {
            Err(RefreshError::Unusable(why, Some(rt))) => {
                assert_eq!(rt.as_str(), "rt-2");
                assert!(why.contains("exp") || why.contains("expired"), "{why}");
            }
            Err(RefreshError::Unusable(why, None)) => panic!("rotated token lost: {why}"),
            Err(RefreshError::Rejected(m) | RefreshError::Failed(m)) => panic!("{m}"),
            Ok(_) => panic!("an expired ID token was accepted"),
        }
        server.join().unwrap();
    }
}
