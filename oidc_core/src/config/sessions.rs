//! `[sessions]`: what happens to a live session when the identity behind it
//! expires (its token's `exp`), and how a session is ended.

use serde::Deserialize;

/// What happens to a session once its token expired (plus `grace_secs`).
/// Claim reuse (sudo) and AWS credentials stop then in either case.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnExpiry {
    /// The shell stays open; only claim reuse and AWS credentials stop.
    Keep,
    /// The session's processes get SIGHUP, then SIGKILL after `kill_after_secs`.
    End,
}

/// As in the config file (`"keep"`, `"end"`).
impl std::fmt::Debug for OnExpiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnExpiry::Keep => "\"keep\"",
            OnExpiry::End => "\"end\"",
        })
    }
}

/// What happens to a revalidated (device-code) session when the IdP refuses
/// its refresh token (`invalid_grant`: user disabled, grant revoked) or
/// answers with another identity's token.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRevoked {
    /// The session ends: SIGHUP, then SIGKILL after `kill_after_secs`.
    End,
    /// The processes live; claim reuse and AWS credentials stop at once.
    Keep,
}

/// As in the config file (`"end"`, `"keep"`).
impl std::fmt::Debug for OnRevoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnRevoked::End => "\"end\"",
            OnRevoked::Keep => "\"keep\"",
        })
    }
}

/// `[sessions]`: the session lifetime policy (per issuer: `[[issuer]] session_on_expiry`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// What happens at the token's `exp` + `grace_secs` (issuers may override it).
    pub on_expiry: OnExpiry,
    /// Seconds after the token's `exp` before `on_expiry = "end"` ends the session.
    pub grace_secs: u64,
    /// Seconds between SIGHUP and SIGKILL when a session is ended (1–300).
    pub kill_after_secs: u64,
    /// A device-code session whose refresh the IdP refuses: `end` it or `keep`
    /// its processes (claims and AWS credentials stop either way).
    pub on_revoked: OnRevoked,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { on_expiry: OnExpiry::Keep, grace_secs: 0, kill_after_secs: 5, on_revoked: OnRevoked::End }
    }
}
