//! What helperd reads from `/proc`: a process's parent and start time (with
//! the pid, what identifies a process for good), its real uid, and its
//! ancestry. A peer is pinned by its start time at accept.

use crate::server::Peer;

/// (ppid, start time) of a process, from /proc/PID/stat (comm may hold spaces and parens).
pub fn stat(pid: i32) -> Option<(i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after comm: state(0) ppid(1) ... starttime is field 22 overall = index 19 here
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// A process's start time (clock ticks since boot): with the pid, what
/// identifies it for good (a pid alone can be reused).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Is `peer` still the process that connected (not gone, pid not reused)?
pub fn same_process(peer: &Peer) -> bool {
    peer.start.is_some() && start_time(peer.pid) == peer.start
}

/// The real uid of a process (the caller of setuid sudo, not root).
pub fn real_uid(pid: i32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// (pid, start time) from `pid` up to init, bounded.
pub fn ancestry(mut pid: i32) -> Vec<(i32, u64)> {
    let mut out = vec![];
    for _ in 0..256 {
        let Some((ppid, start)) = stat(pid) else { break };
        out.push((pid, start));
        if pid <= 1 || ppid <= 0 {
            break;
        }
        pid = ppid;
    }
    out
}

/// The peer's ancestry, if the peer is still the process pinned at accept
/// (its pid not reused since, before and after the walk).
pub fn pinned_ancestry(peer: &Peer) -> Option<Vec<(i32, u64)>> {
    let tree = ancestry(peer.pid);
    (tree.first().map(|t| t.1) == peer.start && same_process(peer)).then_some(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_ancestry() {
        let me = std::process::id() as i32;
        let tree = ancestry(me);
        assert_eq!(tree.first().map(|t| t.0), Some(me));
        assert_eq!(tree.first().map(|t| t.1), start_time(me));
        // SAFETY: getuid cannot fail.
        assert_eq!(real_uid(me), Some(unsafe { libc::getuid() }));
        let peer = Peer { uid: 0, pid: me, start: start_time(me) };
        assert!(same_process(&peer) && pinned_ancestry(&peer).is_some());
        let moved = Peer { start: peer.start.map(|s| s + 1), ..peer };
        assert!(!same_process(&moved) && pinned_ancestry(&moved).is_none());
        assert_eq!(stat(-5), None);
    }
}
