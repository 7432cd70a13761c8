//! The fleet lock list's format (version 1), parsed strictly: a list that
//! is too large, has an unknown field, a malformed entry or another version
//! is refused whole — the last good list stays in force.
//!
//! ```json
//! {"version": 1, "locks": [
//!   {"name": "alice", "reason": "left the company"},
//!   {"issuer": "https://login.example.com", "sub": "00u1abcd", "reason": "laptop stolen"}
//! ]}
//! ```

use oidc_core::LockTarget;
use serde::Deserialize;

/// The format version this build reads.
pub const VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    locks: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    issuer: Option<String>,
    sub: Option<String>,
    #[serde(default)]
    reason: String,
}

/// One listed lock: who, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub target: LockTarget,
    pub reason: String,
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Parse a list of at most `max_bytes` bytes and `max_entries` entries.
/// A target listed twice is kept once (the first reason).
pub fn parse(bytes: &[u8], max_bytes: u64, max_entries: usize) -> Result<Vec<Listed>, String> {
    if bytes.len() as u64 > max_bytes {
        return Err(format!("{} bytes: larger than locks.max_list_bytes ({max_bytes})", bytes.len()));
    }
    let f: File = serde_json::from_slice(bytes).map_err(|e| format!("not a lock list: {e}"))?;
    if f.version != VERSION {
        return Err(format!("version {} (this build reads {VERSION})", f.version));
    }
    if f.locks.len() > max_entries {
        return Err(format!("{} entries: more than locks.max_entries ({max_entries})", f.locks.len()));
    }
    let mut out: Vec<Listed> = Vec::with_capacity(f.locks.len());
    for (i, e) in f.locks.into_iter().enumerate() {
        let bad = |why: &str| Err(format!("entry {i}: {why}"));
        let target = match (e.name, e.issuer, e.sub) {
            (Some(name), None, None) => {
                if !text_ok(&name, 255) {
                    return bad("name must be 1..=255 bytes without spaces or control characters");
                }
                LockTarget::Name { name }
            }
            (None, Some(issuer), Some(sub)) => {
                if let Err(why) = oidc_core::check_url(&issuer) {
                    return bad(&format!("issuer: {why}"));
                }
                if !text_ok(&sub, 255) {
                    return bad("sub must be 1..=255 bytes without spaces or control characters");
                }
                LockTarget::Identity { issuer, sub }
            }
            _ => return bad("give either name, or issuer and sub"),
        };
        if e.reason.len() > 512 || e.reason.chars().any(char::is_control) {
            return bad("reason must be at most 512 bytes without control characters");
        }
        if !out.iter().any(|o| o.target == target) {
            out.push(Listed { target, reason: e.reason });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsing() {
        let ok = br#"{"version":1,"locks":[{"name":"alice","reason":"left"},
            {"issuer":"https://idp.example.com","sub":"00u1"},{"name":"alice","reason":"again"}]}"#;
        let l = parse(ok, 1000, 10).unwrap();
        assert_eq!(l.len(), 2, "a duplicate is kept once");
        assert_eq!(l[0], Listed { target: LockTarget::Name { name: "alice".into() }, reason: "left".into() });
        assert!(parse(br#"{"version":1,"locks":[]}"#, 1000, 10).unwrap().is_empty(), "an empty list is a list");
        let refused = [
            (&br#"{"version":2,"locks":[]}"#[..], "version 2"),
            (br#"{"version":1,"locks":[],"extra":1}"#, "unknown field"),
            (br#"{"version":1,"locks":[{"name":"a","typo":1}]}"#, "unknown field"),
            (br#"{"version":1,"locks":[{"name":"a","issuer":"https://i","sub":"s"}]}"#, "either name"),
            (br#"{"version":1,"locks":[{"issuer":"https://i"}]}"#, "either name"),
            (br#"{"version":1,"locks":[{"name":""}]}"#, "name must"),
            (br#"{"version":1,"locks":[{"name":"a b"}]}"#, "name must"),
            (br#"{"version":1,"locks":[{"issuer":"http://evil.example","sub":"s"}]}"#, "issuer"),
            (br#"{"version":1,"locks":[{"name":"a","reason":"x\ny"}]}"#, "reason"),
            (br#"{"version":1,"locks":[{"name":"a","name":"b"}]}"#, "duplicate field"),
            (br#"{"version":1,"locks":[{"name":"a"},{"name":"b"},{"name":"c"}]}"#, "more than locks.max_entries"),
            (br#"{"version":1,"locks":["#, "not a lock list"),
            (b"alice\nbob\n", "not a lock list"),
        ];
        for (text, why) in refused {
            let e = parse(text, 1000, 2).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(text));
        }
        assert!(parse(ok, 20, 10).unwrap_err().contains("larger than"));
    }
}
