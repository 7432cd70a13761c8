//! Signature and claim verification. Pure: keys and `now` are passed in.
//!
//! Every check is recorded in a [`Report`] (what `helperd check-token` prints);
//! the first failure is the rejection reason.

use crate::alg::Alg;
use crate::config::Issuer;
use crate::jwks::Jwks;
use crate::policy::{check_group_name, check_login_name};
use crate::reason::Rejection;
use crate::token::Parsed;
use serde_json::Value;

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    pub sub: String,
    pub username: String,
    pub groups: Vec<String>,
    pub jti: Option<String>,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub alg: Alg,
    pub kid: Option<String>,
    /// Every claim of the verified token (for account mapping: uid and GECOS claims).
    pub claims: serde_json::Map<String, Value>,
}

/// The keys available for one issuer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keys<'a> {
    pub jwks: Option<&'a Jwks>,
    /// Only when the issuer's config allows HS* and names a secret file.
    pub hmac_secret: Option<&'a [u8]>,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub result: Result<String, Rejection>,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn rec<T>(&mut self, name: &'static str, r: Result<(T, String), Rejection>) -> Result<T, Rejection> {
        match r {
            Ok((v, detail)) => {
                self.checks.push(Check { name, result: Ok(detail) });
                Ok(v)
            }
            Err(e) => {
                self.checks.push(Check { name, result: Err(e.clone()) });
                Err(e)
            }
        }
    }

    fn claim(&mut self, name: &'static str, r: Result<String, Rejection>, first: &mut Option<Rejection>) {
        if let Err(e) = &r {
            first.get_or_insert_with(|| e.clone());
        }
        self.checks.push(Check { name, result: r });
    }
}

/// Verify a parsed token against one issuer's config and keys at `now` (unix seconds).
pub fn verify(
    p: &Parsed<'_>,
    iss: &Issuer,
    keys: Keys<'_>,
    now: i64,
    report: &mut Report,
) -> Result<Verified, Rejection> {
    let issuer = report.rec(
        "issuer",
        p.issuer().and_then(|got| {
            if got == iss.url {
                Ok((got.to_string(), format!("{got} (exact match)")))
            } else {
                Err(Rejection::UntrustedIssuer(got.to_string()))
            }
        }),
    )?;
    report.rec(
        "algorithm",
        if iss.algorithms.contains(&p.alg) {
            Ok(((), format!("{} allowed", p.alg)))
        } else {
            Err(Rejection::AlgNotAllowed {
                alg: p.alg.to_string(),
                allowed: iss.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(","),
            })
        },
    )?;
    let key = report.rec("key", select_key(p, keys))?;
    report.rec(
        "signature",
        match jsonwebtoken::crypto::verify(p.signature, p.signing_input.as_bytes(), &key, p.alg.to_jwt()) {
            Ok(true) => Ok(((), "valid".into())),
            _ => Err(Rejection::BadSignature),
        },
    )?;
    check_claims(p, iss, issuer, now, report)
}

fn select_key(p: &Parsed<'_>, keys: Keys<'_>) -> Result<(jsonwebtoken::DecodingKey, String), Rejection> {
    if p.alg.is_hmac() {
        let secret = keys.hmac_secret.ok_or_else(|| Rejection::NoUsableKey("no HMAC secret configured".into()))?;
        return Ok((jsonwebtoken::DecodingKey::from_secret(secret), "configured HMAC secret".into()));
    }
    let jwks = keys.jwks.ok_or_else(|| Rejection::KeysUnavailable("no JWKS for this issuer".into()))?;
    let k = jwks.select(p.kid.as_deref(), p.alg)?;
    Ok((k.decoding_key()?, format!("kid {}", k.kid.as_deref().unwrap_or("(none)"))))
}

/// NumericDate: an integer or a finite number of seconds; anything else is refused.
fn num_date(c: &crate::strict_json::StrictObject, name: &'static str) -> Result<Option<i64>, Rejection> {
    let bad = |why: &str| Rejection::BadClaim { claim: name.into(), why: why.into() };
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.abs() < 9.0e15) {
                Ok(Some(f.floor() as i64))
            } else {
                Err(bad("number out of range"))
            }
        }
        Some(_) => Err(bad("not a number")),
    }
}

fn opt_str(c: &crate::strict_json::StrictObject, name: &str) -> Result<Option<String>, Rejection> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::BadClaim { claim: name.into(), why: "not a string".into() }),
    }
}

/// A string or an array of strings (`aud`, `amr`, groups).
fn str_list(c: &crate::strict_json::StrictObject, name: &str) -> Result<Vec<String>, Rejection> {
    let bad = |why: &str| Rejection::BadClaim { claim: name.into(), why: why.into() };
    match c.get(name) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => {
            if a.len() > 1024 {
                return Err(bad("more than 1024 values"));
            }
            a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad("array holds a non-string"))).collect()
        }
        Some(_) => Err(bad("not a string or an array of strings")),
    }
}

fn check_claims(p: &Parsed<'_>, iss: &Issuer, issuer: String, now: i64, r: &mut Report) -> Result<Verified, Rejection> {
    let c = &p.claims;
    let lw = iss.leeway_secs;
    let lwi = i64::try_from(lw).unwrap_or(i64::MAX);
    let mut first: Option<Rejection> = None;

    let sub = match opt_str(c, "sub") {
        Ok(Some(s)) if !s.is_empty() && s.len() <= 255 => Ok(s),
        Ok(Some(_)) => Err(Rejection::BadClaim { claim: "sub".into(), why: "empty or longer than 255".into() }),
        Ok(None) => Err(Rejection::MissingClaim("sub")),
        Err(e) => Err(e),
    };
    r.claim("sub", sub.clone(), &mut first);

    let exp = num_date(c, "exp").and_then(|e| e.ok_or(Rejection::MissingClaim("exp")));
    r.claim(
        "exp",
        exp.clone().and_then(|exp| {
            if now > exp.saturating_add(lwi) {
                Err(Rejection::Expired { exp, now, leeway: lw })
            } else {
                Ok(format!("expires in {}s", exp - now))
            }
        }),
        &mut first,
    );

    let nbf = num_date(c, "nbf").and_then(|nbf| match nbf {
        Some(nbf) if nbf > now.saturating_add(lwi) => Err(Rejection::NotYetValid { nbf, now, leeway: lw }),
        Some(nbf) => Ok(format!("valid since {}s", now - nbf)),
        None => Ok("absent".into()),
    });
    r.claim("nbf", nbf, &mut first);

    let iat = num_date(c, "iat").and_then(|i| i.ok_or(Rejection::MissingClaim("iat")));
    r.claim(
        "iat",
        iat.clone().and_then(|iat| {
            if iat > now.saturating_add(lwi) {
                Err(Rejection::IssuedInFuture { iat, now, leeway: lw })
            } else {
                Ok(format!("issued {}s ago", now - iat))
            }
        }),
        &mut first,
    );

    if let (Ok(exp), Ok(iat)) = (&exp, &iat) {
        let lifetime = exp.saturating_sub(*iat);
        let max = iss.max_token_lifetime_secs;
        r.claim(
            "lifetime",
            if lifetime > i64::try_from(max).unwrap_or(i64::MAX) {
                Err(Rejection::LifetimeTooLong { lifetime, max })
            } else {
                Ok(format!("{lifetime}s <= {max}s"))
            },
            &mut first,
        );
    }

    let aud = str_list(c, "aud");
    r.claim(
        "aud",
        aud.clone().and_then(|aud| {
            if aud.is_empty() {
                Err(Rejection::MissingClaim("aud"))
            } else if let Some(a) = aud.iter().find(|a| iss.audiences.contains(a)) {
                Ok(format!("{a} accepted"))
            } else {
                Err(Rejection::AudienceMismatch { got: aud.join(","), want: iss.audiences.join(",") })
            }
        }),
        &mut first,
    );

    let azp = opt_str(c, "azp").and_then(|azp| match (&iss.required_azp, azp) {
        (Some(want), Some(got)) if &got == want => Ok(format!("{got} (required)")),
        (Some(want), got) => {
            Err(Rejection::AzpMismatch { got: got.unwrap_or_else(|| "(absent)".into()), want: want.clone() })
        }
        (None, Some(got)) if aud.as_ref().is_ok_and(|a| a.len() > 1) && !iss.audiences.contains(&got) => {
            Err(Rejection::AzpMismatch { got, want: iss.audiences.join(",") })
        }
        (None, Some(got)) => Ok(got),
        (None, None) if aud.as_ref().is_ok_and(|a| a.len() > 1) => {
            Err(Rejection::AzpMismatch { got: "(absent)".into(), want: "azp with several audiences".into() })
        }
        (None, None) => Ok("absent".into()),
    });
    r.claim("azp", azp, &mut first);

    let acr = opt_str(c, "acr");
    if !iss.acr_values.is_empty() {
        let res = acr.clone().and_then(|a| match a {
            Some(a) if iss.acr_values.contains(&a) => Ok(a),
            a => Err(Rejection::AcrNotAccepted {
                got: a.unwrap_or_else(|| "(absent)".into()),
                want: iss.acr_values.join(","),
            }),
        });
        r.claim("acr", res, &mut first);
    }

    let amr = str_list(c, "amr");
    if !iss.required_amr.is_empty() {
        let res = amr.clone().and_then(|got| {
            if iss.required_amr.iter().all(|w| got.contains(w)) {
                Ok(got.join(","))
            } else {
                Err(Rejection::AmrMissing { got: got.join(","), want: iss.required_amr.join(",") })
            }
        });
        r.claim("amr", res, &mut first);
    }

    let auth_time = num_date(c, "auth_time");
    if let Some(max) = iss.max_auth_age_secs {
        let res = auth_time.clone().and_then(|t| {
            let t = t.ok_or(Rejection::MissingClaim("auth_time"))?;
            let age = now.saturating_sub(t);
            if age > i64::try_from(max).unwrap_or(i64::MAX) {
                Err(Rejection::AuthTooOld { age, max })
            } else {
                Ok(format!("{age}s ago"))
            }
        });
        r.claim("auth_time", res, &mut first);
    }

    let username = opt_str(c, &iss.username_claim).and_then(|u| {
        let u = u.ok_or_else(|| Rejection::BadClaim { claim: iss.username_claim.clone(), why: "missing".into() })?;
        let u = match &iss.username_domain {
            // `alice@example.com` -> `alice`, only for the pinned domain.
            Some(d) => match u.rsplit_once('@') {
                Some((local, dom)) if dom.eq_ignore_ascii_case(d) => local.to_ascii_lowercase(),
                _ => return Err(Rejection::InvalidUsername(format!("{u:?} is not in the domain {d}"))),
            },
            None => u,
        };
        check_login_name(&u).map_err(Rejection::InvalidUsername)?;
        Ok(u)
    });
    r.claim("username", username.clone(), &mut first);

    let groups = str_list(c, &iss.groups_claim).and_then(|gs| {
        for g in &gs {
            check_group_name(g).map_err(|why| Rejection::BadClaim { claim: iss.groups_claim.clone(), why })?;
        }
        Ok(gs)
    });
    r.claim("groups", groups.clone().map(|g| if g.is_empty() { "(none)".into() } else { g.join(",") }), &mut first);

    let jti = opt_str(c, "jti");
    if let Err(e) = &jti {
        r.claim("jti", Err(e.clone()), &mut first);
    }

    if let Some(e) = first {
        return Err(e);
    }
    Ok(Verified {
        issuer,
        sub: sub?,
        username: username?,
        groups: groups?,
        jti: jti?,
        exp: exp?,
        iat: iat?,
        auth_time: auth_time?,
        acr: acr?,
        amr: amr?,
        alg: p.alg,
        kid: p.kid.clone(),
        claims: c.0.clone(),
    })
}

#[cfg(test)]
mod tests;
