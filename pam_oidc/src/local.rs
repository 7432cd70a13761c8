//! Whom the module is for. OIDC accounts (names in the uid range helperd
//! allocates from, pinned names) and role accounts are; a local or directory
//! account (files, sss, ldap: any other uid) is not — for those every hook
//! returns `PAM_IGNORE` at once: no prompt, no audit line, the stack's other
//! modules decide exactly as they did before pam_oidc was installed.

use crate::handle::Pam;
use oidc_core::Config;

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

/// [`classify`] when the config may not have loaded. Without it the uid
/// range, pinned uids and role accounts are unknown, so the NSS snapshot
/// decides: a name it serves is an OIDC account (refused, fail closed: its
/// `account` line must never be skipped), any other name that resolves is
/// local and left to the other modules.
pub fn classify_with(cfg: Option<&Config>, pam: &dyn Pam, user: &str) -> Kind {
    let Some(cfg) = cfg else {
        return match pam.uid_of(user) {
            None => Kind::Unknown,
            Some(_) if served_by_snapshot(user) => Kind::Oidc,
            Some(uid) => Kind::Local(uid),
        };
    };
    let a = &cfg.accounts;
    if cfg.is_role_account(user) || a.pinned_uids.contains_key(user) {
        return Kind::Oidc;
    }
    match pam.uid_of(user) {
        None => Kind::Unknown,
        Some(uid) if (a.uid_min..=a.uid_max).contains(&uid) => Kind::Oidc,
        Some(uid) => Kind::Local(uid),
    }
}

unsafe extern "C" {
    /// glibc: NULL in setuid/setgid (AT_SECURE) processes.
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// [`nss_snapshot::format::PATH_ENV`], for `secure_getenv`.
const SNAPSHOT_ENV: &std::ffi::CStr = c"NSS_OIDC_SNAPSHOT";

/// Does the snapshot libnss_oidc.so.2 reads (the same path rule) serve `user`?
/// An unreadable snapshot serves no one: then no OIDC account resolves at all.
fn served_by_snapshot(user: &str) -> bool {
    // SAFETY: a NUL-terminated literal; a non-NULL result is a NUL-terminated
    // environment string that lives for the process.
    let env = unsafe { secure_getenv(SNAPSHOT_ENV.as_ptr()) };
    let path = nss_snapshot::format::snapshot_path(if env.is_null() {
        None
    } else {
        // SAFETY: see above.
        Some(unsafe { std::ffi::CStr::from_ptr(env) }.to_bytes())
    });
    let Ok(bytes) = std::fs::read(&path) else { return false };
    match nss_snapshot::reader::Snapshot::parse(&bytes) {
        Ok(s) => matches!(s.user_by_name(user.as_bytes()), Ok(Some(_))),
        // A corrupt snapshot: the NSS module refuses it too, so it serves no one.
        Err(_) => false,
    }
}

/// The log line for a PAM user who does not resolve: sshd has already decided
/// it is an invalid user and feeds PAM a fake password, so no token can help.
pub fn unknown_user_note(user: &str) -> String {
    format!(
        "user {} does not resolve (sshd treats it as invalid): configure pre-login names \
         (accounts.prelogin_patterns or roster_file) so never-seen users resolve before their first login",
        oidc_core::clean(user)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_snapshot_variable_is_the_nss_modules() {
        assert_eq!(super::SNAPSHOT_ENV.to_str().ok(), Some(nss_snapshot::format::PATH_ENV));
    }
}
