//! Live login sessions and their verified claims (in memory: a restart of
//! helperd ends claim reuse — sudo then asks for a fresh token, never more).
//!
//! A verified login is kept as "pending" under a random login id until the
//! PAM session opens (sshd authenticates in another process than the one that
//! opens the session; the id travels in the PAM environment). A session is
//! bound to the process that opened it and the account's uid; claims are only
//! given to a process that descends from that process *and* runs as that uid.

use crate::clock::Clock;
use crate::log::{info, warning};
use crate::procfs;
use crate::server::Peer;
use oidc_core::Secret;
use oidc_core::{SessionClaims, SessionInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A verified login not bound to a session within this time is dropped.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many verified logins wait for their session (sshd's default
/// MaxStartups lets 100 unauthenticated connections exist at once); beyond it
/// the oldest is dropped (its session would then open without claims, logged).
const MAX_PENDING: usize = 1024;

/// A verified login waiting for its session: claims, the token kept for web
/// identity (if any), and when it was verified (the clock's monotonic time).
type Pending = (SessionClaims, Option<Secret>, Duration);

/// Pending logins by id, and their ids in arrival order (expiry in O(1) per login).
#[derive(Default)]
struct PendingSet {
    by_id: HashMap<String, Pending>,
    order: std::collections::VecDeque<(Duration, String)>,
    /// Live logins dropped at the cap since the last warning, and when that was.
    dropped: u64,
    warned: Option<Duration>,
}

fn young(t: Duration, now: Duration) -> bool {
    now.saturating_sub(t) < PENDING_TTL
}

impl PendingSet {
    fn insert(&mut self, id: String, p: Pending, now: Duration) {
        while let Some((t, old)) = self.order.front() {
            let full = self.by_id.len() >= MAX_PENDING;
            if young(*t, now) && !full && self.order.len() < 2 * MAX_PENDING {
                break;
            }
            let old = old.clone();
            self.order.pop_front();
            if self.by_id.remove(&old).is_some_and(|p| young(p.2, now)) {
                self.dropped += 1;
            }
        }
        // One warning a minute at most, with the count.
        if self.dropped > 0 && self.warned.is_none_or(|w| now.saturating_sub(w) >= Duration::from_secs(60)) {
            warning!(
                "{MAX_PENDING} verified logins wait for their session: dropped the {} oldest (they never opened one)",
                self.dropped
            );
            (self.dropped, self.warned) = (0, Some(now));
        }
        self.order.push_back((p.2, id.clone()));
        self.by_id.insert(id, p);
    }

    fn get(&self, id: &str, now: Duration) -> Option<&Pending> {
        self.by_id.get(id).filter(|p| young(p.2, now))
    }

    fn remove(&mut self, id: &str, now: Duration) -> Option<Pending> {
        self.by_id.remove(id).filter(|p| young(p.2, now))
    }
}

pub struct Sessions {
    clock: Arc<dyn Clock>,
    pending: Mutex<PendingSet>,
    live: Mutex<Vec<SessionInfo>>,
    next_id: Mutex<u64>,
}

/// The one rule for "the session of a process": the nearest process of its
/// (pinned) ancestry that opened a live session — that very process, by pid
/// and start time — whose uid is `uid`; any uid when `uid` is `None` (root).
fn session_in<'a>(live: &'a [SessionInfo], tree: &[(i32, u64)], uid: Option<u32>) -> Option<&'a SessionInfo> {
    tree.iter().find_map(|(pid, start)| {
        live.iter().find(|s| s.pid == *pid && s.pid_start == *start && uid.is_none_or(|u| s.uid == u))
    })
}

/// Is a process of `tree` the opener of another uid's session (worth a warning)?
fn inside_other_uid(live: &[SessionInfo], tree: &[(i32, u64)], uid: u32) -> bool {
    live.iter().any(|s| s.uid != uid && tree.iter().any(|(p, _)| *p == s.pid))
}

impl Sessions {
    pub fn new(clock: Arc<dyn Clock>) -> Sessions {
        Sessions { clock, pending: Mutex::default(), live: Mutex::default(), next_id: Mutex::default() }
    }

    pub fn add_pending(&self, claims: SessionClaims, web_token: Option<Secret>) -> Option<String> {
        let id = crate::ids::random_id()?;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.mono();
        p.insert(id.clone(), (claims, web_token, now), now);
        Some(id)
    }

    pub fn pending_account(&self, login_id: &str) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(login_id, self.clock.mono())
            .map(|(c, _, _)| c.account.clone())
    }

    /// Bind a pending login to the session opened by `pid`: its id, claims and kept token.
    pub fn open(
        &self,
        login_id: &str,
        uid: u32,
        pid: i32,
        tty: &str,
        rhost: &str,
    ) -> Result<(u64, SessionClaims, Option<Secret>), String> {
        let (claims, web_token, _) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(login_id, self.clock.mono())
            .ok_or("unknown or expired login id")?;
        let (_, pid_start) = procfs::stat(pid).ok_or(format!("process {pid} is gone"))?;
        let id = {
            let mut n = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        info!(
            "session {id} opened: user={} uid={uid} pid={pid} tty={tty} rhost={rhost} issuer={} sub={} token expires in {}s",
            claims.account,
            claims.issuer,
            oidc_core::clean(&claims.sub),
            claims.exp - self.clock.now()
        );
        let s = SessionInfo {
            id,
            uid,
            pid,
            pid_start,
            tty: tty.into(),
            rhost: rhost.into(),
            opened: self.clock.now(),
            claims: claims.clone(),
            aws: None,
        };
        self.live.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        Ok((id, claims, web_token))
    }

    pub fn close(&self, pid: i32) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let before = live.len();
        live.retain(|s| {
            let keep = s.pid != pid;
            if !keep {
                info!("session {} closed: user={} pid={pid}", s.id, s.claims.account);
            }
            keep
        });
        before - live.len()
    }

    /// Drop sessions whose opening process is gone (or whose pid was reused).
    pub fn reap(&self) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|s| {
            let alive = procfs::stat(s.pid).is_some_and(|(_, start)| start == s.pid_start);
            if !alive {
                info!("session {} ended: process {} is gone", s.id, s.pid);
            }
            alive
        });
    }

    /// Claims for the session the peer process belongs to. The peer is pinned
    /// by the start time taken at accept: if its pid now names another
    /// process (it exited, the pid was reused), nothing is given.
    pub fn claims_for(&self, peer: &Peer) -> (Option<SessionClaims>, String) {
        let peer_pid = peer.pid;
        let gone = || format!("process {peer_pid} is gone or its pid was reused since it connected");
        self.reap();
        if !procfs::same_process(peer) {
            return (None, gone());
        }
        let Some(uid) = procfs::real_uid(peer_pid) else { return (None, format!("cannot read process {peer_pid}")) };
        if self.live.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            // No live session on the host: no process tree to walk.
            return (None, format!("process {peer_pid} (uid {uid}) is in no OIDC session (none is open)"));
        }
        let Some(tree) = procfs::pinned_ancestry(peer) else { return (None, gone()) };
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match session_in(&live, &tree, Some(uid)) {
            Some(s) => (Some(s.claims.clone()), format!("session {} (pid {}, uid {uid})", s.id, s.pid)),
            None => {
                if inside_other_uid(&live, &tree, uid) {
                    warning!(
                        "session claims refused: process {peer_pid} (real uid {uid}) is inside another uid's session"
                    );
                }
                (None, format!("process {peer_pid} (uid {uid}) is in no OIDC session"))
            }
        }
    }

    /// The session whose AWS credentials a peer may have: the nearest session
    /// in its ancestry whose uid is the peer's (effective) uid — or any, for root.
    pub fn for_credentials(&self, peer: &Peer) -> Option<u64> {
        let (peer_pid, peer_uid) = (peer.pid, peer.uid);
        self.reap();
        let Some(tree) = procfs::pinned_ancestry(peer) else {
            crate::log::limited_warning!(
                &format!("aws-gone:{peer_uid}"),
                "aws credentials refused: process {peer_pid} is gone or its pid was reused since it connected"
            );
            return None;
        };
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let found = session_in(&live, &tree, (peer_uid != 0).then_some(peer_uid));
        if found.is_none() && inside_other_uid(&live, &tree, peer_uid) {
            crate::log::limited_warning!(
                &format!("aws-other-uid:{peer_uid}"),
                "aws credentials refused: process {peer_pid} (uid {peer_uid}) is inside another uid's session"
            );
        }
        found.map(|s| s.id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s.id).collect()
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        self.reap();
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(n: usize) -> SessionClaims {
        SessionClaims {
            issuer: "https://idp".into(),
            sub: format!("s{n}"),
            account: format!("u{n}"),
            identity: format!("u{n}"),
            groups: vec![],
            idp_groups: vec![],
            jti: None,
            exp: 0,
            iat: 0,
            auth_time: None,
            acr: None,
            verified_at: 0,
        }
    }

    fn info(id: u64, uid: u32, pid: i32, pid_start: u64) -> SessionInfo {
        SessionInfo {
            id,
            uid,
            pid,
            pid_start,
            tty: String::new(),
            rhost: String::new(),
            opened: 0,
            claims: claims(id as usize),
            aws: None,
        }
    }

    /// The one rule for "the session of a process", for claims (real uid)
    /// and AWS credentials (effective uid; root: any).
    #[test]
    fn the_session_of_a_process_tree() {
        let live = [info(1, 1000, 50, 7), info(2, 2000, 60, 8)];
        // 99 (start 1) ← 60 (bob's session) ← 50 (alice's session) ← 1
        let tree = [(99, 1), (60, 8), (50, 7), (1, 0)];
        let id = |uid| session_in(&live, &tree, uid).map(|s| s.id);
        assert_eq!(id(Some(2000)), Some(2), "the nearest session of the uid");
        assert_eq!(id(Some(1000)), Some(1), "further up, for alice");
        assert_eq!(id(Some(3000)), None);
        assert_eq!(id(None), Some(2), "root: the nearest session, any uid");
        assert_eq!(session_in(&live, &[(99, 1), (60, 9), (1, 0)], Some(2000)).map(|s| s.id), None, "pid reused");
        assert_eq!(session_in(&live, &[(99, 1), (1, 0)], None).map(|s| s.id), None, "outside any session");
        assert!(inside_other_uid(&live, &tree, 3000) && !inside_other_uid(&live, &[(60, 8)], 2000));
    }

    #[test]
    fn pending_logins_are_capped_oldest_first() {
        let s = Sessions::new(Arc::new(crate::clock::SystemClock));
        let ids: Vec<String> = (0..MAX_PENDING + 5).map(|n| s.add_pending(claims(n), None).unwrap()).collect();
        let p = s.pending.lock().unwrap();
        assert_eq!(p.by_id.len(), MAX_PENDING);
        assert!(p.get(&ids[4], s.clock.mono()).is_none() && p.get(&ids[5], s.clock.mono()).is_some());
        assert!(p.get(&ids[MAX_PENDING + 4], s.clock.mono()).is_some());
        drop(p);
        assert_eq!(s.pending_account(&ids[MAX_PENDING + 4]).as_deref(), Some(format!("u{}", MAX_PENDING + 4).as_str()));
    }

    /// Issue 12 (5): the peer is pinned at accept: a process whose pid now
    /// names another process (it exited; the pid was reused) gets nothing.
    #[test]
    fn a_reused_pid_gets_no_claims_or_credentials() {
        let s = Sessions::new(Arc::new(crate::clock::SystemClock));
        let me = std::process::id() as i32;
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let id = s.add_pending(claims(1), None).unwrap();
        s.open(&id, uid, me, "", "").unwrap();
        let peer = |start| crate::server::Peer { uid, pid: me, start };
        assert!(s.claims_for(&peer(procfs::start_time(me))).0.is_some(), "the live process, pinned correctly");
        assert!(s.for_credentials(&peer(procfs::start_time(me))).is_some());
        let other = procfs::start_time(me).map(|t| t + 1);
        let (c, why) = s.claims_for(&peer(other));
        assert!(c.is_none() && why.contains("pid was reused"), "{why}");
        assert!(s.for_credentials(&peer(other)).is_none());
        // A real process that connected and exited: its pid no longer names it.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = crate::server::Peer { uid, pid: child.id() as i32, start: procfs::start_time(child.id() as i32) };
        child.wait().unwrap();
        assert!(s.claims_for(&gone).0.is_none());
    }
}
