//! Security Event Tokens (RFC 8417), as a Shared Signals transmitter delivers
//! them (RFC 8936 polling). Verified like an ID token's signature — the
//! issuer's keys, its algorithm allow-list, the same key selection — but a
//! SET is not an ID token: its header says `typ: secevent+jwt` (which token
//! parsing for logins refuses, so neither is taken for the other), and its
//! claims are `iss`, `aud`, `iat`, `jti` and `events`; no `sub` or `exp` is
//! required (an `exp`, if present, is honoured).

use crate::config::{Config, Issuer};
use crate::login::{load_jwks, KeyStore};
use crate::reason::Rejection;
use crate::token::Parsed;
use crate::verify::{num_date, select_keys, str_list, Keys};
use serde_json::Value;

/// CAEP: the subject's sessions were revoked.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// RISC: the subject's account was disabled.
pub const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC: the subject's account was enabled again.
pub const ACCOUNT_ENABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
/// Largest SET read.
pub const MAX_SET_BYTES: usize = 64 * 1024;

/// A verified SET.
#[derive(Debug, Clone, PartialEq)]
pub struct SecEvent {
    /// The issuer's configured URL.
    pub issuer: String,
    /// The SET's `jti` (what is acknowledged).
    pub jti: String,
    /// The SET's `iat`.
    pub iat: i64,
    /// `events`: event type URI → its payload (an object).
    pub events: serde_json::Map<String, Value>,
    /// The SET's top-level `sub_id` (Shared Signals 1.0), if any.
    pub sub_id: Option<Value>,
}

/// Whom an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `{"format": "iss_sub", "iss": ..., "sub": ...}` (also as a `complex`
    /// subject's `user`).
    IssSub {
        /// The subject's issuer, as the transmitter wrote it.
        iss: String,
        /// Its `sub`.
        sub: String,
    },
    /// Any other format (`email`, `opaque`, ...), or none: named for the log.
    Unsupported(String),
}

fn iss_sub(v: &Value) -> Option<Subject> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty() && x.len() <= 1024);
    match s("format")? {
        "iss_sub" => Some(Subject::IssSub { iss: s("iss")?.to_string(), sub: s("sub")?.to_string() }),
        "complex" => v.get("user").and_then(iss_sub),
        _ => None,
    }
}

impl SecEvent {
    /// The subject of `event` (its payload's `subject`, else the SET's `sub_id`).
    pub fn subject(&self, event: &Value) -> Subject {
        let Some(v) = event.get("subject").or(self.sub_id.as_ref()) else {
            return Subject::Unsupported("no subject".into());
        };
        iss_sub(v).unwrap_or_else(|| {
            let f = v.get("format").and_then(Value::as_str).unwrap_or("(no format)");
            Subject::Unsupported(format!("subject format {}", crate::audit::clean_n(f, 40)))
        })
    }
}

/// Verify a parsed SET of issuer `iss` for `audience` at `now`.
pub fn verify_set(
    p: &Parsed<'_>,
    iss: &Issuer,
    audience: &str,
    keys: Keys<'_>,
    now: i64,
) -> Result<SecEvent, Rejection> {
    let got = p.issuer()?;
    if !iss.is(got) {
        return Err(Rejection::UntrustedIssuer(format!("{got} (this stream's issuer is {})", iss.url)));
    }
    if !iss.algorithms.contains(&p.alg) {
        let allowed = iss.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(",");
        return Err(Rejection::AlgNotAllowed { alg: p.alg.to_string(), allowed });
    }
    let (candidates, _) = select_keys(p, keys)?;
    let valid = candidates.iter().any(|(key, _)| {
        matches!(crate::crypto::verify(p.signature, p.signing_input.as_bytes(), key, p.alg.to_jwt()), Ok(true))
    });
    if !valid {
        return Err(Rejection::BadSignature);
    }
    let c = &p.claims;
    let aud = str_list(c, "aud")?;
    if !aud.iter().any(|a| a == audience) {
        return Err(Rejection::AudienceMismatch { got: aud.join(","), want: audience.into() });
    }
    let lw = iss.leeway_secs;
    let lwi = i64::try_from(lw).unwrap_or(i64::MAX);
    let iat = num_date(c, "iat")?.ok_or(Rejection::MissingClaim("iat"))?;
    if iat > now.saturating_add(lwi) {
        return Err(Rejection::IssuedInFuture { iat, now, leeway: lw });
    }
    if let Some(exp) = num_date(c, "exp")? {
        if now > exp.saturating_add(lwi) {
            return Err(Rejection::Expired { exp, now, leeway: lw });
        }
    }
    let jti = match c.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => j.clone(),
        Some(_) => {
            return Err(Rejection::BadClaim { claim: "jti".into(), why: "not a string of 1..=256 bytes".into() })
        }
        None => return Err(Rejection::MissingClaim("jti")),
    };
    let events = match c.get("events") {
        Some(Value::Object(m)) if !m.is_empty() && m.len() <= 16 && m.values().all(Value::is_object) => m.clone(),
        Some(_) => return Err(Rejection::BadClaim { claim: "events".into(), why: "not 1..=16 event objects".into() }),
        None => return Err(Rejection::MissingClaim("events")),
    };
    Ok(SecEvent { issuer: iss.url.clone(), jti, iat, events, sub_id: c.get("sub_id").cloned() })
}

/// A SET start to finish: parse (`typ: secevent+jwt`), issuer `issuer_url`'s
/// keys from `store` (one refresh on an unknown `kid`, as for logins), verify.
pub fn verify_set_with(
    cfg: &Config,
    token: &str,
    issuer_url: &str,
    audience: &str,
    now: i64,
    store: &mut dyn KeyStore,
) -> Result<SecEvent, Rejection> {
    let p = crate::token::parse_as(token, MAX_SET_BYTES, true)?;
    let iss = cfg.issuer(issuer_url).ok_or_else(|| Rejection::UntrustedIssuer(issuer_url.into()))?;
    let secret = match &iss.hmac_secret_file {
        Some(f) if p.alg.is_hmac() => Some(store.hmac_secret(f).map_err(Rejection::Config)?),
        _ => None,
    };
    let max_stale = i64::try_from(cfg.helperd.jwks_max_stale_secs).unwrap_or(i64::MAX);
    let mut notes = vec![];
    let run = |jwks: Option<&crate::jwks::Jwks>| {
        verify_set(&p, iss, audience, Keys { jwks, hmac_secret: secret.as_deref().map(Vec::as_slice) }, now)
    };
    let jwks = load_jwks(store, &iss.url, now, max_stale, &mut notes);
    match run(jwks.as_ref()) {
        Err(Rejection::UnknownKid(_) | Rejection::KeysUnavailable(_)) => {
            if let Err(e) = store.refresh(&iss.url) {
                notes.push(format!("refresh failed: {e}"));
            }
            let jwks = load_jwks(store, &iss.url, now, max_stale, &mut notes).or(jwks);
            run(jwks.as_ref()).map_err(|e| match e {
                Rejection::KeysUnavailable(_) => Rejection::KeysUnavailable(notes.join("; ")),
                e => e,
            })
        }
        r => r,
    }
}

#[cfg(test)]
mod tests;
