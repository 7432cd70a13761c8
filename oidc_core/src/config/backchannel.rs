//! `[backchannel_logout]`: helperd's receiver of OpenID Connect Back-Channel
//! Logout tokens (an IdP POSTs one when a user logs out there; the sessions it
//! names end). Off unless `listen` is set.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[backchannel_logout]`: where helperd listens for logout tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackchannelLogout {
    /// `address:port` to listen on (`127.0.0.1:8443`, `[::1]:8443`,
    /// `0.0.0.0:8443`); unset: no listener. Plain HTTP only on a loopback address.
    pub listen: Option<String>,
    /// The request path the IdP posts to (the `backchannel_logout_uri`'s path).
    pub path: String,
    /// PEM certificate chain for HTTPS; with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for HTTPS (root-only); with `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for BackchannelLogout {
    fn default() -> Self {
        BackchannelLogout { listen: None, path: "/backchannel-logout".into(), tls_cert_file: None, tls_key_file: None }
    }
}

impl BackchannelLogout {
    /// The socket address to listen on, if the receiver is on (validated at load).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    /// The certificate and key files, when HTTPS is configured.
    pub fn tls(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.tls_cert_file.as_ref().zip(self.tls_key_file.as_ref())
    }
}

/// `Err((key, message))` for the first fault.
pub(super) fn validate(b: &BackchannelLogout) -> Result<(), (String, String)> {
    let err = |k: &str, m: String| Err((format!("backchannel_logout.{k}"), m));
    if b.tls_cert_file.is_some() != b.tls_key_file.is_some() {
        return err("tls_cert_file", "tls_cert_file and tls_key_file go together".into());
    }
    let p = &b.path;
    if !p.starts_with('/')
        || p.len() > 256
        || p.chars().any(|c| c.is_whitespace() || c.is_control() || "?#%".contains(c))
    {
        return err(
            "path",
            format!("{p:?}: an absolute path (/...) of at most 256 bytes, no query, fragment or escapes"),
        );
    }
    let Some(listen) = &b.listen else {
        if b.tls_cert_file.is_some() {
            return err("listen", "tls_cert_file is set but listen is not (the receiver is off)".into());
        }
        return Ok(());
    };
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => return err("listen", format!("{listen:?}: an IP address and port (127.0.0.1:8443, [::1]:8443)")),
    };
    if addr.port() == 0 {
        return err("listen", format!("{listen:?}: a fixed port (the IdP is told the URL)"));
    }
    if b.tls().is_none() && !addr.ip().is_loopback() {
        return err(
            "listen",
            format!(
                "{listen:?} is not a loopback address: plain HTTP is allowed only on 127.0.0.1/::1 (behind a local \
                 TLS proxy); set tls_cert_file and tls_key_file for HTTPS"
            ),
        );
    }
    Ok(())
}
