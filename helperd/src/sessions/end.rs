//! Ending a session: the processes helperd bound at `open_session` — the
//! opening process (pinned by its start time), every process descending from
//! it, and the members of its systemd-logind scope if it has one — get SIGHUP,
//! then SIGKILL after `[sessions] kill_after_secs`. Nothing else: a process of
//! another session of the same uid is not in the tree.
//!
//! Limits: a process that double-forks out of the tree (reparented to init or
//! a subreaper) escapes unless logind's `session-N.scope` holds it. Each pid is
//! re-checked against its start time just before it is signalled (a pid reused
//! in between is not hit; the window is microseconds).

use crate::procfs;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeSet, HashMap};

/// A process for good: (pid, start time).
pub type Proc = (i32, u64);

/// Every process on the host: (pid, ppid, start time).
fn processes() -> Vec<(i32, i32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| procfs::stat(pid).map(|(ppid, start)| (pid, ppid, start)))
        .collect()
}

/// The cgroup (v2) directory of `pid` if it is a systemd-logind session scope.
fn logind_scope(pid: i32) -> Option<std::path::PathBuf> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = s.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = path.rsplit('/').next()?;
    (last.starts_with("session-") && last.ends_with(".scope") && path.starts_with("/user.slice/"))
        .then(|| std::path::PathBuf::from(format!("/sys/fs/cgroup{path}")))
}

/// The processes of a session: `roots` that are still alive (same start
/// time), their descendants, and the members of the first root's logind scope.
pub fn tree(roots: &[Proc]) -> Vec<Proc> {
    let all = processes();
    let start: HashMap<i32, u64> = all.iter().map(|&(p, _, s)| (p, s)).collect();
    let mut children: HashMap<i32, Vec<Proc>> = HashMap::new();
    for &(pid, ppid, s) in &all {
        children.entry(ppid).or_default().push((pid, s));
    }
    let mut found: BTreeSet<Proc> = BTreeSet::new();
    let mut todo: Vec<Proc> = roots.iter().copied().filter(|(p, s)| start.get(p) == Some(s)).collect();
    while let Some((pid, s)) = todo.pop() {
        if !found.insert((pid, s)) {
            continue;
        }
        // A child started before its parent means the parent's pid was reused.
        todo.extend(children.get(&pid).into_iter().flatten().filter(|(_, cs)| *cs >= s));
    }
    if let Some(scope) = roots.first().filter(|r| found.contains(r)).and_then(|r| logind_scope(r.0)) {
        let members = std::fs::read_to_string(scope.join("cgroup.procs")).unwrap_or_default();
        found.extend(members.lines().filter_map(|l| l.parse::<i32>().ok()).filter_map(|p| Some((p, *start.get(&p)?))));
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
