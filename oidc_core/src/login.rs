//! One token, start to finish, as both the PAM module and `helperd check-token`
//! run it: parse, pick the issuer, load its keys from the cache, and on an
//! unknown `kid` (or no cache) ask for one refresh, then verify.
//!
//! I/O here is reading the cache file and the HMAC secret file; the refresh is
//! a callback (the module passes an IPC call with a deadline).

use crate::config::Config;
use crate::jwks::{read_cache, Jwks};
use crate::reason::Rejection;
use crate::verify::{verify, Keys, Report, Verified};
use serde_json::Value;

/// What happened to one token. `issuer`/`sub`/`jti` are what the token claims
/// (unverified unless `result` is `Ok`) — for the audit line.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Verified, Rejection>,
    pub issuer: Option<String>,
    pub sub: Option<String>,
    pub jti: Option<String>,
    pub report: Report,
    /// Context for the log: stale cache, refresh results.
    pub notes: Vec<String>,
}

impl Outcome {
    /// The precise reason with its context, for syslog.
    pub fn reason(&self) -> String {
        let mut s = match &self.result {
            Ok(_) => "token verified".to_string(),
            Err(e) => e.to_string(),
        };
        for n in &self.notes {
            s.push_str("; ");
            s.push_str(&crate::audit::clean_n(n, crate::audit::MAX_CONTEXT));
        }
        s
    }
}

/// `refresh(issuer)` asks helperd to refetch the issuer's JWKS; it returns a
/// description of what happened (or why it could not).
pub fn verify_token(
    cfg: &Config,
    token: &str,
    now: i64,
    refresh: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Outcome {
    let mut out = Outcome {
        result: Err(Rejection::Empty),
        issuer: None,
        sub: None,
        jti: None,
        report: Report::default(),
        notes: vec![],
    };
    let parsed = match crate::token::parse(token, cfg.pam.max_token_bytes) {
        Ok(p) => p,
        Err(e) => {
            out.result = Err(e);
            return out;
        }
    };
    let claim = |k: &str| parsed.claims.get(k).and_then(Value::as_str).map(str::to_string);
    out.issuer = claim("iss");
    out.sub = claim("sub");
    out.jti = claim("jti");
    let iss = match parsed.issuer() {
        Ok(i) => i,
        Err(e) => {
            out.result = Err(e);
            return out;
        }
    };
    let Some(icfg) = cfg.issuer(iss) else {
        let known: Vec<&str> = cfg.issuers.iter().map(|i| i.url.as_str()).collect();
        out.result = Err(Rejection::UntrustedIssuer(format!("{iss} (configured: {})", known.join(", "))));
        return out;
    };
    let secret = match &icfg.hmac_secret_file {
        Some(f) if parsed.alg.is_hmac() => match read_secret_file(f) {
            Ok(s) => Some(s),
            Err(e) => {
                out.result = Err(Rejection::Config(e));
                return out;
            }
        },
        _ => None,
    };
    let max_stale = i64::try_from(cfg.helperd.jwks_max_stale_secs).unwrap_or(i64::MAX);
    let load = |notes: &mut Vec<String>| -> Option<Jwks> {
        match read_cache(&cfg.helperd.cache_dir, iss) {
            Ok((file, _)) if now.saturating_sub(file.expires_at) > max_stale => {
                notes.push(format!(
                    "cached JWKS expired {}s ago, beyond helperd.jwks_max_stale_secs={max_stale}: not used \
                     (helperd cannot reach the IdP?)",
                    now - file.expires_at
                ));
                None
            }
            Ok((file, jwks)) => {
                if file.expires_at < now {
                    notes.push(format!("cached JWKS is stale (expired {}s ago)", now - file.expires_at));
                }
                Some(jwks)
            }
            Err(e) => {
                notes.push(e);
                None
            }
        }
    };
    let run = |jwks: Option<&Jwks>, report: &mut Report| {
        let keys = Keys { jwks, hmac_secret: secret.as_deref().map(Vec::as_slice) };
        verify(&parsed, icfg, keys, now, report)
    };
    let mut jwks = load(&mut out.notes);
    let mut report = Report::default();
    let mut result = run(jwks.as_ref(), &mut report);
    if matches!(result, Err(Rejection::UnknownKid(_) | Rejection::KeysUnavailable(_))) {
        let refreshed = refresh(iss);
        let note = match &refreshed {
            Ok(d) => format!("refresh: {d}"),
            Err(e) => format!("refresh failed: {e}"),
        };
        out.notes.push(note);
        jwks = load(&mut out.notes).or(jwks);
        report = Report::default();
        result = run(jwks.as_ref(), &mut report);
        match &result {
            Err(Rejection::KeysUnavailable(_)) => {
                let why = out.notes.join("; ");
                result = Err(Rejection::KeysUnavailable(why));
                out.notes.clear();
            }
            // The key may exist at the IdP: we could not ask. That is "keys
            // unavailable" (to the user too), not "invalid token".
            Err(Rejection::UnknownKid(kid)) if refreshed.is_err() => {
                let why = format!("unknown kid {}; {}", crate::audit::clean(kid), out.notes.join("; "));
                result = Err(Rejection::KeysUnavailable(why));
                out.notes.clear();
            }
            _ => {}
        }
    }
    out.report = report;
    out.result = result;
    out
}

/// The HMAC secret: a root-only regular file
/// ([`nss_snapshot::format::read_private_file`]); the bytes are wiped.
fn read_secret_file(f: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let mut s = zeroize::Zeroizing::new(nss_snapshot::format::read_private_file(f, 4096)?);
    if s.last() == Some(&b'\n') {
        s.pop();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn hmac_secret_file_must_be_private() {
        let dir = std::env::temp_dir().join(format!("oidc-login-hmac-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("hmac.key");
        std::fs::write(&key, "a-shared-secret-of-at-least-32-bytes\n").unwrap();
        let text = format!(
            "version = 1\n[helperd]\ncache_dir = \"{}\"\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
             algorithms = [\"HS256\"]\nhmac_secret_file = \"{}\"\n",
            dir.display(),
            key.display()
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let now = 1_800_000_000;
        let claims = serde_json::json!({"iss":"https://idp.test","sub":"s","aud":"a","exp":now+60,"iat":now,"preferred_username":"alice"});
        let tok = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"a-shared-secret-of-at-least-32-bytes"),
        )
        .unwrap();
        let mut no_refresh = |_: &str| Err("none".to_string());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = verify_token(&cfg, &tok, now, &mut no_refresh);
        assert_eq!(out.result.unwrap_err().code(), "config-error");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = verify_token(&cfg, &tok, now, &mut no_refresh);
        assert_eq!(out.result.unwrap().username, "alice");
        // Issue 12 (9): a private file that root does not own is refused too.
        std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
        let out = verify_token(&cfg, &tok, now, &mut no_refresh);
        let e = out.result.unwrap_err();
        assert!(e.code() == "config-error" && e.to_string().contains("not root"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 12 (9): keys past the staleness bound are not used; an unknown
    /// kid while the IdP cannot be asked is "keys unavailable" (to the user too).
    #[test]
    fn stale_keys_and_unreachable_idp_are_keys_unavailable() {
        let dir = std::env::temp_dir().join(format!("oidc-login-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys: serde_json::Value = serde_json::from_str(include_str!("../tests/fixtures/test-keys.json")).unwrap();
        let text = format!(
            "version = 1\n[helperd]\ncache_dir = \"{}\"\njwks_max_stale_secs = 3600\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n",
            dir.display()
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let now = 1_800_000_000;
        let write = |expires_at: i64| {
            let file = crate::jwks::CacheFile {
                v: crate::jwks::CACHE_VERSION,
                issuer: "https://idp.test".into(),
                jwks_uri: "https://idp.test/jwks".into(),
                fetched_at: expires_at - 600,
                expires_at,
                jwks: serde_json::json!({"keys": [keys["rsa"]["jwk"]]}),
            };
            let p = crate::jwks::cache_path(&dir, "https://idp.test");
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, serde_json::to_vec(&file).unwrap()).unwrap();
        };
        let claims = serde_json::json!({"iss":"https://idp.test","sub":"s","aud":"a","exp":now+60,"iat":now,"preferred_username":"alice"});
        let sign = |kid: &str| {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            h.kid = Some(kid.into());
            let k = jsonwebtoken::EncodingKey::from_rsa_pem(keys["rsa"]["pem"].as_str().unwrap().as_bytes()).unwrap();
            jsonwebtoken::encode(&h, &claims, &k).unwrap()
        };
        let mut down = |_: &str| Err("helperd unreachable".to_string());
        write(now - 1000);
        assert!(verify_token(&cfg, &sign("rsa1"), now, &mut down).result.is_ok(), "stale within the bound");
        write(now - 4000);
        let e = verify_token(&cfg, &sign("rsa1"), now, &mut down).result.unwrap_err();
        assert_eq!(e.code(), "keys-unavailable");
        assert!(e.to_string().contains("jwks_max_stale_secs"), "{e}");
        assert_eq!(e.user_message(), "OIDC login refused: issuer keys unavailable");
        write(now + 1000);
        let e = verify_token(&cfg, &sign("rotated-in"), now, &mut down).result.unwrap_err();
        assert_eq!(e.code(), "keys-unavailable", "{e}");
        let mut up = |_: &str| Ok("fetched: 1 keys".to_string());
        assert_eq!(verify_token(&cfg, &sign("nope"), now, &mut up).result.unwrap_err().code(), "unknown-kid");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
