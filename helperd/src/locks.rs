//! The locks in force (`oidc_core::Lock`): root's (`helperd lock`, kept until
//! `helperd unlock`) and the fleet list's (replaced on each poll). The only
//! writer of `state_dir/locks.json` (0600, atomic replace), which the PAM
//! module reads when helperd is unreachable.

use crate::atomic;
use crate::log::{error, warning};
use oidc_core::{Lock, LockTarget, LocksSaved, SessionClaims, LOCKS_FILE, LOCKS_VERSION};
use std::path::PathBuf;
use std::sync::Mutex;

/// At most this many locks (a fleet list beyond it is refused, not cut).
pub const MAX_LOCKS: usize = 100_000;
/// `source` of root's locks.
pub const LOCAL: &str = "local";

pub struct Locks {
    path: PathBuf,
    locks: Mutex<Vec<Lock>>,
    /// The file could not be read at start: every login is refused (a lock
    /// that cannot be read must not be taken for none) until an operator
    /// repairs or removes it and restarts helperd.
    broken: Option<String>,
}

impl Locks {
    /// Read the file. One that cannot be read fails closed: logged, and
    /// every login refused until it is repaired or removed (as the module
    /// does with helperd down).
    pub fn open(state_dir: &std::path::Path) -> Locks {
        let path = state_dir.join(LOCKS_FILE);
        let (locks, broken) = match LocksSaved::read(state_dir) {
            Ok(s) => (s.locks, None),
            Err(e) => {
                error!("{e}: every OIDC login is refused until the file is repaired or removed (then restart helperd)");
                (vec![], Some(e))
            }
        };
        Locks { path, locks: Mutex::new(locks), broken }
    }

    fn save(&self, locks: &[Lock]) -> Result<(), String> {
        let saved = LocksSaved { v: LOCKS_VERSION, locks: locks.to_vec() };
        let bytes = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        atomic::write(&self.path, &bytes, 0o600).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// The lock that holds for these claims, if any.
    pub fn lock_for(&self, c: &SessionClaims) -> Option<Lock> {
        if let Some(e) = &self.broken {
            return Some(Lock {
                target: oidc_core::LockTarget::Name { name: c.account.clone() },
                by: "helperd".into(),
                at: 0,
                reason: format!("the locks file is unreadable: {e}"),
                source: LOCAL.into(),
                via: None,
            });
        }
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.target.holds_for(c)).cloned()
    }

    /// Add a lock of its source (root's, or a Shared Signals stream's): one
    /// per target and source (a second `lock` updates the reason).
    pub fn lock(&self, lock: Lock) -> Result<(), String> {
        self.writable()?;
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = locks.clone();
        next.retain(|l| !(l.target == lock.target && l.source == lock.source));
        if next.len() >= MAX_LOCKS {
            return Err(format!("{MAX_LOCKS} locks already"));
        }
        next.push(lock);
        self.save(&next)?;
        *locks = next;
        Ok(())
    }

    /// Remove root's lock of `target`: how many were removed.
    pub fn unlock(&self, target: &LockTarget) -> Result<usize, String> {
        self.unlock_from(target, LOCAL)
    }

    /// Remove `source`'s lock of `target`: how many were removed.
    pub fn unlock_from(&self, target: &LockTarget, source: &str) -> Result<usize, String> {
        self.writable()?;
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // A name's lock goes with the identity lock set through it (`via`).
        let via = |l: &Lock| matches!(target, LockTarget::Name { name } if l.via.as_deref() == Some(name.as_str()));
        let next: Vec<Lock> =
            locks.iter().filter(|l| !((l.target == *target || via(l)) && l.source == source)).cloned().collect();
        let removed = locks.len() - next.len();
        if removed > 0 {
            self.save(&next)?;
            *locks = next;
        }
        Ok(removed)
    }

    /// Replace the locks of `source` (a fleet list) with `fresh`: the ones
    /// that are new (to end their sessions).
    pub fn replace_source(&self, source: &str, fresh: Vec<Lock>) -> Result<Vec<Lock>, String> {
        self.writable()?;
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Lock> = locks.iter().filter(|l| l.source != source).cloned().collect();
        if next.len() + fresh.len() > MAX_LOCKS {
            warning!("lock list {source}: {} entries: more than {MAX_LOCKS} locks; not applied", fresh.len());
            return Err(format!("more than {MAX_LOCKS} locks"));
        }
        let new: Vec<Lock> = fresh
            .iter()
            .filter(|f| !locks.iter().any(|l| l.source == source && l.target == f.target))
            .cloned()
            .collect();
        next.extend(fresh);
        if next != *locks {
            self.save(&next)?;
            *locks = next;
        }
        Ok(new)
    }

    /// The file is not overwritten while it could not be read (an operator
    /// looks at it first).
    fn writable(&self) -> Result<(), String> {
        match &self.broken {
            Some(e) => Err(format!("{e}: repair or remove it, then restart helperd")),
            None => Ok(()),
        }
    }

    pub fn list(&self) -> Vec<Lock> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(name: &str, source: &str) -> Lock {
        Lock {
            target: LockTarget::Name { name: name.into() },
            by: "t".into(),
            at: 1,
            reason: String::new(),
            source: source.into(),
            via: None,
        }
    }

    /// A fleet list replaces only its own locks; root's stay, and `unlock`
    /// lifts only root's.
    #[test]
    fn a_fleet_list_replaces_its_own_locks_only() {
        let dir = crate::testing::temp_dir("locks");
        let l = Locks::open(&dir);
        l.lock(lock("alice", LOCAL)).unwrap();
        let new = l.replace_source("fleet", vec![lock("bob", "fleet"), lock("carol", "fleet")]).unwrap();
        assert_eq!(new.len(), 2);
        let new = l.replace_source("fleet", vec![lock("carol", "fleet"), lock("dave", "fleet")]).unwrap();
        assert_eq!(new, vec![lock("dave", "fleet")], "only dave is new");
        let names: Vec<String> = Locks::open(&dir).list().iter().map(|l| l.target.to_string()).collect();
        assert_eq!(names, ["name alice", "name carol", "name dave"], "persisted");
        assert_eq!(l.unlock(&LockTarget::Name { name: "carol".into() }).unwrap(), 0, "a fleet lock");
        assert_eq!(l.unlock(&LockTarget::Name { name: "alice".into() }).unwrap(), 1);
        // An unreadable file fails closed: everyone is refused, nothing is overwritten.
        std::fs::write(dir.join(LOCKS_FILE), "{").unwrap();
        let broken = Locks::open(&dir);
        let anyone = oidc_core::SessionClaims::naming("i", "s", "zed", "zed");
        assert!(broken.lock_for(&anyone).is_some_and(|l| l.reason.contains("unreadable")));
        assert!(broken.lock(lock("x", LOCAL)).is_err());
        assert_eq!(std::fs::read(dir.join(LOCKS_FILE)).unwrap(), b"{");
    }
}
