//! The processes of a session, and ending them. helperd follows, from
//! `open_session` on: the opening process (pinned by its start time), every
//! process seen descending from it (re-read once a second, so a process that
//! is reparented — `nohup cmd & exit`, a double fork — stays followed), and
//! the members of its systemd-logind scope when the opener *leads* that scope
//! (a `su`/`sudo` inside another login shares the caller's scope, which is
//! then not the session's). Ending a session: SIGHUP to its processes but the
//! opener (sshd's monitor then closes the session as on a logout), then
//! SIGKILL to everything left, the opener included, after `kill_after_secs`.
//! Nothing else is signalled: another session of the same uid is not in it.
//!
//! Limits: without a logind scope, a process that forks and leaves the tree
//! within the same second escapes. Each pid is re-checked against its start
//! time just before it is signalled.

use crate::procfs;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A process for good: (pid, start time).
pub type Proc = (i32, u64);

/// What helperd follows of one session's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The cgroup (v2) directory of the logind scope the opener leads.
    pub scope: Option<PathBuf>,
    /// Every process of the session at the last look (the opener excluded).
    pub seen: Vec<Proc>,
}

impl Tracked {
    /// At `open_session`.
    pub fn at_open(opener: Proc) -> Tracked {
        let mut t = Tracked { scope: scope_led_by(opener), seen: vec![] };
        t.refresh(opener);
        t
    }

    /// Look again: what of the session still runs, and what it started
    /// since (`all`: one [`processes`] scan for every session). Whether that changed.
    pub fn refresh_in(&mut self, all: &[(i32, i32, u64)], opener: Proc) -> bool {
        let seen: Vec<Proc> =
            tree_in(all, &self.roots(opener), self.scope.as_deref()).into_iter().filter(|p| *p != opener).collect();
        let changed = seen != self.seen;
        self.seen = seen;
        changed
    }

    pub fn refresh(&mut self, opener: Proc) {
        self.refresh_in(&processes(), opener);
    }

    /// The opener, then every process seen.
    pub fn roots(&self, opener: Proc) -> Vec<Proc> {
        std::iter::once(opener).chain(self.seen.iter().copied()).collect()
    }
}

/// Every live process on the host (zombies excluded): (pid, ppid, start time).
pub fn processes() -> Vec<(i32, i32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = s.get(s.rfind(')')? + 2..)?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            (*f.first()? != "Z").then_some(())?;
            Some((pid, f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
        })
        .collect()
}

/// The logind scope `opener` leads: its cgroup is `…/session-N.scope` and
/// logind's record of session N names it as the leader.
fn scope_led_by((pid, start): Proc) -> Option<PathBuf> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = s.lines().find_map(|l| l.strip_prefix("0::"))?;
    let id = path.rsplit('/').next()?.strip_prefix("session-")?.strip_suffix(".scope")?;
    if !path.starts_with("/user.slice/") || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let record = std::fs::read_to_string(format!("/run/systemd/sessions/{id}")).ok()?;
    let leader = record.lines().find_map(|l| l.strip_prefix("LEADER="))?.trim().parse::<i32>().ok()?;
    (leader == pid && procfs::start_time(pid) == Some(start)).then(|| PathBuf::from(format!("/sys/fs/cgroup{path}")))
}

/// The processes of a session: `roots` still alive (same start time), their
/// descendants, and the members of `scope`. Never pid 1 or helperd itself.
pub fn tree(roots: &[Proc], scope: Option<&Path>) -> Vec<Proc> {
    tree_in(&processes(), roots, scope)
}

/// [`tree`] over one scan of the processes.
pub fn tree_in(all: &[(i32, i32, u64)], roots: &[Proc], scope: Option<&Path>) -> Vec<Proc> {
    let start: HashMap<i32, u64> = all.iter().map(|&(p, _, s)| (p, s)).collect();
    let mut children: HashMap<i32, Vec<Proc>> = HashMap::new();
    for &(pid, ppid, s) in all {
        children.entry(ppid).or_default().push((pid, s));
    }
    let mut found: BTreeSet<Proc> = BTreeSet::new();
    let mut todo: Vec<Proc> = roots.iter().copied().filter(|(p, s)| start.get(p) == Some(s)).collect();
    if let Some(scope) = scope {
        let members = std::fs::read_to_string(scope.join("cgroup.procs")).unwrap_or_default();
        todo.extend(members.lines().filter_map(|l| l.parse::<i32>().ok()).filter_map(|p| Some((p, *start.get(&p)?))));
    }
    while let Some((pid, s)) = todo.pop() {
        if !found.insert((pid, s)) {
            continue;
        }
        // A child started before its parent means the parent's pid was reused.
        todo.extend(children.get(&pid).into_iter().flatten().filter(|(_, cs)| *cs >= s));
    }
    let me = std::process::id() as i32;
    found.into_iter().filter(|(p, _)| *p > 1 && *p != me).collect()
}

/// Send `sig` to each process still alive as itself; how many were signalled.
pub fn signal(procs: &[Proc], sig: Signal) -> usize {
    procs
        .iter()
        .filter(|(pid, start)| procfs::start_time(*pid) == Some(*start) && kill(Pid::from_raw(*pid), sig).is_ok())
        .count()
}
