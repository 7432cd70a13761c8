//! OpenID Connect Back-Channel Logout 1.0: the logout token (§2.4), its
//! validation (§2.6) and which sessions it ends (§2.7). Pure: keys and `now`
//! are passed in, as for ID tokens — and the signature, issuer, algorithm and
//! key steps are the ID token's own ([`crate::verify`]), so there is one JWT
//! path, not two.
//!
//! What is refused, each with its reason: an issuer that is not configured,
//! `alg` off the issuer's allow-list (`none` never parses), a header `typ`
//! other than `logout+jwt` (or the untyped `JWT`), a signature no key of the
//! issuer verifies, `aud` without one of the issuer's audiences, `iat` absent,
//! in the future or older than [`MAX_AGE_SECS`] (plus the issuer's leeway),
//! `exp`/`nbf` (optional) out of range, `jti` absent, `events` without a
//! `http://schemas.openid.net/event/backchannel-logout` member whose value is
//! a JSON object, neither `sub` nor `sid`, and any `nonce`. That a `jti` is
//! used once is the receiver's (helperd's) business: it keeps the record.

use crate::alg::Alg;
use crate::config::{Config, Issuer};
use crate::login::{verify_with, KeyStore, Outcome};
use crate::reason::Rejection;
use crate::session::SessionClaims;
use crate::strict_json::StrictObject;
use crate::token::Parsed;
use crate::verify::{check_signed, num_date, str_list, Keys, Report};
use serde_json::Value;

/// The member of `events` that makes a JWT a back-channel logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token is accepted at most this long after its `iat` (plus the
/// issuer's leeway), whatever its `exp` says: the IdP sends it at once, and
/// its `jti` has to be remembered only this long.
pub const MAX_AGE_SECS: i64 = 600;

/// A verified logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The issuer's configured URL (also when the token used an alias).
    pub issuer: String,
    /// The token's `sub`: every session of this subject ends.
    pub sub: Option<String>,
    /// The token's `sid`: the session(s) whose ID token carried this `sid` end.
    pub sid: Option<String>,
    /// The token's `jti` (accepted once).
    pub jti: String,
    /// The token's `iat` (Unix seconds).
    pub iat: i64,
    /// The algorithm the signature was verified with.
    pub alg: Alg,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
}

impl LogoutToken {
    /// Does this token end the session holding `c`? Same issuer, and the
    /// token's `sid` (when it has one) is the session's, and its `sub` (when
    /// it has one) is the session's `sub`.
    pub fn matches(&self, c: &SessionClaims) -> bool {
        c.issuer == self.issuer
            && self.sid.as_ref().is_none_or(|sid| c.sid.as_ref() == Some(sid))
            && self.sub.as_ref().is_none_or(|sub| &c.sub == sub)
    }

    /// Until when the token would still be accepted (`iat` + [`MAX_AGE_SECS`] +
    /// `leeway_secs`): how long its `jti` must be remembered.
    pub fn accepted_until(&self, leeway_secs: u64) -> i64 {
        self.iat.saturating_add(MAX_AGE_SECS).saturating_add(i64::try_from(leeway_secs).unwrap_or(i64::MAX))
    }

    /// The key its one use is recorded under (apart from login tokens' ids).
    pub fn replay_id(&self) -> String {
        format!("logout-jti:{}", self.jti.chars().take(256).collect::<String>())
    }

    /// `sub=… sid=…` for a log line (attacker-chosen text escaped).
    pub fn who(&self) -> String {
        let show = |v: &Option<String>| v.as_deref().map_or("-".into(), crate::audit::clean);
        format!("sub={} sid={}", show(&self.sub), show(&self.sid))
    }
}

/// Does a token's payload carry the back-channel logout event? (Such a token
/// is never a login token.)
pub(crate) fn has_logout_event(c: &StrictObject) -> bool {
    c.get("events").and_then(Value::as_object).is_some_and(|e| e.contains_key(EVENT))
}

/// A string claim of 1 to 255 bytes, if present.
fn short_str(c: &StrictObject, name: &str) -> Result<Option<String>, Rejection> {
    match c.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::BadClaim { claim: name.into(), why: "not a string of 1 to 255 bytes".into() }),
    }
}

/// Verify a parsed logout token against one issuer's config and keys at `now`.
pub fn verify_logout(
    p: &Parsed<'_>,
    iss: &Issuer,
    keys: Keys<'_>,
    now: i64,
    r: &mut Report,
) -> Result<LogoutToken, Rejection> {
    let issuer = check_signed(p, iss, keys, r, |typ| match typ.as_deref() {
        Some(t @ ("logout+jwt" | "application/logout+jwt")) => Ok(t.to_string()),
        // Untyped as far as the header says: events and the absent nonce
        // tell it from an ID token.
        Some(t @ ("jwt" | "application/jwt")) => Ok(format!("{t} (not explicitly typed)")),
        None => Ok("(no typ)".into()),
        Some(t) => Err(Rejection::BadHeader(format!("typ {t} is not logout+jwt"))),
    })?;
    let c = &p.claims;
    let lw = iss.leeway_secs;
    let lwi = i64::try_from(lw).unwrap_or(i64::MAX);
    let mut first: Option<Rejection> = None;

    let aud = str_list(c, "aud").and_then(|aud| {
        if aud.is_empty() {
            Err(Rejection::MissingClaim("aud"))
        } else if let Some(a) = aud.iter().find(|a| iss.audiences.contains(a)) {
            Ok(format!("{a} accepted"))
        } else {
            Err(Rejection::AudienceMismatch { got: aud.join(","), want: iss.audiences.join(",") })
        }
    });
    r.claim("aud", aud, &mut first);

    let iat = num_date(c, "iat").and_then(|i| i.ok_or(Rejection::MissingClaim("iat")));
    r.claim(
        "iat",
        iat.clone().and_then(|iat| {
            let age = now.saturating_sub(iat);
            if iat > now.saturating_add(lwi) {
                Err(Rejection::IssuedInFuture { iat, now, leeway: lw })
            } else if age > MAX_AGE_SECS.saturating_add(lwi) {
                Err(Rejection::BadClaim {
                    claim: "iat".into(),
                    why: format!(
                        "issued {age}s ago: a logout token is accepted for {MAX_AGE_SECS}s after iat \
                         (+ leeway {lw}s)"
                    ),
                })
            } else {
                Ok(format!("issued {age}s ago"))
            }
        }),
        &mut first,
    );

    let exp = num_date(c, "exp").and_then(|exp| match exp {
        Some(exp) if now > exp.saturating_add(lwi) => Err(Rejection::Expired { exp, now, leeway: lw }),
        Some(exp) => Ok(format!("expires in {}s", exp - now)),
        // Required since the final spec; drafts had none, and iat bounds the age.
        None => Ok("absent".into()),
    });
    r.claim("exp", exp, &mut first);

    r.claim("nbf", crate::verify::nbf(c, now, lw), &mut first);

    let jti = short_str(c, "jti").and_then(|j| j.ok_or(Rejection::MissingClaim("jti")));
    r.claim("jti", jti.clone(), &mut first);

    let bad_events = |why: &str| Rejection::BadClaim { claim: "events".into(), why: why.into() };
    let events = match c.get("events") {
        None => Err(Rejection::MissingClaim("events")),
        Some(Value::Object(e)) => match e.get(EVENT) {
            Some(Value::Object(_)) => Ok(format!("{EVENT} present")),
            Some(_) => Err(bad_events(&format!("the value of {EVENT} is not a JSON object"))),
            None => Err(bad_events(&format!("no {EVENT} member"))),
        },
        Some(_) => Err(bad_events("not a JSON object")),
    };
    r.claim("events", events, &mut first);

    let sub = short_str(c, "sub");
    let sid = short_str(c, "sid");
    let subject = match (&sub, &sid) {
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        (Ok(None), Ok(None)) => Err(Rejection::MissingClaim("sub or sid")),
        (Ok(sub), Ok(sid)) => Ok(format!(
            "sub {} sid {}",
            sub.as_deref().map_or("(absent)".into(), crate::audit::clean),
            sid.as_deref().map_or("(absent)".into(), crate::audit::clean)
        )),
    };
    r.claim("sub/sid", subject, &mut first);

    if c.get("nonce").is_some() {
        let e = Rejection::BadClaim { claim: "nonce".into(), why: "a logout token must not carry a nonce".into() };
        r.claim("nonce", Err(e), &mut first);
    }

    if let Some(e) = first {
        return Err(e);
    }
    Ok(LogoutToken { issuer, sub: sub?, sid: sid?, jti: jti?, iat: iat?, alg: p.alg, kid: p.kid.clone() })
}

/// One logout token against the config, with keys from `keys` (one refresh on
/// an unknown `kid`, as for a login token).
pub fn verify_logout_token_with(cfg: &Config, token: &str, now: i64, keys: &mut dyn KeyStore) -> Outcome<LogoutToken> {
    verify_with(cfg, token, now, keys, &verify_logout)
}

#[cfg(test)]
mod tests;
