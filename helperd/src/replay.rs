//! The replay cache: each token logs in once on this host. Keyed by
//! (issuer, `jti`), or by the SHA-256 of the signature when a token has no
//! `jti`; an entry lives until the token's `exp` plus the issuer's leeway
//! (after that the token is refused as expired anyway). Persisted
//! (`state_dir/replay.json`, 0600, atomic replace) so a restart forgets
//! nothing; bounded: when full of live entries, new logins are refused
//! (fail closed) with a log line.

use crate::atomic;
use crate::log::error;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Live entries kept at most.
pub const MAX_ENTRIES: usize = 100_000;
// The files' format is shared with the module (oidc_core's replay module):
// `replay.json` (written here) and the markers in `replay.d` (one per use the
// module recorded while helperd was unreachable).
use oidc_core::{ReplayMarker as Marker, ReplaySaved as Saved};
pub use oidc_core::{REPLAY_FILE as FILE, REPLAY_PENDING_DIR as PENDING_DIR};

pub struct ReplayCache {
    path: PathBuf,
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl ReplayCache {
    pub fn open(state_dir: &std::path::Path, now: i64) -> ReplayCache {
        let path = state_dir.join(FILE);
        let mut seen = HashMap::new();
        match std::fs::read(&path) {
            Ok(b) => match Saved::parse(&b) {
                Ok(s) => {
                    for (iss, id, until) in s.seen.into_iter().filter(|e| e.2 >= now) {
                        seen.insert((iss, id), until);
                    }
                }
                Err(e) => error!("{}: {e}; starting with an empty replay cache", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => error!("{}: {e}", path.display()),
        }
        ReplayCache { path, seen: Mutex::new(seen) }
    }

    /// Reserve a token's first use (concurrent logins with it see it taken);
    /// `commit` makes it durable once the login is admitted, `release` gives it
    /// back when the login is refused for another reason (the user may retry
    /// with the same token). `Err` if it was used before.
    pub fn reserve(&self, issuer: &str, id: &str, until: i64, now: i64) -> Result<(), String> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (issuer.to_string(), id.to_string());
        if seen.get(&key).is_some_and(|u| *u >= now) {
            return Err(format!("token already used on this host ({})", oidc_core::clean(id)));
        }
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, u| *u >= now);
            if seen.len() >= MAX_ENTRIES {
                crate::log::limited_warning!(
                    "replay-full",
                    "replay cache full ({MAX_ENTRIES} live tokens): login refused"
                );
                return Err(format!("replay cache full ({MAX_ENTRIES} live tokens)"));
            }
        }
        seen.insert(key, until);
        Ok(())
    }

    pub fn release(&self, issuer: &str, id: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(&(issuer.to_string(), id.to_string()));
    }

    /// Persist the cache (after a reserved use was admitted).
    pub fn commit(&self) -> Result<(), String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let saved = Saved { v: 1, seen: seen.iter().map(|((i, d), u)| (i.clone(), d.clone(), *u)).collect() };
        serde_json::to_vec(&saved)
            .map_err(|e| e.to_string())
            .and_then(|b| atomic::write(&self.path, &b, 0o600).map_err(|e| e.to_string()))
            .map_err(|e| {
                error!("writing {}: {e}", self.path.display());
                format!("cannot record the token's use: {e}")
            })
    }

    /// Uses the module recorded while helperd was unreachable
    /// (`state_dir/replay.d/*`, one file per token): taken in, files removed.
    /// The uses are made durable (`replay.json`) before their markers are
    /// removed: a restart right after, or helperd unreachable again, must not
    /// forget them.
    pub fn import_pending(&self, dir: &std::path::Path, now: i64) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let taken: Vec<std::path::PathBuf> = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            rd.flatten()
                .map(|e| {
                    if let Ok(t) = std::fs::read_to_string(e.path()) {
                        if let Some(m) = Marker::parse(&t).filter(|m| m.until >= now) {
                            seen.insert((m.issuer, m.id), m.until);
                        }
                    }
                    e.path()
                })
                .collect()
        };
        if taken.is_empty() || self.commit().is_err() {
            return; // markers kept: taken in again next time
        }
        for p in taken {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Record a token's first use at once (reserve + commit).
    #[cfg(test)]
    pub fn first_use(&self, issuer: &str, id: &str, until: i64, now: i64) -> Result<(), String> {
        self.reserve(issuer, id, until, now)?;
        self.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_token_across_restarts_until_expiry() {
        let dir = std::env::temp_dir().join(format!("helperd-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = ReplayCache::open(&dir, 100);
        assert!(c.first_use("i", "jti:a", 200, 100).is_ok());
        assert!(c.first_use("i", "jti:a", 200, 150).unwrap_err().contains("already used"));
        assert!(c.first_use("other", "jti:a", 200, 150).is_ok(), "per issuer");
        let c = ReplayCache::open(&dir, 150);
        assert!(c.first_use("i", "jti:a", 200, 160).is_err(), "remembered across a restart");
        assert!(c.first_use("i", "jti:a", 300, 201).is_ok(), "expired entries are forgotten");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(test)]
mod pending {
    use super::*;

    /// A use the module recorded while helperd was down survives helperd
    /// restarting right after taking it in (the marker is gone by then).
    #[test]
    fn a_use_taken_in_from_a_marker_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("helperd-replay-pending-{}", std::process::id()));
        let pending = dir.join(PENDING_DIR);
        std::fs::create_dir_all(&pending).unwrap();
        let m = Marker { issuer: "https://idp".into(), until: 2_000, id: "jti:offline".into() };
        std::fs::write(pending.join(m.file_name()), m.line()).unwrap();
        let c = ReplayCache::open(&dir, 1_000);
        c.import_pending(&pending, 1_000);
        assert_eq!(std::fs::read_dir(&pending).unwrap().count(), 0, "the marker is taken in");
        drop(c);
        let c = ReplayCache::open(&dir, 1_000);
        assert!(c.reserve("https://idp", "jti:offline", 2_000, 1_000).is_err(), "replayed after a restart");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
