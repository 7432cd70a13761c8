//! HTTP: discovery documents and JWK sets, the device-code endpoints, IMDS and
//! STS. The one place helperd talks to the network; behind a trait
//! (`Transport`) so the key cache, the device poller and the AWS broker are
//! tested without one.

use std::time::Duration;

/// Largest discovery document or JWKS we read.
pub const MAX_BODY: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// `Cache-Control: max-age` in seconds, if the response had one.
    pub max_age: Option<u64>,
    /// The `Date` header (for clock-skew checks).
    pub date: Option<String>,
}

/// A response with its headers (names lower-case), for callers that need
/// them (the fleet lock list's `ETag`).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub trait Transport: Send + Sync {
    fn get(&self, url: &str) -> Result<Fetched, String>;
    /// POST a form; any HTTP status is returned (OAuth errors come as 400 + JSON).
    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Vec<u8>), String> {
        let _ = (url, form);
        Err("POST not supported by this transport".into())
    }
    /// Any method, extra headers, raw body; every HTTP status is returned
    /// (the AWS broker: IMDSv2's PUT and GETs, STS's signed POSTs).
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let _ = (method, url, headers, body);
        Err(format!("{method} not supported by this transport"))
    }
    /// As `send`, with the response's headers, reading at most `limit` body
    /// bytes (a longer body is an error, not cut).
    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        limit: u64,
    ) -> Result<Resp, String> {
        let (status, body) = self.send(method, url, headers, body)?;
        if body.len() as u64 > limit {
            return Err(format!("{method} {url}: body larger than {limit} bytes"));
        }
        Ok(Resp { status, headers: vec![], body })
    }
}

/// ureq over rustls with the system's trust roots; one hard deadline covers
/// connect, request and the whole body (a byte-a-second server is cut off).
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            // Redirects are followed by hand (`get`): never from https to http.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .https_only(false)
            .user_agent(concat!("pam-oidc-helperd/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Http { agent: ureq::Agent::new_with_config(config) }
    }
}

/// application/x-www-form-urlencoded, RFC 3986 unreserved characters kept.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// Redirects followed for one GET.
pub const MAX_REDIRECTS: usize = 3;

/// Where a redirect from `from` to `location` leads, if it may be followed:
/// never from https to http (a network attacker could then serve keys), and
/// only to URLs an issuer could be configured with (https; http on loopback).
pub fn redirect_target(from: &str, location: &str) -> Result<String, String> {
    let to = if location.starts_with('/') && !location.starts_with("//") {
        let scheme_end = from.find("://").map_or(0, |i| i + 3);
        let host_end = from[scheme_end..].find('/').map_or(from.len(), |i| scheme_end + i);
        format!("{}{location}", &from[..host_end])
    } else {
        location.to_string()
    };
    if from.starts_with("https://") && !to.starts_with("https://") {
        return Err(format!(
            "redirect from {from} to {} refused: never from https to anything else",
            oidc_core::clean(&to)
        ));
    }
    oidc_core::check_url(&to).map_err(|e| format!("redirect from {from} refused: {e}"))?;
    Ok(to)
}

pub fn parse_max_age(cache_control: &str) -> Option<u64> {
    let directives: Vec<String> = cache_control.split(',').map(|d| d.trim().to_ascii_lowercase()).collect();
    if directives.iter().any(|d| d == "no-store" || d == "no-cache") {
        return Some(0);
    }
    directives.iter().find_map(|d| d.strip_prefix("max-age=").and_then(|v| v.trim_matches('"').parse().ok()))
}

impl Transport for Http {
    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        limit: u64,
    ) -> Result<Resp, String> {
        let mut b = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body.to_vec()).map_err(|e| format!("{method} {url}: {e}"))?;
        let req = self.agent.configure_request(req).http_status_as_error(false).build();
        let mut resp = self.agent.run(req).map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| format!("{method} {url}: reading body (at most {limit} bytes): {e}"))?;
        Ok(Resp { status, headers, body })
    }

    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.request(method, url, headers, body, MAX_BODY).map(|r| (r.status, r.body))
    }

    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Vec<u8>), String> {
        let pairs: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let headers = [("accept", "application/json"), ("content-type", "application/x-www-form-urlencoded")];
        self.send("POST", url, &headers, form_encode(&pairs).as_bytes())
    }

    fn get(&self, url: &str) -> Result<Fetched, String> {
        let mut url = url.to_string();
        let mut hops = 0;
        let mut resp = loop {
            let resp = self
                .agent
                .get(&url)
                .header("Accept", "application/json")
                .call()
                .map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_redirection() {
                break resp;
            }
            hops += 1;
            let to = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("");
            let to = redirect_target(&url, to)?;
            if hops > MAX_REDIRECTS {
                return Err(format!("GET {url}: more than {MAX_REDIRECTS} redirects"));
            }
            url = to;
        };
        let max_age = resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).and_then(parse_max_age);
        let date = resp.headers().get("date").and_then(|v| v.to_str().ok()).map(String::from);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: reading body: {e}"))?;
        Ok(Fetched { body, max_age, date })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_never_downgrade() {
        let ok = |f: &str, l: &str| redirect_target(f, l);
        assert_eq!(ok("https://idp/a/jwks", "https://cdn.idp/k").unwrap(), "https://cdn.idp/k");
        assert_eq!(ok("https://idp/a/jwks", "/keys").unwrap(), "https://idp/keys");
        assert!(ok("https://idp/jwks", "http://idp/jwks").unwrap_err().contains("never from https"));
        assert!(ok("https://idp/jwks", "http://127.0.0.1/jwks").is_err(), "not even to loopback");
        assert!(ok("https://idp/jwks", "//evil/jwks").is_err());
        assert!(ok("http://127.0.0.1:9/jwks", "http://evil.example/jwks").is_err(), "http only on loopback");
        assert!(ok("http://127.0.0.1:9/jwks", "/k").is_ok());
        assert!(ok("https://idp/jwks", "file:///etc/shadow").is_err());
        assert!(ok("http://127.0.0.1:9/jwks", "http://127.0.0.1:1@evil.example/").is_err(), "userinfo");
        assert!(ok("https://idp/jwks", "https://idp@evil/jwks").is_err(), "userinfo");
    }

    #[test]
    fn max_age() {
        assert_eq!(parse_max_age("public, max-age=600"), Some(600));
        assert_eq!(parse_max_age("max-age=\"60\""), Some(60));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
