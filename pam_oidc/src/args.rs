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
    pub debug: bool,
    #[cfg(feature = "fault-injection")]
    pub fault: Option<String>,
}

pub fn to_strings(args: &[&std::ffi::CStr]) -> Vec<String> {
    args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        config: oidc_core::config::DEFAULT_PATH.into(),
        source: TokenSource::Prompt,
        require_groups: vec![],
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
            ("debug", None) => a.debug = true,
            #[cfg(feature = "fault-injection")]
            ("fault", Some(f)) => a.fault = Some(f.to_string()),
            _ => return Err(format!("unknown or malformed module argument {:?}", oidc_core::audit::clean(arg))),
        }
    }
    Ok(a)
}
