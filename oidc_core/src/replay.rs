//! The replay record's files, in one place.
//!
//! - helperd keeps `replay.log`: one line per token use, appended and
//!   `fdatasync`ed as each login is admitted (a login costs one small write,
//!   not a rewrite of every live use), compacted to the live uses by an
//!   atomic replace when it starts and when expired lines pile up.
//! - While helperd is unreachable the PAM module reads `replay.log` (and a
//!   `replay.json` left by a version before the log) and claims a token's use
//!   with one marker file in `replay.d/` (created exclusively, so two logins
//!   cannot both claim it); helperd takes the markers in.

use serde::{Deserialize, Serialize};

/// helperd's record of used tokens, in its state dir: one [`Marker::log_line`] per use.
pub const FILE: &str = "replay.log";
/// The record as versions before `replay.log` kept it (one JSON document,
/// rewritten whole per login): read, never written.
pub const LEGACY_FILE: &str = "replay.json";
/// Where the module records uses while helperd is unreachable (one file per token).
pub const PENDING_DIR: &str = "replay.d";

/// `replay.json`, the legacy record.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Format version.
    pub v: u32,
    /// (issuer, replay id, kept until)
    pub seen: Vec<(String, String, i64)>,
}

impl Saved {
    /// Parse the file's bytes.
    pub fn parse(b: &[u8]) -> Result<Saved, String> {
        serde_json::from_slice(b).map_err(|e| e.to_string())
    }

    /// Has `id` of `issuer` been used?
    pub fn contains(&self, issuer: &str, id: &str) -> bool {
        self.seen.iter().any(|(i, d, _)| i == issuer && d == id)
    }
}

/// The uses recorded in `replay.log`'s bytes, in order. Lines end at a
/// newline or a NUL (helperd keeps zeros after the lines, room for more; a
/// line never holds a NUL: JSON escapes it), so a stretch of zeros a failed
/// write left in the middle costs only its own line, never the ones after it.
/// A line that does not parse is skipped: torn by a write that was never
/// acknowledged (its login was not admitted).
pub fn log_uses(bytes: &[u8]) -> impl Iterator<Item = Marker> + '_ {
    bytes.split(|b| *b == b'\n' || *b == 0).filter(|l| !l.is_empty()).filter_map(Marker::from_log_line)
}

/// Is the use of `id` of `issuer` in the record in `state_dir` (`replay.log`,
/// or a legacy `replay.json`)? Unreadable files count as empty: the caller
/// still claims the use exclusively in [`PENDING_DIR`].
pub fn recorded(state_dir: &std::path::Path, issuer: &str, id: &str) -> bool {
    let in_log =
        std::fs::read(state_dir.join(FILE)).is_ok_and(|b| log_uses(&b).any(|m| m.issuer == issuer && m.id == id));
    in_log
        || std::fs::read(state_dir.join(LEGACY_FILE))
            .is_ok_and(|b| Saved::parse(&b).is_ok_and(|s| s.contains(issuer, id)))
}

/// One use recorded by the module: `issuer \t until \t id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The issuer's configured URL.
    pub issuer: String,
    /// Kept while the token is valid: `exp` plus the issuer's leeway.
    pub until: i64,
    /// The token's replay id ([`crate::replay_id`]).
    pub id: String,
}

impl Marker {
    /// The marker's file name: the SHA-256 of issuer and id, hex (the same
    /// use always gets the same name, so `O_EXCL` refuses a second one).
    pub fn file_name(&self) -> String {
        let d = crate::crypto::sha256(format!("{}\n{}", self.issuer, self.id).as_bytes());
        d.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The marker file's content.
    pub fn line(&self) -> String {
        format!("{}\t{}\t{}\n", self.issuer, self.until, self.id)
    }

    /// The use as a line of `replay.log`: a JSON array `[issuer, until, id]`
    /// and a newline (JSON escapes any newline an id may hold).
    pub fn log_line(&self) -> String {
        let mut l = serde_json::to_string(&(&self.issuer, self.until, &self.id)).unwrap_or_default();
        l.push('\n');
        l
    }

    /// One line of `replay.log` (without its newline); `None` if it is not one.
    pub fn from_log_line(line: &[u8]) -> Option<Marker> {
        let (issuer, until, id): (String, i64, String) = serde_json::from_slice(line).ok()?;
        Some(Marker { issuer, until, id })
    }

    /// Read a marker file's content; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Marker> {
        let f: Vec<&str> = text.trim_end().splitn(3, '\t').collect();
        let [issuer, until, id] = f[..] else { return None };
        Some(Marker { issuer: issuer.to_string(), until: until.parse().ok()?, id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_name_the_use() {
        let m = Marker { issuer: "https://idp".into(), until: 42, id: "jti:a\tb".into() };
        assert_eq!(Marker::parse(&m.line()), Some(m.clone()));
        assert_eq!(m.file_name().len(), 32);
        assert_ne!(m.file_name(), Marker { id: "jti:other".into(), ..m.clone() }.file_name());
        assert_eq!(Marker::parse("no tabs"), None);
        assert_eq!(Marker::parse("i\tnot-a-number\tid"), None);
    }

    /// An id may hold anything a token's `jti` can: one use is one line still.
    #[test]
    fn log_lines_hold_hostile_ids_and_a_torn_line_is_skipped() {
        let m = Marker { issuer: "https://idp".into(), until: 42, id: "jti:a\nb\t\"c\u{202e}".into() };
        let line = m.log_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let nul = Marker { id: "jti:\0".into(), ..m.clone() }.log_line();
        assert!(!nul.contains('\0'), "{nul}");
        let mut log = format!("{line}{}{nul}", Marker { id: "jti:b".into(), ..m.clone() }.log_line()).into_bytes();
        log.extend_from_slice(&line.as_bytes()[..line.len() / 2]);
        log.extend_from_slice(&[0; 64]);
        // A line after a stretch of zeros (a lost write before it) still counts.
        log.extend_from_slice(Marker { id: "jti:after-a-gap".into(), ..m.clone() }.log_line().as_bytes());
        log.extend_from_slice(&[0; 64]);
        let uses: Vec<Marker> = log_uses(&log).collect();
        assert_eq!(uses.len(), 4, "{uses:?}");
        assert_eq!(uses[2].id, "jti:\0");
        assert_eq!(uses[3].id, "jti:after-a-gap");
        assert_eq!(uses[0], m);
        assert_eq!(uses[1].id, "jti:b");
    }
}
