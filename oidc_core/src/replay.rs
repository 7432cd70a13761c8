//! The replay record's files, in one place: helperd writes `replay.json` and
//! takes in the markers; the PAM module, while helperd is unreachable, reads
//! `replay.json` and claims a token's use with one marker file in
//! `replay.d/` (created exclusively, so two logins cannot both claim it).

use serde::{Deserialize, Serialize};

/// helperd's record of used tokens, in its state dir.
pub const FILE: &str = "replay.json";
/// Where the module records uses while helperd is unreachable (one file per token).
pub const PENDING_DIR: &str = "replay.d";

/// `replay.json`.
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
}
