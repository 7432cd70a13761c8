//! HTTP for the client: ureq over rustls with the system's trust roots, JSON
//! bodies of bounded size, no redirects followed (an issuer's endpoints and a
//! CI token service answer directly), and https only — except on loopback,
//! where the test IdP and local token services live.

use serde_json::Value;
use std::time::Duration;

/// Largest response body read (discovery documents, token responses).
pub const MAX_BODY: u64 = 1024 * 1024;

pub struct Http {
    agent: ureq::Agent,
}

/// Is `url` one the client may send credentials to: `https://`, or `http://`
/// to a loopback address (127.0.0.1, [::1], localhost)?
pub fn check_url(url: &str) -> Result<(), String> {
    // User info (`http://127.0.0.1:1@idp.example/`) would make the host seem
    // to be what it is not: refused in any URL.
    let after_scheme = url.split_once("://").map_or("", |(_, r)| r);
    if after_scheme.split(['/', '?', '#']).next().unwrap_or("").contains('@') {
        return Err(format!("{}: user info in a URL is refused", url.split('@').next_back().unwrap_or("")));
    }
    if let Some(rest) = url.strip_prefix("https://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("{url}: no host"));
        }
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        if host == "127.0.0.1" || host == "::1" || host == "localhost" {
            return Ok(());
        }
        return Err(format!("{url}: plain http is allowed only to loopback (127.0.0.1, [::1], localhost)"));
    }
    Err(format!("{url}: not an https URL"))
}

/// The dynamic build resolves names with the system's resolver.
#[cfg(not(target_feature = "crt-static"))]
fn agent(config: ureq::config::Config) -> ureq::Agent {
    ureq::Agent::new_with_config(config)
}

/// The static build resolves names itself (dns.rs: no glibc NSS at run time).
#[cfg(target_feature = "crt-static")]
fn agent(config: ureq::config::Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::new(), crate::dns::Resolver)
}

/// application/x-www-form-urlencoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .max_redirects(0)
            .max_redirects_will_error(false)
            .https_only(false)
            .http_status_as_error(false)
            .user_agent(concat!("pam-oidc/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Http { agent: agent(config) }
    }

    /// Any method; (status, JSON body). A body that is not JSON is an error
    /// naming the status (the body itself may hold a secret and is not shown).
    pub fn json(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Value), String> {
        check_url(url)?;
        let shown = shown_url(url);
        let mut b = ureq::http::Request::builder().method(method).uri(url).header("accept", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body.to_vec()).map_err(|e| format!("{method} {shown}: {e}"))?;
        let mut resp = self.agent.run(req).map_err(|e| format!("{method} {shown}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| format!("{method} {shown}: reading the response: {e}"))?;
        let v = serde_json::from_slice(&body)
            .map_err(|_| format!("{method} {shown}: HTTP {status}, the response is not JSON"))?;
        Ok((status, v))
    }

    pub fn get_json(&self, url: &str, headers: &[(&str, &str)]) -> Result<(u16, Value), String> {
        self.json("GET", url, headers, b"")
    }

    /// POST a form (OAuth endpoints: errors come as 400 + JSON, returned as is).
    pub fn post_form(&self, url: &str, pairs: &[(&str, &str)]) -> Result<(u16, Value), String> {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        self.json("POST", url, &headers, form(pairs).as_bytes())
    }
}

/// A URL as shown in messages: without its query (which may carry a code).
pub fn shown_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in ["https://login.example.com", "http://127.0.0.1:8080/x", "http://[::1]:9/", "http://localhost/a"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://127.0.0.1.evil.com/",
            "ftp://x",
            "https://",
            "http://10.0.0.1",
            "http://127.0.0.1:1@evil.example/token",
            "http://localhost@evil.example/",
            "https://user:pw@login.example.com/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form(&[("a", "b c"), ("redirect_uri", "http://x/?y=1&z")]),
            "a=b+c&redirect_uri=http%3A%2F%2Fx%2F%3Fy%3D1%26z"
        );
        assert_eq!(shown_url("https://x/cb?code=secret"), "https://x/cb");
    }
}
