//! Whom the module is for. OIDC accounts (names in the uid range helperd
//! allocates from, pinned names) and role accounts are; a local or directory
//! account (files, sss, ldap: any other uid) is not — for those every hook
//! returns `PAM_IGNORE` at once: no prompt, no audit line, the stack's other
//! modules decide exactly as they did before pam_oidc was installed.

use crate::handle::Pam;
use oidc_core::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An OIDC account (or a role account tokens may enter).
    Oidc,
    /// Resolves to a uid outside the OIDC range: someone else's to decide.
    Local(u32),
    /// Does not resolve at all (sshd calls such a user invalid).
    Unknown,
}

pub fn classify(cfg: &Config, pam: &dyn Pam, user: &str) -> Kind {
    classify_with(Some(cfg), pam, user)
}

/// [`classify`] when the config may not have loaded: then the default uid
/// range decides (an OIDC user outside it is refused by the other modules).
pub fn classify_with(cfg: Option<&Config>, pam: &dyn Pam, user: &str) -> Kind {
    let defaults = oidc_core::config::Accounts::default();
    let a = cfg.map_or(&defaults, |c| &c.accounts);
    if cfg.is_some_and(|c| c.role_accounts.iter().any(|r| r.name == user)) || a.pinned_uids.contains_key(user) {
        return Kind::Oidc;
    }
    match pam.uid_of(user) {
        None => Kind::Unknown,
        Some(uid) if (a.uid_min..=a.uid_max).contains(&uid) => Kind::Oidc,
        Some(uid) => Kind::Local(uid),
    }
}

/// The log line for a PAM user who does not resolve: sshd has already decided
/// it is an invalid user and feeds PAM a fake password, so no token can help.
pub fn unknown_user_note(user: &str) -> String {
    format!(
        "user {} does not resolve (sshd treats it as invalid): configure pre-login names \
         (accounts.prelogin_patterns or roster_file) so never-seen users resolve before their first login",
        oidc_core::audit::clean(user)
    )
}
