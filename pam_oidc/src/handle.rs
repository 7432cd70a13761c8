//! The small surface of libpam the logic needs, as a trait so tests drive the
//! logic without C.

use oidc_core::Secret;
use pam::constants::PamResultCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prio {
    Err,
    Warning,
    Notice,
    Info,
}

pub trait Pam {
    /// PAM_USER (may prompt).
    fn user(&mut self) -> Result<String, PamResultCode>;
    fn service(&self) -> String;
    fn rhost(&self) -> String;
    fn tty(&self) -> String;
    fn authtok(&self) -> Option<Secret>;
    /// An echo-off prompt; `None` if the application returned no text.
    fn prompt_secret(&mut self, msg: &str) -> Result<Option<Secret>, PamResultCode>;
    /// An error message to the user (suppressed under PAM_SILENT).
    fn error(&mut self, msg: &str);
    /// A line of information the user needs to log in (PAM_TEXT_INFO), shown
    /// even under PAM_SILENT: the push-login line ("approve on your phone").
    fn info(&mut self, msg: &str);
    /// Set a PAM environment variable; an empty value removes it.
    fn putenv(&mut self, name: &str, value: &str) -> Result<(), PamResultCode>;
    fn getenv(&self, name: &str) -> Option<String>;
    /// syslog through libpam (facility authpriv).
    fn log(&self, prio: Prio, msg: &str);
    /// The uid `name` resolves to through NSS (all sources), if it resolves.
    fn uid_of(&self, name: &str) -> Option<u32>;
    /// Claims an earlier run of the module verified in this transaction
    /// (module data of this handle: no other module or user can set it).
    fn verified(&self) -> Option<oidc_core::SessionClaims>;
    fn keep_verified(&mut self, c: &oidc_core::SessionClaims);
}
