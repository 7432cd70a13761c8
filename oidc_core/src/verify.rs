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
    /// The issuer's configured URL (also when the token used an alias).
    pub issuer: String,
    /// The token's `sub` claim (1 to 255 bytes).
    pub sub: String,
    /// The value of the issuer's `identity_claim` (`sub` by default): with
    /// `issuer`, what an account belongs to.
    pub identity: String,
    /// The login name the token makes (prefix, domain and case applied);
    /// empty for an issuer with `user_accounts = false` whose tokens carry none.
    pub username: String,
    /// Raw IdP groups (from `groups_claim`), unsafe ones already dropped.
    pub groups: Vec<String>,
    /// Every group string the token carried, dropped ones too (for the deny list).
    pub all_groups: Vec<String>,
    /// The token could not give its whole group list (overage, a groups claim
    /// of the wrong type, non-string entries): a deny list cannot be trusted on it.
    pub groups_incomplete: bool,
    /// What was dropped or missing and why (logged; the login goes on).
    pub warnings: Vec<String>,
    /// The token's `jti`, if any.
    pub jti: Option<String>,
    /// The token's `sid` (the IdP session, OpenID Connect Back-Channel Logout
    /// §2.1), if any: what a logout token by `sid` matches.
    pub sid: Option<String>,
    /// The token's `exp` (Unix seconds).
    pub exp: i64,
    /// The token's `iat` (Unix seconds).
    pub iat: i64,
    /// The token's `auth_time` (Unix seconds), if any.
    pub auth_time: Option<i64>,
    /// The token's `acr`, if any.
    pub acr: Option<String>,
    /// The token's `amr` values (empty if absent).
    pub amr: Vec<String>,
    /// The algorithm the signature was verified with.
    pub alg: Alg,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// Every claim of the verified token (for account mapping: uid and GECOS claims).
    pub claims: serde_json::Map<String, Value>,
}

/// The keys available for one issuer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keys<'a> {
    /// The issuer's JWK set; none when there is no usable cache.
    pub jwks: Option<&'a Jwks>,
    /// Only when the issuer's config allows HS* and names a secret file.
    pub hmac_secret: Option<&'a [u8]>,
}

/// One verification step and its result, for [`Report`].
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked (`issuer`, `algorithm`, `signature`, a claim name, ...).
    pub name: &'static str,
    /// What passed (for people), or why it failed.
    pub result: Result<String, Rejection>,
}

/// Every check [`verify`] made, in order: what `helperd check-token` prints.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The checks made; verification stops at the first failure of the header and
    /// signature steps, but claim checks all run.
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

    pub(crate) fn claim(&mut self, name: &'static str, r: Result<String, Rejection>, first: &mut Option<Rejection>) {
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
    let issuer = check_signed(p, iss, keys, report, |typ| match typ.as_deref() {
        Some("at+jwt" | "application/at+jwt") if !iss.allow_access_tokens => Err(Rejection::AccessToken),
        // A back-channel logout token is signed by the same keys for the same
        // audience: never a login token.
        Some("logout+jwt" | "application/logout+jwt") => {
            Err(Rejection::BadHeader("typ is logout+jwt: a logout token is not a login token".into()))
        }
        Some(t) => Ok(t.to_string()),
        None => Ok("(no typ)".into()),
    })?;
    check_claims(p, iss, issuer, now, report)
}

/// The steps every signed token of an issuer goes through, whatever it is for
/// (an ID token at login, a logout token): `iss` is the issuer's URL or an
/// alias, `alg` is on its allow-list, the header's `typ` (lower-cased, if any)
/// passes `typ`, a key of the issuer fits and the signature verifies with it.
/// The issuer's canonical URL.
pub(crate) fn check_signed(
    p: &Parsed<'_>,
    iss: &Issuer,
    keys: Keys<'_>,
    report: &mut Report,
    typ: impl FnOnce(Option<String>) -> Result<String, Rejection>,
) -> Result<String, Rejection> {
    let issuer = report.rec(
        "issuer",
        p.issuer().and_then(|got| {
            if got == iss.url {
                Ok((got.to_string(), format!("{got} (exact match)")))
            } else if iss.is(got) {
                Ok((iss.url.clone(), format!("{got} (alias of {})", iss.url)))
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
    let t = p.header.get("typ").and_then(Value::as_str).map(str::to_ascii_lowercase);
    report.rec("token type", typ(t).map(|d| ((), d)))?;
    let candidates = report.rec("key", select_keys(p, keys))?;
    report.rec("signature", {
        let mut found = Err(Rejection::BadSignature);
        for (key, name) in &candidates {
            if let Ok(true) = crate::crypto::verify(p.signature, p.signing_input.as_bytes(), key, p.alg.to_jwt()) {
                found = Ok(((), format!("valid ({name})")));
                break;
            }
        }
        found
    })?;
    Ok(issuer)
}

/// The keys to try: the one named by `kid`, or every key that fits `alg`.
pub(crate) fn select_keys(
    p: &Parsed<'_>,
    keys: Keys<'_>,
) -> Result<(Vec<(jsonwebtoken::DecodingKey, String)>, String), Rejection> {
    if p.alg.is_hmac() {
        let secret = keys.hmac_secret.ok_or_else(|| Rejection::NoUsableKey("no HMAC secret configured".into()))?;
        return Ok((
            vec![(jsonwebtoken::DecodingKey::from_secret(secret), "configured HMAC secret".into())],
            "configured HMAC secret".into(),
        ));
    }
    let jwks = keys.jwks.ok_or_else(|| Rejection::KeysUnavailable("no JWKS for this issuer".into()))?;
    let mut out = vec![];
    for k in jwks.select(p.kid.as_deref(), p.alg)? {
        out.push((k.decoding_key()?, format!("kid {}", k.kid.as_deref().unwrap_or("(none)"))));
    }
    let detail = match (&p.kid, out.len()) {
        (Some(_), _) => out.first().map(|(_, n)| n.clone()).unwrap_or_default(),
        (None, n) => format!("no kid: {n} key(s) fit {}", p.alg),
    };
    Ok((out, detail))
}

/// NumericDate: an integer or a finite number of seconds; anything else is refused.
/// The `nbf` check (optional claim; `leeway` seconds of clock skew), shared by
/// ID, logout and security event tokens.
pub(crate) fn nbf(c: &crate::strict_json::StrictObject, now: i64, leeway: u64) -> Result<String, Rejection> {
    let lwi = i64::try_from(leeway).unwrap_or(i64::MAX);
    num_date(c, "nbf").and_then(|nbf| match nbf {
        Some(nbf) if nbf > now.saturating_add(lwi) => Err(Rejection::NotYetValid { nbf, now, leeway }),
        Some(nbf) => Ok(format!("valid since {}s", now - nbf)),
        None => Ok("absent".into()),
    })
}

pub(crate) fn num_date(c: &crate::strict_json::StrictObject, name: &'static str) -> Result<Option<i64>, Rejection> {
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

pub(crate) fn opt_str(c: &crate::strict_json::StrictObject, name: &str) -> Result<Option<String>, Rejection> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::BadClaim { claim: name.into(), why: "not a string".into() }),
    }
}

/// A string or an array of strings (`aud`, `amr`, groups).
pub(crate) fn str_list(c: &crate::strict_json::StrictObject, name: &str) -> Result<Vec<String>, Rejection> {
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

    r.claim("nbf", nbf(c, now, lw), &mut first);

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
        // An ID token issued to another client of the same IdP names that
        // client in azp: refused, whatever aud says.
        (None, Some(got)) if !iss.audiences.contains(&got) => {
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

    let conds = crate::claims::check(&iss.require, &c.0).map_err(Rejection::ClaimCondition);
    if !iss.require.is_empty() || conds.is_err() {
        r.claim("require", conds.map(|()| format!("{} condition(s) met", iss.require.len())), &mut first);
    }
    if iss.name_from_email() && iss.require_email_verified {
        let ev = match c.get("email_verified") {
            Some(Value::Bool(true)) => Ok("true".to_string()),
            Some(Value::String(s)) if s == "true" => Ok("true".to_string()),
            other => Err(Rejection::ClaimCondition(format!(
                "the login name comes from email but email_verified is {}",
                other.map_or("absent".to_string(), |v| crate::audit::clean_n(&v.to_string(), 40))
            ))),
        };
        r.claim("email_verified", ev, &mut first);
    }

    let identity = match crate::claims::get(&c.0, &iss.identity_claim).and_then(crate::claims::as_text) {
        Some(s) if !s.is_empty() && s.len() <= 255 => Ok(s),
        Some(_) => {
            Err(Rejection::BadClaim { claim: iss.identity_claim.clone(), why: "empty or longer than 255".into() })
        }
        None => Err(Rejection::BadClaim { claim: iss.identity_claim.clone(), why: "missing or not a string".into() }),
    };
    if iss.identity_claim != "sub" || identity.is_err() {
        r.claim("identity", identity.clone(), &mut first);
    }

    let username = login_name(iss, &c.0);
    let username = match username {
        Err(_) if !iss.user_accounts => Ok(String::new()), // role accounts only: no name needed
        u => u,
    };
    r.claim("username", username.clone(), &mut first);

    let mut warnings = vec![];
    let mut all_groups = vec![];
    let mut incomplete = false;
    let groups = groups_of(iss, &c.0, &mut warnings, &mut all_groups, &mut incomplete);
    r.claim("groups", groups.clone().map(|g| if g.is_empty() { "(none)".into() } else { g.join(",") }), &mut first);

    let jti = opt_str(c, "jti");
    if let Err(e) = &jti {
        r.claim("jti", Err(e.clone()), &mut first);
    }
    let sid = match c.get("sid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        Some(_) => {
            warnings.push("sid is not a string of 1 to 255 bytes: ignored (no back-channel logout by sid)".into());
            None
        }
    };
    if crate::logout::has_logout_event(c) {
        let e = Rejection::BadClaim {
            claim: "events".into(),
            why: "a back-channel logout token is not a login token".into(),
        };
        r.claim("events", Err(e), &mut first);
    }

    if let Some(e) = first {
        return Err(e);
    }
    Ok(Verified {
        issuer,
        sub: sub?,
        identity: identity?,
        username: username?,
        groups: groups?,
        all_groups,
        groups_incomplete: incomplete,
        warnings,
        jti: jti?,
        sid,
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

/// What makes a token single-use: its `jti`, or (a token without one) the
/// SHA-256 of its signed part (`header.payload`: a signature can have another
/// valid encoding, ECDSA's s ↔ n−s, the signed content cannot). Never the token itself.
pub fn replay_id(token: &str, jti: Option<&str>) -> String {
    match jti.filter(|j| !j.is_empty()) {
        Some(j) => format!("jti:{}", j.chars().take(256).collect::<String>()),
        None => {
            let signed = token.rsplit_once('.').map_or(token, |(s, _)| s);
            let d = crate::crypto::sha256(signed.as_bytes());
            let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
    }
}

/// The login name a token makes: template or claim, then `@domain`
/// stripping, case folding and the issuer's prefix; it must be a portable
/// login name and not a reserved one.
pub fn login_name(iss: &Issuer, claims: &serde_json::Map<String, Value>) -> Result<String, Rejection> {
    let raw = match &iss.username_template {
        Some(t) => crate::claims::render(t, claims).map_err(Rejection::InvalidUsername)?,
        None => match crate::claims::get(claims, &iss.username_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(Rejection::BadClaim { claim: iss.username_claim.clone(), why: "not a string".into() })
            }
            None => return Err(Rejection::BadClaim { claim: iss.username_claim.clone(), why: "missing".into() }),
        },
    };
    let mut u = match &iss.username_domain {
        // `alice@example.com` -> `alice`, only for the pinned domain.
        Some(d) => match raw.rsplit_once('@') {
            // Mailbox names at these IdPs are case-insensitive: one name per mailbox.
            Some((local, dom)) if dom.eq_ignore_ascii_case(d) => local.to_ascii_lowercase(),
            _ => return Err(Rejection::InvalidUsername(format!("{raw:?} is not in the domain {d}"))),
        },
        None => raw,
    };
    if iss.username_lowercase {
        u = u.to_ascii_lowercase();
    }
    let u = format!("{}{u}", iss.name_prefix);
    if nss_snapshot::format::is_reserved(u.as_bytes()) {
        let shown = crate::audit::clean(&u);
        return Err(Rejection::ReservedName(format!("{shown} is reserved on Linux hosts (any case or punctuation)")));
    }
    check_login_name(&u).map_err(Rejection::InvalidUsername)?;
    Ok(u)
}

/// Groups from `groups_claim` (a string or a list). Values that cannot be
/// group names (not strings, control characters, `:`/`,`, too long) are
/// dropped with a warning; the login goes on. Entra's group overage
/// (`_claim_names.groups`, `hasgroups`) is reported, not silently empty.
fn groups_of(
    iss: &Issuer,
    claims: &serde_json::Map<String, Value>,
    warnings: &mut Vec<String>,
    all: &mut Vec<String>,
    incomplete: &mut bool,
) -> Result<Vec<String>, Rejection> {
    let bad = |why: &str| Rejection::BadClaim { claim: iss.groups_claim.clone(), why: why.into() };
    let values: Vec<&Value> = match crate::claims::get(claims, &iss.groups_claim) {
        None | Some(Value::Null) => {
            let overage =
                claims.get("_claim_names").and_then(Value::as_object).is_some_and(|n| n.contains_key("groups"))
                    || claims.get("hasgroups") == Some(&Value::Bool(true));
            if overage {
                *incomplete = true;
                warnings.push(format!(
                    "groups not in token: overage (the IdP sent _claim_names/hasgroups instead of {}; \
                     filter the groups it emits, e.g. Entra's \"groups assigned to the application\")",
                    iss.groups_claim
                ));
            }
            return Ok(vec![]);
        }
        Some(v @ Value::String(_)) => vec![v],
        Some(Value::Array(a)) if a.len() > 1024 => return Err(bad("more than 1024 values")),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => {
            *incomplete = true;
            warnings.push(format!("groups claim {} is not a string or a list: no groups", iss.groups_claim));
            return Ok(vec![]);
        }
    };
    let mut out = vec![];
    for v in values {
        if let Some(g) = v.as_str() {
            all.push(g.chars().take(256).collect());
        }
        match v.as_str() {
            Some(g) => match check_group_name(g) {
                Ok(()) if !out.iter().any(|o| o == g) => out.push(g.to_string()),
                Ok(()) => {}
                Err(why) => warnings.push(format!("group dropped: {why}")),
            },
            None => {
                *incomplete = true;
                warnings.push("group dropped: a non-string value".into());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
