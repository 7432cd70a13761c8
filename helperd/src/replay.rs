//! The replay cache: each token logs in once on this host. Keyed by
//! (issuer, `jti`), or by the SHA-256 of the signature when a token has no
//! `jti`; an entry lives until the token's `exp` plus the issuer's leeway
//! (after that the token is refused as expired anyway). Persisted so a restart
//! forgets nothing: each admitted use is one line added to
//! `state_dir/replay.log` (0600) and `fdatasync`ed before the login goes on —
//! O(1) per login, not a rewrite of every live use. The line goes into room
//! the file already has (zeros written and synced [`ROOM`] at a time), so the
//! sync changes no metadata and commits no filesystem journal: it does not
//! wait for other files' writes, as a sync that grows the file would. The
//! log ends at the first NUL byte. It is compacted to
//! the live uses (atomic replace) when helperd starts and when expired lines
//! outnumber live ones; a torn last line (a crash mid-append, never
//! acknowledged) is dropped then. Bounded: when full of live entries, new
//! logins are refused (fail closed) with a log line.

use crate::atomic;
use crate::log::error;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// Live entries kept at most.
pub const MAX_ENTRIES: usize = 100_000;
/// Lines the log may hold beyond twice the live uses before it is compacted.
const COMPACT_SLACK: usize = 4096;
/// The log grows by this many zero bytes (written and synced) at a time.
const ROOM: u64 = 64 * 1024;
// The files' format is shared with the module (oidc_core's replay module):
// `replay.log` (written here) and the markers in `replay.d` (one per use the
// module recorded while helperd was unreachable).
use oidc_core::{ReplayMarker as Marker, ReplaySaved as Saved, REPLAY_LEGACY_FILE as LEGACY_FILE};
pub use oidc_core::{REPLAY_FILE as FILE, REPLAY_PENDING_DIR as PENDING_DIR};

pub struct ReplayCache {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Clone, Copy)]
struct Entry {
    until: i64,
    /// In the log (a reserved use is not, until it is committed).
    durable: bool,
}

struct State {
    seen: HashMap<(String, String), Entry>,
    /// The log, open for writing; `None` after a failed write (the next
    /// commit compacts first, so no line is ever written after a torn one).
    log: Option<File>,
    /// Where the next line goes (the lines' end) and the file's size (the
    /// zeros after `end` are the room for more lines).
    end: u64,
    size: u64,
    /// Lines in the log.
    lines: usize,
    /// Why the log could not be read at start: then it is never written
    /// over, and no use can be recorded (logins refused, fail closed).
    unreadable: Option<String>,
}

impl ReplayCache {
    pub fn open(state_dir: &std::path::Path, now: i64) -> ReplayCache {
        let path = state_dir.join(FILE);
        let mut seen = HashMap::new();
        let mut keep = |m: Marker| {
            if m.until >= now {
                seen.insert((m.issuer, m.id), Entry { until: m.until, durable: true });
            }
        };
        // A log that exists but cannot be read is never written over (its
        // uses would be lost): logins are refused until it can be read.
        let unreadable = match std::fs::read(&path) {
            Ok(b) => {
                oidc_core::replay_log_uses(&b).for_each(&mut keep);
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                error!("{}: {e}; token logins are refused until it can be read", path.display());
                Some(format!("{}: {e}", path.display()))
            }
        };
        // The record as helperd kept it before the log: taken in once, and
        // removed only once taken in.
        let legacy = state_dir.join(LEGACY_FILE);
        let legacy_taken = match std::fs::read(&legacy) {
            Ok(b) => match Saved::parse(&b) {
                Ok(s) => {
                    s.seen.into_iter().for_each(|(issuer, id, until)| keep(Marker { issuer, until, id }));
                    true
                }
                Err(e) => {
                    error!("{}: {e}; its uses are not taken in (the file is kept)", legacy.display());
                    false
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                error!("{}: {e}", legacy.display());
                false
            }
        };
        let state = State { seen, log: None, end: 0, size: 0, lines: 0, unreadable };
        let cache = ReplayCache { path, state: Mutex::new(state) };
        // Compact now: expired and torn lines go, the legacy file's uses join
        // the log (and only then is the legacy file removed).
        let compacted = cache.compact(&mut cache.lock());
        if compacted.is_ok() && legacy_taken {
            if let Err(e) = std::fs::remove_file(&legacy) {
                error!("removing {}: {e}", legacy.display());
            }
        }
        cache
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserve a token's first use (concurrent logins with it see it taken);
    /// `commit` makes it durable once the login is admitted, `release` gives it
    /// back when the login is refused for another reason (the user may retry
    /// with the same token). `Err` if it was used before.
    pub fn reserve(&self, issuer: &str, id: &str, until: i64, now: i64) -> Result<(), String> {
        let mut st = self.lock();
        let key = (issuer.to_string(), id.to_string());
        if st.seen.get(&key).is_some_and(|e| e.until >= now) {
            return Err(format!("token already used on this host ({})", oidc_core::clean(id)));
        }
        if st.seen.len() >= MAX_ENTRIES {
            st.seen.retain(|_, e| e.until >= now);
            if st.seen.len() >= MAX_ENTRIES {
                crate::log::limited_warning!(
                    "replay-full",
                    "replay cache full ({MAX_ENTRIES} live tokens): login refused"
                );
                return Err(format!("replay cache full ({MAX_ENTRIES} live tokens)"));
            }
        }
        st.seen.insert(key, Entry { until, durable: false });
        Ok(())
    }

    /// Give back a reservation, never a recorded use: the same use may have
    /// been taken in meanwhile from a marker the module left, or a failed
    /// commit may have reached the disk (then the token stays refused: fail closed).
    pub fn release(&self, issuer: &str, id: &str) {
        let mut st = self.lock();
        let key = (issuer.to_string(), id.to_string());
        if st.seen.get(&key).is_some_and(|e| !e.durable) {
            st.seen.remove(&key);
        }
    }

    /// Make a reserved use durable (the login was admitted): one line appended
    /// to the log and `fdatasync`ed. The sync runs outside the lock, so
    /// concurrent logins share the disk's flushes rather than queue behind
    /// each other; a compaction meanwhile writes this use into the new log
    /// (it is marked durable first) and syncs that itself.
    pub fn commit(&self, issuer: &str, id: &str) -> Result<(), String> {
        let mut st = self.lock();
        let key = (issuer.to_string(), id.to_string());
        let Some(e) = st.seen.get_mut(&key) else { return Err("the token's use was not reserved".into()) };
        e.durable = true;
        let m = Marker { issuer: key.0, until: e.until, id: key.1 };
        let file = self.append(&mut st, &[m])?;
        drop(st);
        self.synced(&file)
    }

    /// Sync the log's data. On failure the page may already be marked clean
    /// and its line lost on disk: the log is rewritten (compacted from memory)
    /// before anything else is written to it, so no use is written after a gap.
    fn synced(&self, file: &File) -> Result<(), String> {
        file.sync_data().map_err(|e| {
            self.lock().log = None;
            self.failed(&e)
        })
    }

    /// Write `uses` at the log's end (compacting first when the last write
    /// failed; making room first when there is too little); the log's
    /// handle, to sync.
    fn append(&self, st: &mut State, uses: &[Marker]) -> Result<File, String> {
        if st.log.is_none() {
            self.compact(st)?;
        }
        let text: String = uses.iter().map(Marker::log_line).collect();
        let len = text.len() as u64;
        let (end, size) = (st.end, st.size);
        let written = match st.log.as_ref() {
            Some(f) => (|| {
                if end + len > size {
                    // Zeros written, not fallocate()d: a write into an unwritten
                    // extent changes metadata too. Synced whole (size changes).
                    let grow = (end + len - size).div_ceil(ROOM) * ROOM;
                    f.write_all_at(&vec![0; grow as usize], size)?;
                    f.sync_all()?;
                }
                f.write_all_at(text.as_bytes(), end)?;
                f.try_clone()
            })(),
            None => Err(std::io::Error::other("the log is not open")),
        };
        match written {
            Ok(f) => {
                st.lines += uses.len();
                st.end = end + len;
                st.size = st.size.max(st.end.div_ceil(ROOM) * ROOM);
                Ok(f)
            }
            Err(e) => {
                st.log = None;
                Err(self.failed(&e))
            }
        }
    }

    fn failed(&self, e: &dyn std::fmt::Display) -> String {
        error!("writing {}: {e}", self.path.display());
        format!("cannot record the token's use: {e}")
    }

    /// Rewrite the log to the durable live uses and room for more (atomic
    /// replace, synced) and reopen it for writing.
    fn compact(&self, st: &mut State) -> Result<(), String> {
        if let Some(why) = &st.unreadable {
            return Err(format!("cannot record the token's use: {why}"));
        }
        let mut text: String = st
            .seen
            .iter()
            .filter(|(_, e)| e.durable)
            .map(|((issuer, id), e)| Marker { issuer: issuer.clone(), until: e.until, id: id.clone() }.log_line())
            .collect();
        let lines = st.seen.values().filter(|e| e.durable).count();
        let end = text.len() as u64;
        let size = (end + 1).div_ceil(ROOM) * ROOM;
        text.extend(std::iter::repeat_n('\0', (size - end) as usize));
        st.log = None;
        atomic::write(&self.path, text.as_bytes(), 0o600).map_err(|e| self.failed(&e))?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(|e| self.failed(&e))?;
        (st.log, st.end, st.size, st.lines) = (Some(f), end, size, lines);
        Ok(())
    }

    /// Forget expired uses and, when the log's lines outnumber twice the live
    /// ones (plus some slack), compact it. Run by the refresher, off the login path.
    pub fn compact_if_due(&self, now: i64) {
        let mut st = self.lock();
        st.seen.retain(|_, e| e.until >= now || !e.durable);
        let live = st.seen.values().filter(|e| e.durable).count();
        if st.lines > 2 * live + COMPACT_SLACK || st.log.is_none() {
            let _ = self.compact(&mut st);
        }
    }

    /// Uses the module recorded while helperd was unreachable
    /// (`state_dir/replay.d/*`, one file per token): taken in, files removed.
    /// The uses are made durable (appended to the log) before their markers
    /// are removed: a restart right after, or helperd unreachable again, must
    /// not forget them.
    pub fn import_pending(&self, dir: &std::path::Path, now: i64) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut taken = Vec::new();
        let mut uses = Vec::new();
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                uses.extend(Marker::parse(&t).filter(|m| m.until >= now));
            }
            taken.push(e.path());
        }
        if taken.is_empty() {
            return;
        }
        let mut st = self.lock();
        for m in &uses {
            st.seen.insert((m.issuer.clone(), m.id.clone()), Entry { until: m.until, durable: true });
        }
        let Ok(file) = self.append(&mut st, &uses) else { return }; // markers kept: taken in again next time
        drop(st);
        if self.synced(&file).is_err() {
            return;
        }
        for p in taken {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Record a token's first use at once (reserve + commit).
    #[cfg(test)]
    pub fn first_use(&self, issuer: &str, id: &str, until: i64, now: i64) -> Result<(), String> {
        self.reserve(issuer, id, until, now)?;
        self.commit(issuer, id)
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

    fn temp(name: &str) -> std::path::PathBuf {
        crate::testing::temp_dir(&format!("replay-{name}"))
    }

    /// Issue 17: a login used to rewrite and fsync every live use (O(n) per
    /// login, 2 fsyncs); now it appends its own line to the same file.
    #[test]
    fn a_login_appends_one_line_and_rewrites_nothing() {
        use std::os::unix::fs::MetadataExt;
        let dir = temp("append");
        let c = ReplayCache::open(&dir, 100);
        for i in 0..50 {
            c.first_use("https://idp", &format!("jti:{i}"), 200, 100).unwrap();
        }
        let log = dir.join(FILE);
        // The lines end at the first NUL; the zeros after them are room.
        let lines = || {
            let b = std::fs::read(&log).unwrap();
            let end = b.iter().position(|c| *c == 0).unwrap();
            assert!(b[end..].iter().all(|c| *c == 0), "only zeros after the lines");
            (b[..end].to_vec(), b.len())
        };
        let ((before, size), ino) = (lines(), std::fs::metadata(&log).unwrap().ino());
        c.first_use("https://idp", "jti:new", 200, 100).unwrap();
        let (after, size_after) = lines();
        assert!(after.starts_with(&before), "earlier lines untouched");
        let added = Marker { issuer: "https://idp".into(), until: 200, id: "jti:new".into() }.log_line();
        assert_eq!(&after[before.len()..], added.as_bytes());
        assert_eq!(std::fs::metadata(&log).unwrap().ino(), ino, "the same file, not a replacement");
        assert_eq!(size_after, size, "written into the room the file has: its size (metadata) unchanged");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
        // A refused login (released) writes nothing.
        c.reserve("https://idp", "jti:refused", 200, 100).unwrap();
        c.release("https://idp", "jti:refused");
        assert_eq!(lines().0, after);
        // Past the room: the file grows by ROOM, and every use is there after a restart.
        let many = ROOM as usize / after.len() * 60;
        for i in 0..many {
            c.first_use("https://idp", &format!("jti:many{i}"), 200, 100).unwrap();
        }
        let (all, grown) = lines();
        assert!(grown > size && (grown as u64).is_multiple_of(ROOM) && all.len() < grown, "{grown} {}", all.len());
        drop(c);
        let c = ReplayCache::open(&dir, 100);
        for i in (0..many).step_by(97).chain([many - 1]) {
            assert!(c.reserve("https://idp", &format!("jti:many{i}"), 200, 100).is_err(), "{i}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A crash mid-append leaves a torn last line: the uses before it are
    /// remembered, and nothing appended later is glued onto it.
    #[test]
    fn a_torn_last_line_is_dropped_and_the_uses_before_it_kept() {
        let dir = temp("torn");
        let m = |id: &str| Marker { issuer: "https://idp".into(), until: 200, id: id.into() };
        let torn = m("jti:torn").log_line();
        let text = format!("{}{}{}", m("jti:a").log_line(), m("jti:b\nwith a newline").log_line(), &torn[..10]);
        std::fs::write(dir.join(FILE), text).unwrap();
        let c = ReplayCache::open(&dir, 100);
        assert!(c.reserve("https://idp", "jti:a", 200, 100).is_err());
        assert!(c.reserve("https://idp", "jti:b\nwith a newline", 200, 100).is_err());
        c.first_use("https://idp", "jti:c", 200, 100).unwrap();
        drop(c);
        let c = ReplayCache::open(&dir, 100);
        for id in ["jti:a", "jti:b\nwith a newline", "jti:c"] {
            assert!(c.reserve("https://idp", id, 200, 100).is_err(), "{id} remembered");
        }
        c.first_use("https://idp", "jti:torn", 200, 100).expect("a use whose line was torn was never admitted");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Expired lines are dropped when they outnumber the live ones; the log
    /// stays bounded by the live uses, not by every login ever.
    #[test]
    fn the_log_is_compacted_to_the_live_uses() {
        let dir = temp("compact");
        let c = ReplayCache::open(&dir, 100);
        for i in 0..(COMPACT_SLACK + 100) {
            c.first_use("https://idp", &format!("jti:old{i}"), 150, 100).unwrap();
        }
        c.first_use("https://idp", "jti:live", 500, 100).unwrap();
        let full = std::fs::metadata(dir.join(FILE)).unwrap().len();
        c.compact_if_due(200);
        let compacted = std::fs::metadata(dir.join(FILE)).unwrap().len();
        assert_eq!(compacted, ROOM, "one live line and room ({full} bytes before)");
        let text = std::fs::read(dir.join(FILE)).unwrap();
        assert_eq!(oidc_core::replay_log_uses(&text).count(), 1);
        assert!(c.reserve("https://idp", "jti:live", 500, 200).is_err());
        c.first_use("https://idp", "jti:after", 500, 200).unwrap();
        drop(c);
        let c = ReplayCache::open(&dir, 200);
        assert!(c.reserve("https://idp", "jti:live", 500, 200).is_err());
        assert!(c.reserve("https://idp", "jti:after", 500, 200).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A use taken in from the module's marker while a login with the same
    /// token was in flight stays recorded when that login is refused.
    #[test]
    fn a_refused_login_never_gives_back_a_recorded_use() {
        let dir = temp("release");
        let pending = dir.join(PENDING_DIR);
        std::fs::create_dir_all(&pending).unwrap();
        let c = ReplayCache::open(&dir, 100);
        c.reserve("https://idp", "jti:both", 200, 100).unwrap();
        let m = Marker { issuer: "https://idp".into(), until: 200, id: "jti:both".into() };
        std::fs::write(pending.join(m.file_name()), m.line()).unwrap();
        c.import_pending(&pending, 100);
        c.release("https://idp", "jti:both");
        assert!(c.reserve("https://idp", "jti:both", 200, 100).is_err(), "still recorded");
        // A plain reservation is given back.
        c.reserve("https://idp", "jti:retry", 200, 100).unwrap();
        c.release("https://idp", "jti:retry");
        assert!(c.reserve("https://idp", "jti:retry", 200, 100).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A log that exists but cannot be read is never written over (its uses
    /// would be forgotten): no use can be recorded, so logins are refused. A
    /// legacy file that does not parse is kept, not removed.
    #[test]
    fn an_unreadable_record_is_never_written_over() {
        let dir = temp("unreadable");
        std::fs::create_dir(dir.join(FILE)).unwrap(); // read() fails: EISDIR
        std::fs::write(dir.join(LEGACY_FILE), b"{not json").unwrap();
        let c = ReplayCache::open(&dir, 100);
        assert!(c.first_use("https://idp", "jti:a", 200, 100).unwrap_err().contains("cannot record"));
        c.compact_if_due(100);
        assert!(dir.join(FILE).is_dir(), "not replaced");
        assert_eq!(std::fs::read(dir.join(LEGACY_FILE)).unwrap(), b"{not json", "kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The record an older helperd kept (`replay.json`) is taken into the log.
    #[test]
    fn a_legacy_record_is_taken_in() {
        let dir = temp("legacy");
        let saved = Saved { v: 1, seen: vec![("https://idp".into(), "jti:old".into(), 200)] };
        std::fs::write(dir.join(LEGACY_FILE), serde_json::to_vec(&saved).unwrap()).unwrap();
        drop(ReplayCache::open(&dir, 100));
        assert!(!dir.join(LEGACY_FILE).exists(), "removed once in the log");
        let c = ReplayCache::open(&dir, 100);
        assert!(c.reserve("https://idp", "jti:old", 200, 100).is_err());
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
