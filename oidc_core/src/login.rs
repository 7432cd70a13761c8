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
        out.result = Err(Rejection::UntrustedIssuer(iss.to_string()));
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
    let load = |notes: &mut Vec<String>| -> Option<Jwks> {
        match read_cache(&cfg.helperd.cache_dir, iss) {
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
        let note = match refresh(iss) {
            Ok(d) => format!("refresh: {d}"),
            Err(e) => format!("refresh failed: {e}"),
        };
        out.notes.push(note);
        jwks = load(&mut out.notes).or(jwks);
        report = Report::default();
        result = run(jwks.as_ref(), &mut report);
        if let Err(Rejection::KeysUnavailable(_)) = &result {
            let why = out.notes.join("; ");
            result = Err(Rejection::KeysUnavailable(why));
            out.notes.clear();
        }
    }
    out.report = report;
    out.result = result;
    out
}

/// The HMAC secret: a file only its owner can read (0600/0400), else refused.
fn read_secret_file(f: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is accessible by group or others (mode {:o}); chmod 600",
            f.display(),
            m.mode() & 0o777
        ));
    }
    let s = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
    let trimmed = s.strip_suffix(b"\n").unwrap_or(&s).to_vec();
    Ok(zeroize::Zeroizing::new(trimmed))
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
        std::fs::remove_dir_all(dir).unwrap();
    }
}
