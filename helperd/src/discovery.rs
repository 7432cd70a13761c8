//! OpenID discovery, the one place it is done (the key cache, device-code
//! login and `helperd doctor`): GET `{issuer}/.well-known/openid-configuration`
//! and hold the document to the rule that its `issuer` is exactly the
//! configured URL (OpenID Connect Discovery §4.3).

use crate::fetch::Transport;
use serde_json::Value;

/// A discovery document whose issuer matched.
#[derive(Debug)]
pub struct Discovered {
    pub doc: Value,
    /// The response's `Date` header (doctor's clock check).
    pub date: Option<String>,
}

#[derive(Debug)]
pub enum Error {
    /// The document could not be fetched.
    Unreachable(String),
    /// The response is not JSON.
    NotJson { url: String, error: String },
    /// The document names another issuer (or none).
    Mismatch { got: String, want: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable(e) => write!(f, "{e}"),
            Error::NotJson { url, error } => write!(f, "{url}: not JSON: {error}"),
            Error::Mismatch { got, want } => {
                write!(f, "discovery issuer mismatch: document says {got:?}, config says {want:?}")
            }
        }
    }
}

pub fn url_of(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Fetch and check the discovery document of the issuer configured as `issuer`.
pub fn discover(t: &dyn Transport, issuer: &str) -> Result<Discovered, Error> {
    let url = url_of(issuer);
    let fetched = t.get(&url).map_err(Error::Unreachable)?;
    let doc: Value =
        serde_json::from_slice(&fetched.body).map_err(|e| Error::NotJson { url: url.clone(), error: e.to_string() })?;
    let got = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    if got != issuer {
        return Err(Error::Mismatch { got: got.to_string(), want: issuer.to_string() });
    }
    Ok(Discovered { doc, date: fetched.date })
}

impl Discovered {
    /// A string field of the document, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.doc.get(key).and_then(Value::as_str)
    }

    /// An endpoint the document must name, as a URL helperd may call
    /// (https; http on loopback).
    pub fn endpoint(&self, key: &str) -> Result<String, String> {
        let u = self.field(key).ok_or_else(|| format!("the IdP's discovery document has no {key}"))?;
        oidc_core::check_url(u).map_err(|e| format!("discovery {key}: {e}"))?;
        Ok(u.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Reply, ScriptedTransport};

    const URL: &str = "https://idp.test/.well-known/openid-configuration";

    #[test]
    fn the_document_must_name_exactly_the_configured_issuer() {
        let t = ScriptedTransport::new();
        let doc = r#"{"issuer": "https://idp.test", "jwks_uri": "https://idp.test/k", "token_endpoint": "http://x/t"}"#;
        t.expect("GET", URL, Reply::Dated(doc.into(), "Sun, 22 Nov 2026 14:45:00 GMT".into()))
            .expect("GET", URL, Reply::Http(200, r#"{"issuer": "https://idp.test/"}"#.into()))
            .expect("GET", URL, Reply::Http(200, r#"{"jwks_uri": "https://idp.test/k"}"#.into()))
            .expect("GET", URL, Reply::Http(200, "<html>".into()))
            .expect("GET", URL, Reply::Fail("connection refused".into()));
        let d = discover(t.as_ref(), "https://idp.test").unwrap();
        assert_eq!(d.date.as_deref(), Some("Sun, 22 Nov 2026 14:45:00 GMT"));
        assert_eq!(d.endpoint("jwks_uri").unwrap(), "https://idp.test/k");
        assert!(d.endpoint("token_endpoint").unwrap_err().contains("token_endpoint"), "plain http off loopback");
        assert!(d.endpoint("device_authorization_endpoint").unwrap_err().contains("has no"));
        let e = discover(t.as_ref(), "https://idp.test").unwrap_err().to_string();
        assert!(e.contains("mismatch") && e.contains("\"https://idp.test/\""), "trailing slash: {e}");
        assert!(matches!(discover(t.as_ref(), "https://idp.test"), Err(Error::Mismatch { got, .. }) if got.is_empty()));
        assert!(discover(t.as_ref(), "https://idp.test").unwrap_err().to_string().contains("not JSON"));
        assert!(
            matches!(discover(t.as_ref(), "https://idp.test/"), Err(Error::Unreachable(_))),
            "one URL, slash or not"
        );
        t.done();
    }
}
