//! Module arguments from the PAM stack line. Unknown arguments are an error:
//! a typo such as `require_groups=` must not silently drop a restriction.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Prompt through the conversation (default).
    Prompt,
    /// Use PAM_AUTHTOK set by an earlier module; fail if there is none.
    UseFirstPass,
    /// Use PAM_AUTHTOK if it looks like a JWT, else prompt.
    TryFirstPass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub source: TokenSource,
    /// The user must be in at least one of these groups (acct_mgmt).
    pub require_groups: Vec<String>,
    /// Claims must come from an IdP authentication at most this many seconds old.
    pub max_age: Option<u64>,
    /// `acr` must be one of these.
    pub acr: Vec<String>,
    /// Never reuse the session's verified claims: always ask for a fresh token.
    pub step_up: bool,
    /// End the session at its token's `exp` (+ grace), whatever the config says.
    pub end_at_expiry: bool,
    /// Device-code login: `Some(None)` = the first issuer with a device client,
    /// `Some(Some(url))` = that issuer; `None` = per issuer config (`device_login`).
    pub device: Option<Option<String>>,
    /// Push login (CIBA): `Some(None)` = the first issuer with a CIBA client,
    /// `Some(Some(url))` = that issuer; `None` = per issuer config (`ciba_login`).
    pub ciba: Option<Option<String>>,
    /// `token`: always prompt for a token, even if an issuer sets `device_login`/`ciba_login`.
    pub token_only: bool,
    pub debug: bool,
    #[cfg(feature = "fault-injection")]
    pub fault: Option<String>,
}

pub fn to_strings(args: &[&std::ffi::CStr]) -> Vec<String> {
    args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        config: oidc_core::DEFAULT_CONFIG_PATH.into(),
        source: TokenSource::Prompt,
        require_groups: vec![],
        max_age: None,
        acr: vec![],
        step_up: false,
        end_at_expiry: false,
        device: None,
        ciba: None,
        token_only: false,
        debug: false,
        #[cfg(feature = "fault-injection")]
        fault: None,
    };
    for arg in args {
        let (k, v) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg.as_str(), None),
        };
        match (k, v) {
            ("config", Some(p)) if p.starts_with('/') => a.config = p.into(),
            ("use_first_pass", None) => a.source = TokenSource::UseFirstPass,
            ("try_first_pass", None) => a.source = TokenSource::TryFirstPass,
            ("require_group", Some(g)) if !g.is_empty() => a.require_groups.push(g.to_string()),
            ("max_age", Some(n)) if n.parse::<u64>().is_ok() => a.max_age = n.parse().ok(),
            ("acr", Some(v)) if !v.is_empty() => a.acr.extend(v.split(',').map(str::to_string)),
            ("step_up", None) => a.step_up = true,
            ("end_at_expiry", None) => a.end_at_expiry = true,
            ("device_code", None) => a.device = Some(None),
            ("device_code", Some(u)) if !u.is_empty() => a.device = Some(Some(u.to_string())),
            ("ciba", None) => a.ciba = Some(None),
            ("ciba", Some(u)) if !u.is_empty() => a.ciba = Some(Some(u.to_string())),
            ("token", None) => a.token_only = true,
            ("debug", None) => a.debug = true,
            #[cfg(feature = "fault-injection")]
            ("fault", Some(f)) => a.fault = Some(f.to_string()),
            _ => return Err(format!("unknown or malformed module argument {:?}", oidc_core::clean(arg))),
        }
    }
    Ok(a)
}

impl Args {
    /// What this stack demands of the claims it accepts.
    pub fn demand(&self, cfg: &oidc_core::Config) -> oidc_core::Demand {
        oidc_core::Demand {
            groups: self.require_groups.clone(),
            max_age: self.max_age,
            acr: self.acr.clone(),
            iat_fallback: cfg.pam.max_age_uses_iat,
        }
    }
}

impl Args {
    /// The issuer to run a device-code login with, if this stack uses one.
    pub fn device_issuer<'c>(&self, cfg: &'c oidc_core::Config) -> Option<&'c oidc_core::Issuer> {
        if self.token_only || self.ciba.is_some() {
            return None;
        }
        match &self.device {
            Some(Some(url)) => cfg.issuer(url),
            Some(None) => cfg.issuers.iter().find(|i| i.device_client_id.is_some()),
            None => cfg.issuers.iter().find(|i| i.device_login),
        }
    }

    /// The issuer to run a push login (CIBA) with, if this stack uses one.
    pub fn ciba_issuer<'c>(&self, cfg: &'c oidc_core::Config) -> Option<&'c oidc_core::Issuer> {
        if self.token_only || self.device.is_some() {
            return None;
        }
        match &self.ciba {
            Some(Some(url)) => cfg.issuer(url).filter(|i| i.ciba_client_id.is_some()),
            Some(None) => cfg.issuers.iter().find(|i| i.ciba_client_id.is_some()),
            None => cfg.issuers.iter().find(|i| i.ciba_login),
        }
    }
}
