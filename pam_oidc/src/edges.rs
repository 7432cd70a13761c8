//! What the hooks take from the world besides the PAM handle: the clock,
//! helperd, this host's name and this process. [`RealEdges`] is the real
//! world; the in-process tests pass a scripted helper and a fixed clock.

use oidc_core::Config;
use oidc_core::{Client, Helper};
use std::time::Duration;

pub trait Edges {
    /// Unix time, read when a decision is made (a device-code login may take minutes).
    fn now(&self) -> i64;
    /// A helperd client for one hook call: once helperd has timed out or
    /// refused a connection, later calls of the hook fail at once.
    fn helper(&self, cfg: &Config) -> Box<dyn Helper + '_>;
    /// This host's name (shown in a device-code prompt).
    fn hostname(&self) -> String;
    /// The process opening or closing the session (helperd binds the session to it).
    fn pid(&self) -> i32;
    /// The host process's real uid (what helperd checks a session's claims against).
    fn real_uid(&self) -> u32;
}

/// The real clock, helperd's socket, gethostname(2), getpid(2) and getuid(2).
pub struct RealEdges;

impl Edges for RealEdges {
    fn now(&self) -> i64 {
        oidc_core::unix_now()
    }

    fn helper(&self, cfg: &Config) -> Box<dyn Helper + '_> {
        Box::new(Client::for_caller(&cfg.helperd, Duration::from_millis(cfg.pam.ipc_timeout_ms)))
    }

    fn hostname(&self) -> String {
        let mut b = [0u8; 256];
        // SAFETY: `b` is a valid buffer of b.len() bytes; gethostname NUL-terminates within it on success.
        let rc = unsafe { libc::gethostname(b.as_mut_ptr().cast(), b.len()) };
        if rc != 0 {
            return "this host".into();
        }
        let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        oidc_core::clean(&String::from_utf8_lossy(&b[..n]))
    }

    fn pid(&self) -> i32 {
        i32::try_from(std::process::id()).unwrap_or(i32::MAX)
    }

    fn real_uid(&self) -> u32 {
        // SAFETY: getuid(2) takes no arguments and cannot fail.
        unsafe { libc::getuid() }
    }
}
