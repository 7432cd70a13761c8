//! Live login sessions and their verified claims (in memory: a restart of
//! helperd ends claim reuse — sudo then asks for a fresh token, never more).
//!
//! A verified login is kept as "pending" under a random login id until the
//! PAM session opens (sshd authenticates in another process than the one that
//! opens the session; the id travels in the PAM environment). A session is
//! bound to the process that opened it and the account's uid; claims are only
//! given to a process that descends from that process *and* runs as that uid.

mod end;
mod grants;

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
/// identity (if any), and when it was verified (the clock's monotonic time);
/// a device login's refresh token (it stays in helperd) beside it.
type Pending = (SessionClaims, Option<Secret>, Duration);

/// Pending logins by id, and their ids in arrival order (expiry in O(1) per login).
#[derive(Default)]
struct PendingSet {
    by_id: HashMap<String, Pending>,
    grants: HashMap<String, crate::revalidate::Grant>,
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
            self.grants.remove(&old);
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

    fn remove(&mut self, id: &str, now: Duration) -> Option<(Pending, Option<crate::revalidate::Grant>)> {
        let grant = self.grants.remove(id);
        self.by_id.remove(id).filter(|p| young(p.2, now)).map(|p| (p, grant))
    }
}

pub struct Sessions {
    clock: Arc<dyn Clock>,
    pending: Mutex<PendingSet>,
    live: Mutex<Vec<SessionInfo>>,
    next_id: Mutex<u64>,
    /// Ended sessions whose processes got SIGHUP and get SIGKILL at `kill_at`.
    dying: Mutex<Vec<Dying>>,
    kill_after: Duration,
    /// Device-code sessions' refresh grants, by session id (`grants.rs`).
    grants: Mutex<HashMap<u64, grants::Kept>>,
    /// Sessions the IdP stopped vouching for, kept alive (`on_revoked = "keep"`):
    /// no claims, no AWS credentials.
    revoked: Mutex<std::collections::HashSet<u64>>,
}

/// An ended session between SIGHUP and SIGKILL.
struct Dying {
    id: u64,
    /// The opener first, then the processes signalled.
    procs: Vec<end::Proc>,
    kill_at: Duration,
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
    /// `kill_after`: between SIGHUP and SIGKILL when a session is ended.
    pub fn new(clock: Arc<dyn Clock>, kill_after: Duration) -> Sessions {
        Sessions {
            clock,
            pending: Mutex::default(),
            live: Mutex::default(),
            next_id: Mutex::default(),
            dying: Mutex::default(),
            kill_after,
            grants: Mutex::default(),
            revoked: Mutex::default(),
        }
    }

    #[cfg(test)]
    pub fn add_pending(&self, claims: SessionClaims, web_token: Option<Secret>) -> Option<String> {
        self.add_pending_with(claims, web_token, None)
    }

    /// [`Sessions::add_pending`], with a device login's refresh grant.
    pub fn add_pending_with(
        &self,
        claims: SessionClaims,
        web_token: Option<Secret>,
        grant: Option<crate::revalidate::Grant>,
    ) -> Option<String> {
        let id = crate::ids::random_id()?;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.mono();
        p.insert(id.clone(), (claims, web_token, now), now);
        if let Some(g) = grant {
            p.grants.insert(id.clone(), g);
        }
        Some(id)
    }

    pub fn pending_account(&self, login_id: &str) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(login_id, self.clock.mono())
            .map(|(c, _, _)| c.account.clone())
    }

    /// Bind a pending login to the session opened by `pid`: its id, claims
    /// and kept token. `ends_at` says when the session is ended for its
    /// token's expiry (from the claims' issuer and `exp`).
    pub fn open(
        &self,
        login_id: &str,
        uid: u32,
        pid: i32,
        tty: &str,
        rhost: &str,
        ends_at: impl Fn(&SessionClaims) -> Option<i64>,
    ) -> Result<(u64, SessionClaims, Option<Secret>), String> {
        let ((claims, web_token, _), grant) = self
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
        let ends_at = ends_at(&claims);
        info!(
            "session {id} opened: user={} uid={uid} pid={pid} tty={tty} rhost={rhost} issuer={} sub={} token expires in {}s{}",
            claims.account,
            claims.issuer,
            oidc_core::clean(&claims.sub),
            claims.exp - self.clock.now(),
            match ends_at {
                Some(t) => format!(", session ends in {}s", t - self.clock.now()),
                None => String::new(),
            }
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
            ends_at,
        };
        self.live.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        if let Some(g) = grant {
            self.keep_grant(id, g, &claims);
        }
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
        let n = before - live.len();
        drop(live);
        self.prune();
        n
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
        drop(live);
        self.prune();
    }

    /// Claims for the session the peer process belongs to. The peer is pinned
    /// by the start time taken at accept: if its pid now names another
    /// process (it exited, the pid was reused), nothing is given.
    pub fn claims_for(&self, peer: &Peer) -> (Option<SessionClaims>, String) {
        let (found, detail) = self.session_for(peer);
        (found.map(|(_, c)| c), detail)
    }

    /// The session (id and claims) the peer process belongs to, by the rule
    /// of [`Sessions::claims_for`], and how it was found or why none was.
    pub fn session_for(&self, peer: &Peer) -> (Option<(u64, SessionClaims)>, String) {
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
            Some(s) if self.is_revoked(s.id) => (None, format!("session {} was revoked at its IdP: no claims", s.id)),
            Some(s) => (Some((s.id, s.claims.clone())), format!("session {} (pid {}, uid {uid})", s.id, s.pid)),
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
        found.map(|s| s.id).filter(|id| !self.is_revoked(*id))
    }

    /// The session lives on `claims` from now on (a fresh token of the same
    /// identity), ended at `ends_at`. `Err` if it ended meanwhile.
    pub fn renew(&self, id: u64, claims: SessionClaims, ends_at: Option<i64>) -> Result<(), String> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let s = live.iter_mut().find(|s| s.id == id).ok_or("the session has ended")?;
        s.claims = claims;
        s.ends_at = ends_at;
        Ok(())
    }

    /// End every live session `which` picks: it is dropped at once (no more
    /// claims or AWS credentials), its processes get SIGHUP now and SIGKILL
    /// after `kill_after`. `why` is logged for each. The ids ended.
    pub fn end(&self, which: impl Fn(&SessionInfo) -> bool, why: impl Fn(&SessionInfo) -> String) -> Vec<u64> {
        let ended: Vec<SessionInfo> = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let (gone, kept) = std::mem::take(&mut *live).into_iter().partition(|s| which(s));
            *live = kept;
            gone
        };
        if !ended.is_empty() {
            self.prune();
        }
        let kill_at = self.clock.mono() + self.kill_after;
        let mut dying = self.dying.lock().unwrap_or_else(|e| e.into_inner());
        for s in &ended {
            let opener = (s.pid, s.pid_start);
            let procs = end::tree(&[opener]);
            let n = end::signal(&procs, nix::sys::signal::Signal::SIGHUP);
            warning!(
                "session {} ended: user={} uid={} pid={} issuer={} sub={}: {}; SIGHUP to {n} process(es), SIGKILL to \
                 what is left in {}s",
                s.id,
                s.claims.account,
                s.uid,
                s.pid,
                s.claims.issuer,
                oidc_core::clean(&s.claims.sub),
                why(s),
                self.kill_after.as_secs()
            );
            dying.push(Dying { id: s.id, procs: [vec![opener], procs].concat(), kill_at });
        }
        ended.iter().map(|s| s.id).collect()
    }

    /// Once a second: end the sessions whose deadline passed, SIGKILL what
    /// is left of sessions ended `kill_after` ago. The ids ended now.
    pub fn tick(&self) -> Vec<u64> {
        let now = self.clock.now();
        let ended = self.end(
            |s| s.ends_at.is_some_and(|t| t <= now),
            |s| {
                format!(
                    "its token expired {}s ago (sessions.on_expiry = \"end\", deadline {})",
                    now - s.claims.exp,
                    oidc_core::format_rfc3339(s.ends_at.unwrap_or(now))
                )
            },
        );
        let mono = self.clock.mono();
        let due: Vec<Dying> = {
            let mut dying = self.dying.lock().unwrap_or_else(|e| e.into_inner());
            let (due, wait) = std::mem::take(&mut *dying).into_iter().partition(|d| d.kill_at <= mono);
            *dying = wait;
            due
        };
        for d in due {
            let n = end::signal(&end::tree(&d.procs), nix::sys::signal::Signal::SIGKILL);
            if n > 0 {
                warning!("session {}: SIGKILL to {n} process(es) still running after SIGHUP", d.id);
            }
        }
        ended
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
            ends_at: None,
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

    /// Running, not a zombie, and still the same process.
    fn running((pid, start): end::Proc) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).unwrap_or("");
        procfs::start_time(pid) == Some(start) && state != "Z"
    }

    /// Issue 15 (1): with `on_expiry = "end"`, a session whose deadline passed
    /// is dropped at once (no claims, no AWS credentials) and the process tree
    /// it bound gets SIGHUP, then SIGKILL for what ignores it — and a session
    /// of the same uid whose token has not run out is untouched.
    #[test]
    fn an_expired_session_ends_its_tree_and_no_other() {
        let clock = crate::clock::FakeClock::at(1_000_000);
        let s = Sessions::new(clock.clone(), Duration::from_secs(5));
        let spawn = |script: &str| std::process::Command::new("sh").args(["-c", script]).spawn().unwrap();
        // a ignores SIGHUP, and so do its children: only SIGKILL ends them.
        let mut a = spawn("trap '' HUP; sleep 300 & sleep 300 & wait");
        let mut b = spawn("sleep 300 & wait");
        let root = |c: &std::process::Child| (c.id() as i32, procfs::start_time(c.id() as i32).unwrap());
        let (ra, rb) = (root(&a), root(&b));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while (end::tree(&[ra]).len() < 3 || end::tree(&[rb]).len() < 2) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let tree_a = end::tree(&[ra]);
        let tree_b = end::tree(&[rb]);
        assert_eq!((tree_a.len(), tree_b.len()), (3, 2), "{tree_a:?} {tree_b:?}");
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let open = |pid: i32, ends: Option<i64>| {
            let id = s.add_pending(claims(pid as usize), None).unwrap();
            s.open(&id, uid, pid, "", "", |_| ends).unwrap().0
        };
        let (ida, idb) = (open(ra.0, Some(1_000_010)), open(rb.0, None));
        assert_eq!(s.tick(), Vec::<u64>::new(), "not yet");
        clock.advance(Duration::from_secs(10));
        assert_eq!(s.tick(), vec![ida]);
        assert_eq!(s.ids(), vec![idb], "dropped at once");
        let me = crate::server::Peer { uid, pid: ra.0, start: Some(ra.1) };
        assert!(s.claims_for(&me).0.is_none() && s.for_credentials(&me).is_none());
        std::thread::sleep(Duration::from_millis(300));
        assert!(tree_a.iter().all(|p| running(*p)), "SIGHUP is ignored here");
        clock.advance(Duration::from_secs(5));
        s.tick();
        assert!(a.wait().unwrap().code().is_none(), "killed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tree_a.iter().any(|p| running(*p)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!tree_a.iter().any(|p| running(*p)), "the whole tree is gone");
        assert!(tree_b.iter().all(|p| running(*p)) && b.try_wait().unwrap().is_none(), "the other session lives");
        end::signal(&tree_b, nix::sys::signal::Signal::SIGKILL);
        b.wait().unwrap();
    }

    #[test]
    fn pending_logins_are_capped_oldest_first() {
        let s = Sessions::new(Arc::new(crate::clock::SystemClock), Duration::from_secs(5));
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
        let s = Sessions::new(Arc::new(crate::clock::SystemClock), Duration::from_secs(5));
        let me = std::process::id() as i32;
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let id = s.add_pending(claims(1), None).unwrap();
        s.open(&id, uid, me, "", "", |_| None).unwrap();
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
