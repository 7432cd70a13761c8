//! Structural parsing of a compact JWS: size cap, exactly three non-empty
//! parts, strict base64url, JSON objects without duplicate members, and the
//! header rules (`alg` known and never `none`, `crit` refused; `jku`, `x5u`,
//! `jwk`, `x5c` are ignored: a token never chooses its own key).
//!
//! Nothing here is trusted yet: the payload is read only to find the issuer.

use crate::alg::Alg;
use crate::reason::Rejection;
use crate::strict_json::StrictObject;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

/// A structurally valid, not yet verified token.
#[derive(Debug)]
pub struct Parsed<'t> {
    /// `base64(header) "." base64(payload)`: the signing input.
    pub signing_input: &'t str,
    /// The third part, still base64url.
    pub signature: &'t str,
    /// The header's `alg`; `none` never parses.
    pub alg: Alg,
    /// The header's `kid` (at most 256 bytes), if any.
    pub kid: Option<String>,
    /// The whole header.
    pub header: StrictObject,
    /// The payload: the claims, unverified.
    pub claims: StrictObject,
}

impl Parsed<'_> {
    /// Unverified `iss`, used only to pick the issuer's config and keys.
    pub fn issuer(&self) -> Result<&str, Rejection> {
        match self.claims.get("iss") {
            None => Err(Rejection::MissingClaim("iss")),
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(Rejection::BadClaim { claim: "iss".into(), why: "not a non-empty string".into() }),
        }
    }
}

fn b64(part: &str, name: &'static str) -> Result<Vec<u8>, Rejection> {
    // RFC 7515: base64url without padding. The alphabet is checked by the engine.
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Rejection::BadBase64(name))
}

/// Parse the compact serialization. `max_bytes` is checked before anything else.
pub fn parse(token: &str, max_bytes: usize) -> Result<Parsed<'_>, Rejection> {
    parse_as(token, max_bytes, false)
}

/// [`parse`]; `set`: a Security Event Token, whose header must say
/// `typ: secevent+jwt` (RFC 8417) — and which [`parse`] never accepts, so a
/// SET is never taken for an ID token, nor an ID token for a SET.
pub(crate) fn parse_as(token: &str, max_bytes: usize, set: bool) -> Result<Parsed<'_>, Rejection> {
    if token.is_empty() {
        return Err(Rejection::Empty);
    }
    if token.len() > max_bytes {
        return Err(Rejection::Oversize { len: token.len(), max: max_bytes });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Rejection::Malformed("not three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(Rejection::Malformed("empty header or payload"));
    }
    if s.is_empty() {
        // An unsigned JWS ("alg":"none" tokens end with a dot): say so when it is one.
        let alg_none = b64(h, "header")
            .ok()
            .and_then(|b| StrictObject::parse(&b).ok())
            .is_some_and(|hd| matches!(hd.get("alg"), Some(Value::String(a)) if a.eq_ignore_ascii_case("none")));
        return Err(if alg_none { Rejection::AlgNone } else { Rejection::Malformed("empty signature") });
    }
    let header =
        StrictObject::parse(&b64(h, "header")?).map_err(|detail| Rejection::BadJson { part: "header", detail })?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => return Err(Rejection::AlgNone),
        Some(Value::String(a)) => Alg::parse(a).ok_or_else(|| Rejection::AlgUnsupported(a.clone()))?,
        Some(_) => return Err(Rejection::BadHeader("alg is not a string".into())),
        None => return Err(Rejection::BadHeader("alg missing".into())),
    };
    if header.get("crit").is_some() {
        return Err(Rejection::Crit);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= 256 => Some(k.clone()),
        Some(Value::String(_)) => return Err(Rejection::BadHeader("kid longer than 256 bytes".into())),
        Some(_) => return Err(Rejection::BadHeader("kid is not a string".into())),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(_) => return Err(Rejection::BadHeader("typ is not a string".into())),
    };
    if set {
        if !matches!(typ.as_deref(), Some("secevent+jwt" | "application/secevent+jwt")) {
            return Err(Rejection::BadHeader("a SET's typ must be secevent+jwt".into()));
        }
    } else if let Some(s) = typ {
        // Refuse JWE/other media types dressed as a JWT; accept the common JWT spellings.
        let ok = s == "jwt"
            || s == "application/jwt"
            || s == "at+jwt"
            || s == "application/at+jwt"
            || s == "logout+jwt"
            || s == "application/logout+jwt";
        if !ok {
            return Err(Rejection::BadHeader("typ is not a JWT type".into()));
        }
    }
    let claims =
        StrictObject::parse(&b64(p, "payload")?).map_err(|detail| Rejection::BadJson { part: "payload", detail })?;
    // The signature must at least be valid base64url; its length is checked by the verifier.
    b64(s, "signature")?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Parsed { signing_input, signature: s, alg, kid, header, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn tok(h: &str, p: &str) -> String {
        format!("{}.{}.{}", enc(h), enc(p), enc("sig"))
    }

    #[test]
    fn structure_errors() {
        assert_eq!(parse("", 100).unwrap_err(), Rejection::Empty);
        assert_eq!(parse("a.b", 100).unwrap_err().code(), "malformed");
        assert_eq!(parse("a.b.c.d", 100).unwrap_err().code(), "malformed");
        assert_eq!(parse("..", 100).unwrap_err().code(), "malformed");
        assert_eq!(parse("a!.b.c", 100).unwrap_err(), Rejection::BadBase64("header"));
        assert_eq!(parse(&"a".repeat(101), 100).unwrap_err().code(), "oversize");
        let t = format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc("{}"));
        assert_eq!(parse(&t, 1000).unwrap_err().code(), "alg-none", "an unsigned token is named as such");
        let t = format!("{}.{}.", enc(r#"{"alg":"RS256"}"#), enc("{}"));
        assert_eq!(parse(&t, 1000).unwrap_err().code(), "malformed");
    }

    #[test]
    fn header_rules() {
        let p = r#"{"iss":"x"}"#;
        assert_eq!(parse(&tok(r#"{"alg":"none"}"#, p), 1000).unwrap_err(), Rejection::AlgNone);
        assert_eq!(parse(&tok(r#"{"alg":"nOnE"}"#, p), 1000).unwrap_err(), Rejection::AlgNone);
        assert_eq!(parse(&tok(r#"{"alg":"XX1"}"#, p), 1000).unwrap_err().code(), "alg-unsupported");
        assert_eq!(parse(&tok(r#"{"alg":5}"#, p), 1000).unwrap_err().code(), "bad-header");
        assert_eq!(parse(&tok(r#"{"alg":"RS256","crit":["x"]}"#, p), 1000).unwrap_err(), Rejection::Crit);
        assert_eq!(parse(&tok(r#"{"alg":"RS256","kid":7}"#, p), 1000).unwrap_err().code(), "bad-header");
        assert_eq!(parse(&tok(r#"{"alg":"RS256","alg":"none"}"#, p), 1000).unwrap_err().code(), "bad-json");
        assert_eq!(parse(&tok(r#"{"alg":"RS256","typ":"JWE"}"#, p), 1000).unwrap_err().code(), "bad-header");
        assert_eq!(parse(&tok(r#"{"alg":"RS256"}"#, "nope"), 1000).unwrap_err().code(), "bad-json");
        let t = tok(r#"{"alg":"RS256","kid":"k1","jku":"http://evil","typ":"JWT"}"#, p);
        let ok = parse(&t, 1000).unwrap();
        assert_eq!(ok.alg, Alg::RS256);
        assert_eq!(ok.kid.as_deref(), Some("k1"));
        assert_eq!(ok.issuer().unwrap(), "x");
    }
}
