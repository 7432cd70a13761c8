//! The audit record: one syslog line (facility authpriv) per decision.
//! Fields are key=value; values from the token are cleaned so an attacker
//! cannot forge log lines (no control characters, bounded length). Never the token.

use std::fmt::Write as _;

/// Longest value we log from untrusted input.
pub const MAX_LOGGED: usize = 160;

/// Longest context text (our own messages that embed paths and values).
pub const MAX_CONTEXT: usize = 800;

/// Make an untrusted string safe for one log line: control characters, quotes,
/// backslashes and non-ASCII are escaped, length bounded.
pub fn clean(s: &str) -> String {
    clean_n(s, MAX_LOGGED)
}

/// [`clean`] with another length bound.
pub fn clean_n(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 2);
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out
}

/// A unix time as `2026-11-30T06:12:03Z` (UTC; proleptic Gregorian).
pub(crate) fn utc(t: i64) -> String {
    crate::time::format_rfc3339(t)
}

/// A span of seconds for people: `45 s`, `15 min`, `3 h 20 min`, `2 days`.
pub(crate) fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days", s / 86_400),
    }
}

/// A decision: allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Access granted.
    Allow,
    /// Access refused.
    Deny,
}

/// One decision. `Display` renders the syslog line.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// The PAM stage: `auth`, `account` or `session`.
    pub stage: &'static str,
    /// `PAM_SERVICE` (`sshd`, `sudo`, ...).
    pub service: String,
    /// The PAM user.
    pub user: String,
    /// `PAM_RHOST`, empty if unset.
    pub rhost: String,
    /// The token's `iss` as parsed: unverified when the token was refused; empty if unparsed.
    pub issuer: String,
    /// The token's `sub` as parsed (unverified when refused); empty if unparsed.
    pub sub: String,
    /// The token's `jti` as parsed (unverified when refused); empty if none.
    pub jti: String,
    /// The decision: `result=allow` or `result=deny`.
    pub allow: bool,
    /// Stable code (`expired`, ...) or `ok`.
    pub code: String,
    /// Precise reason (already cleaned where it came from a token).
    pub reason: String,
}

impl std::fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                clean(s)
            }
        };
        write!(
            f,
            "{} result={} code={} service={} user={} rhost={} issuer={} sub={} jti={} reason=\"{}\"",
            self.stage,
            if self.allow { "allow" } else { "deny" },
            self.code,
            dash(&self.service),
            dash(&self.user),
            dash(&self.rhost),
            dash(&self.issuer),
            dash(&self.sub),
            dash(&self.jti),
            self.reason.replace('"', "'"),
        )
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn human_times() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_796_026_355), "2026-11-30T08:12:35Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::span(900), "15 min");
        assert_eq!(super::span(-45), "45 s");
        assert_eq!(super::span(12_000), "3 h 20 min");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_and_bounds() {
        assert_eq!(clean("a\nb\"c"), "a\\u{a}b\\\"c");
        assert_eq!(clean("x").len(), 1);
        let long = "a".repeat(1000);
        assert!(clean(&long).chars().count() <= MAX_LOGGED + 1);
        assert_eq!(clean("é"), "\\u{e9}");
    }

    #[test]
    fn line_has_every_field() {
        let e = AuditEvent {
            stage: "auth",
            service: "sshd".into(),
            user: "alice".into(),
            issuer: "https://idp".into(),
            sub: "s1\nINJECT".into(),
            code: "expired".into(),
            reason: "expired: exp=1".into(),
            ..Default::default()
        };
        let l = e.to_string();
        assert_eq!(
            l,
            "auth result=deny code=expired service=sshd user=alice rhost=- issuer=https://idp sub=s1\\u{a}INJECT jti=- reason=\"expired: exp=1\""
        );
        assert!(!l.contains('\n'));
    }
}
