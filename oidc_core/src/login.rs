//! One token, start to finish, as both the PAM module and `helperd check-token`
//! run it: parse, pick the issuer, load its keys from the cache, and on an
//! unknown `kid` (or no cache) ask for one refresh, then verify.
//!
//! The logic is [`verify_token_with`] over a [`KeyStore`]: the real one
//! ([`CacheDir`]) reads the cache file helperd writes and the HMAC secret
//! file, and asks helperd to refresh (an IPC call with a deadline); tests
//! pass keys in memory.

use crate::config::Config;
use crate::jwks::{read_cache, CacheFile, Jwks};
use crate::reason::Rejection;
use crate::token::Parsed;
use crate::verify::{verify, Keys, Report, Verified};
use serde_json::Value;

/// What happened to one token. `issuer`/`sub`/`jti` are what the token claims
/// (unverified unless `result` is `Ok`) — for the audit line.
#[derive(Debug)]
pub struct Outcome<T = Verified> {
    /// The verified token, or why it was refused.
    pub result: Result<T, Rejection>,
    /// The token's `iss`, once parsed.
    pub issuer: Option<String>,
    /// The token's `sub`, once parsed.
    pub sub: Option<String>,
    /// The token's `jti`, once parsed.
    pub jti: Option<String>,
    /// Every check [`verify`] made (empty if it never ran).
    pub report: Report,
    /// Context for the log: stale cache, refresh results.
    pub notes: Vec<String>,
}

impl<T> Outcome<T> {
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

/// Where verification gets keys.
pub trait KeyStore {
    /// The issuer's cached key set (and its cache record: when it expires).
    fn cached(&self, issuer: &str) -> Result<(CacheFile, Jwks), String>;
    /// An issuer's HMAC secret, from its root-only file.
    fn hmac_secret(&self, file: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String>;
    /// Ask helperd to refetch the issuer's keys: a description of what
    /// happened, or why it could not.
    fn refresh(&mut self, issuer: &str) -> Result<String, String>;
}

/// The real key store: helperd's cache dir, and `refresh` (an IPC call).
pub struct CacheDir<'a> {
    /// helperd's cache dir (`helperd.cache_dir`).
    pub dir: &'a std::path::Path,
    /// Asks helperd to refetch an issuer's keys (normally [`crate::Helper::refresh_jwks`]).
    pub refresh: &'a mut dyn FnMut(&str) -> Result<String, String>,
}

impl KeyStore for CacheDir<'_> {
    fn cached(&self, issuer: &str) -> Result<(CacheFile, Jwks), String> {
        read_cache(self.dir, issuer)
    }
    fn hmac_secret(&self, file: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        read_secret_file(file)
    }
    fn refresh(&mut self, issuer: &str) -> Result<String, String> {
        (self.refresh)(issuer)
    }
}

/// [`verify_token_with`] over helperd's cache dir; `refresh(issuer)` asks
/// helperd to refetch the issuer's JWKS.
pub fn verify_token(
    cfg: &Config,
    token: &str,
    now: i64,
    refresh: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Outcome {
    verify_token_with(cfg, token, now, &mut CacheDir { dir: &cfg.helperd.cache_dir, refresh })
}

/// One token against the config, with keys from `keys`.
pub fn verify_token_with(cfg: &Config, token: &str, now: i64, keys: &mut dyn KeyStore) -> Outcome {
    verify_with(cfg, token, now, keys, &verify)
}

/// What checks a parsed token against its issuer's config and keys at a time:
/// [`verify`] for a login token, [`crate::logout::verify_logout`] for a logout token.
pub(crate) type Check<'f, T> =
    dyn Fn(&Parsed<'_>, &crate::config::Issuer, Keys<'_>, i64, &mut Report) -> Result<T, Rejection> + 'f;

/// Parse, pick the issuer, load its keys (one refresh on an unknown `kid` or
/// no keys), then `check`.
pub(crate) fn verify_with<T>(
    cfg: &Config,
    token: &str,
    now: i64,
    keys: &mut dyn KeyStore,
    check: &Check<'_, T>,
) -> Outcome<T> {
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
        Some(f) if parsed.alg.is_hmac() => match keys.hmac_secret(f) {
            Ok(s) => Some(s),
            Err(e) => {
                out.result = Err(Rejection::Config(e));
                return out;
            }
        },
        _ => None,
    };
    let max_stale = i64::try_from(cfg.helperd.jwks_max_stale_secs).unwrap_or(i64::MAX);
    let load = |keys: &dyn KeyStore, notes: &mut Vec<String>| load_jwks(keys, iss, now, max_stale, notes);
    let run = |jwks: Option<&Jwks>, report: &mut Report| {
        let keys = Keys { jwks, hmac_secret: secret.as_deref().map(Vec::as_slice) };
        check(&parsed, icfg, keys, now, report)
    };
    let mut jwks = load(keys, &mut out.notes);
    let mut report = Report::default();
    let mut result = run(jwks.as_ref(), &mut report);
    if matches!(result, Err(Rejection::UnknownKid(_) | Rejection::KeysUnavailable(_))) {
        let refreshed = keys.refresh(iss);
        let note = match &refreshed {
            Ok(d) => format!("refresh: {d}"),
            Err(e) => format!("refresh failed: {e}"),
        };
        out.notes.push(note);
        jwks = load(keys, &mut out.notes).or(jwks);
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

/// The issuer's cached JWKS, unless it is stale beyond `max_stale` seconds
/// (`helperd.jwks_max_stale_secs`); what was wrong goes into `notes`.
pub(crate) fn load_jwks(
    keys: &dyn KeyStore,
    iss: &str,
    now: i64,
    max_stale: i64,
    notes: &mut Vec<String>,
) -> Option<Jwks> {
    match keys.cached(iss) {
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
}

/// The HMAC secret: a root-only regular file
/// ([`nss_snapshot::format::read_private_file`]); the bytes are wiped.
pub(crate) fn read_secret_file(f: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
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
        let tok = crate::crypto::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"a-shared-secret-of-at-least-32-bytes"),
        )
        .unwrap();
        let mut no_refresh = |_: &str| Err("none".to_string());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = verify_token(&cfg, &tok, now, &mut no_refresh);
        assert_eq!(out.result.unwrap_err().code(), "config-error");
        // A 0600 file owned by root is used, and one root does not own is
        // refused: that needs root, so it is checked in the heavy tier
        // (tests/tests/trust_boundaries.rs).
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
            crate::crypto::encode(&h, &claims, &k).unwrap()
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

    /// A key rotated in at the IdP: the first try misses the kid, one refresh
    /// brings it, the second try verifies — in memory, no files.
    #[test]
    fn an_unknown_kid_asks_for_one_refresh() {
        struct Rotating {
            jwks: serde_json::Value,
            refreshed: usize,
        }
        impl KeyStore for Rotating {
            fn cached(&self, issuer: &str) -> Result<(CacheFile, Jwks), String> {
                let keys = if self.refreshed > 0 { self.jwks.clone() } else { serde_json::json!({"keys": []}) };
                let file = CacheFile {
                    v: crate::jwks::CACHE_VERSION,
                    issuer: issuer.into(),
                    jwks_uri: String::new(),
                    fetched_at: 0,
                    expires_at: i64::MAX,
                    jwks: keys.clone(),
                };
                Ok((file, Jwks::from_value(&keys).map_err(|e| e.to_string())?))
            }
            fn hmac_secret(&self, _: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
                Err("none".into())
            }
            fn refresh(&mut self, _: &str) -> Result<String, String> {
                self.refreshed += 1;
                Ok("fetched: 1 keys".into())
            }
        }
        let keys: serde_json::Value = serde_json::from_str(include_str!("../tests/fixtures/test-keys.json")).unwrap();
        let text = "version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n";
        let cfg = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let now = 1_800_000_000;
        let claims = serde_json::json!({"iss":"https://idp.test","sub":"s","aud":"a","exp":now+60,"iat":now,"preferred_username":"alice"});
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("rsa1".into());
        let k = jsonwebtoken::EncodingKey::from_rsa_pem(keys["rsa"]["pem"].as_str().unwrap().as_bytes()).unwrap();
        let tok = crate::crypto::encode(&h, &claims, &k).unwrap();
        let mut store = Rotating { jwks: serde_json::json!({"keys": [keys["rsa"]["jwk"]]}), refreshed: 0 };
        let out = verify_token_with(&cfg, &tok, now, &mut store);
        assert_eq!(out.result.unwrap().username, "alice");
        assert_eq!(store.refreshed, 1);
        assert!(out.notes.iter().any(|n| n.contains("refresh: fetched")), "{:?}", out.notes);
    }
}
