//! Live login sessions and their verified claims, kept across restarts of
//! helperd in `state_dir/sessions.json` (no secrets: kept tokens and AWS
//! credentials are not written).
//!
//! A verified login is kept as "pending" under a random login id until the
//! PAM session opens (sshd authenticates in another process than the one that
//! opens the session; the id travels in the PAM environment). A session is
//! bound to the process that opened it and the account's uid; claims are only
//! given to a process that descends from that process *and* runs as that uid.

mod end;
mod grants;
mod pending;

use pending::PendingSet;

use crate::clock::Clock;
use crate::log::{info, warning};
use crate::procfs;
use crate::server::Peer;
use oidc_core::Secret;
use oidc_core::{SessionClaims, SessionInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Sessions {
    clock: Arc<dyn Clock>,
    pending: Mutex<PendingSet>,
    live: Mutex<Vec<SessionInfo>>,
    /// The processes of each live session (locked after `live`, never before).
    tracked: Mutex<HashMap<u64, end::Tracked>>,
    next_id: Mutex<u64>,
    /// Ended sessions whose processes got SIGHUP and get SIGKILL at `kill_at`.
    dying: Mutex<Vec<Dying>>,
    kill_after: Duration,
    /// Where the live sessions are kept across restarts of helperd (no secrets).
    file: Option<std::path::PathBuf>,
    /// Device-code sessions' refresh grants, by session id (`grants.rs`).
    grants: Mutex<HashMap<u64, grants::Kept>>,
    /// Sessions the IdP stopped vouching for, kept alive (`on_revoked = "keep"`):
    /// no claims, no AWS credentials.
    revoked: Mutex<std::collections::HashSet<u64>>,
}

/// `state_dir/sessions.json`: the live sessions, so that a restart of helperd
/// (a package upgrade) neither forgets to end them nor lets a lock miss them.
pub const FILE: &str = "sessions.json";

/// The file: this boot's live sessions with the processes followed, and the
/// last id given (ids are never reused).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Saved {
    boot_id: String,
    next_id: u64,
    sessions: Vec<(SessionInfo, end::Tracked)>,
    /// Ended sessions still owed their SIGKILL: (id, processes, scope).
    #[serde(default)]
    dying: Vec<(u64, Vec<end::Proc>, Option<std::path::PathBuf>)>,
}

/// This boot (a pid and start time name a process only within one boot).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string()
}

/// An ended session between SIGHUP and SIGKILL.
struct Dying {
    id: u64,
    /// The opener, then the processes signalled.
    procs: Vec<end::Proc>,
    scope: Option<std::path::PathBuf>,
    kill_at: Duration,
}

/// The one rule for "the session of a process": the nearest process of its
/// (pinned) ancestry that opened a live session — that very process, by pid
/// and start time — whose uid is `uid`; any uid when `uid` is `None` (root).
fn session_in<'a>(live: &'a [SessionInfo], tree: &[(i32, u64)], uid: Option<u32>) -> Option<&'a SessionInfo> {
    tree.iter().find_map(|(pid, start)| {
        live.iter().find(|s| !s.detached && s.pid == *pid && s.pid_start == *start && uid.is_none_or(|u| s.uid == u))
    })
}

/// Is a process of `tree` the opener of another uid's session (worth a warning)?
fn inside_other_uid(live: &[SessionInfo], tree: &[(i32, u64)], uid: u32) -> bool {
    live.iter().any(|s| !s.detached && s.uid != uid && tree.iter().any(|(p, _)| *p == s.pid))
}

impl Sessions {
    /// `kill_after`: between SIGHUP and SIGKILL when a session is ended.
    pub fn new(clock: Arc<dyn Clock>, kill_after: Duration) -> Sessions {
        Sessions {
            clock,
            pending: Mutex::default(),
            live: Mutex::default(),
            tracked: Mutex::default(),
            next_id: Mutex::default(),
            dying: Mutex::default(),
            kill_after,
            file: None,
            grants: Mutex::default(),
            revoked: Mutex::default(),
        }
    }

    /// Keep the live sessions in `file`, taking in those it holds whose
    /// opening process still runs (same pid and start time). Their kept
    /// web-identity tokens and AWS credentials are not kept: those sessions
    /// get no AWS credentials until renewed or logged in again.
    pub fn persisted(mut self, file: std::path::PathBuf) -> Sessions {
        let saved: Saved = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                warning!("{}: {e}; live sessions from before this start are not known", file.display());
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        let this_boot = saved.boot_id == boot_id();
        // Sessions ended before the restart still get their SIGKILL, at the next tick.
        let due = self.clock.mono();
        *self.dying.get_mut().unwrap_or_else(|e| e.into_inner()) = saved
            .dying
            .into_iter()
            .filter(|_| this_boot)
            .map(|(id, procs, scope)| Dying { id, procs, scope, kill_at: due })
            .collect();
        let (mut live, mut tracked) = (vec![], HashMap::new());
        for (s, mut t) in saved.sessions.into_iter().filter(|_| this_boot) {
            let opener_runs = procfs::start_time(s.pid) == Some(s.pid_start);
            t.refresh((s.pid, s.pid_start));
            if opener_runs || !t.seen.is_empty() {
                tracked.insert(s.id, t);
                live.push(SessionInfo { detached: s.detached || !opener_runs, ..s });
            }
        }
        if !live.is_empty() {
            info!("{} live session(s) taken in from {}", live.len(), file.display());
        }
        *self.next_id.get_mut().unwrap_or_else(|e| e.into_inner()) =
            saved.next_id.max(live.iter().map(|s| s.id).max().unwrap_or(0));
        *self.tracked.get_mut().unwrap_or_else(|e| e.into_inner()) = tracked;
        self.file = Some(file);
        self.save(&live);
        *self.live.get_mut().unwrap_or_else(|e| e.into_inner()) = live;
        self
    }

    /// Write the live sessions (called with the `live` lock held, so writes keep their order).
    fn save(&self, live: &[SessionInfo]) {
        let Some(file) = &self.file else { return };
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let saved = Saved {
            boot_id: boot_id(),
            next_id: *self.next_id.lock().unwrap_or_else(|e| e.into_inner()),
            sessions: live.iter().map(|s| (s.clone(), tracked.get(&s.id).cloned().unwrap_or_default())).collect(),
            dying: self
                .dying
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|d| (d.id, d.procs.clone(), d.scope.clone()))
                .collect(),
        };
        let r = serde_json::to_vec(&saved)
            .map_err(|e| e.to_string())
            .and_then(|b| crate::atomic::replace(file, &b, 0o600).map_err(|e| e.to_string()));
        if let Err(e) = r {
            crate::log::limited_warning!("sessions-file", "{}: {e}", file.display());
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
        self.pending_claims(login_id).map(|c| c.account)
    }

    /// The claims a pending login will open its session with.
    pub fn pending_claims(&self, login_id: &str) -> Option<SessionClaims> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(login_id, self.clock.mono())
            .map(|(c, _, _)| c.clone())
    }

    /// Forget the pending logins `which` picks (a lock: they must not open a session).
    pub fn drop_pending(&self, which: impl Fn(&SessionClaims) -> bool) -> usize {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<String> = p.by_id.iter().filter(|(_, (c, _, _))| which(c)).map(|(id, _)| id.clone()).collect();
        for id in &ids {
            p.by_id.remove(id);
            p.grants.remove(id);
        }
        ids.len()
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
            detached: false,
        };
        let tracked = end::Tracked::at_open((pid, pid_start));
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        self.tracked.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tracked);
        live.push(s);
        self.save(&live);
        if let Some(g) = grant {
            self.keep_grant(id, g, &claims);
        }
        Ok((id, claims, web_token))
    }

    /// `pam_close_session` of the process that opened sessions.
    pub fn close(&self, pid: i32) -> usize {
        self.detach(|s| s.pid == pid, "closed")
    }

    /// The sessions `which` picks no longer give claims or credentials; those
    /// whose processes all ended are dropped, the others are followed
    /// (detached) until they end, so a deadline or a lock still reaches them.
    fn detach(&self, which: impl Fn(&SessionInfo) -> bool, how: &str) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let picked: Vec<u64> = live.iter().filter(|s| !s.detached && which(s)).map(|s| s.id).collect();
        if picked.is_empty() {
            return 0;
        }
        let all = end::processes();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        live.retain_mut(|s| {
            if !picked.contains(&s.id) {
                return true;
            }
            let t = tracked.entry(s.id).or_default();
            t.refresh_in(&all, (s.pid, s.pid_start));
            if t.seen.is_empty() {
                info!("session {} {how}: user={} pid={}", s.id, s.claims.account, s.pid);
                tracked.remove(&s.id);
                return false;
            }
            info!(
                "session {} {how}: user={} pid={}; {} process(es) it started still run: followed until they end \
                 (its deadline and locks still apply)",
                s.id,
                s.claims.account,
                s.pid,
                t.seen.len()
            );
            s.detached = true;
            true
        });
        drop(tracked);
        self.save(&live);
        drop(live);
        // Closed: a device session's refresh token is wiped (it no longer vouches for anyone here).
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        picked.iter().for_each(|id| drop(grants.remove(id)));
        drop(grants);
        self.prune();
        picked.len()
    }

    /// Sessions whose opening process is gone (or whose pid was reused) are
    /// detached, or dropped if nothing of them runs.
    pub fn reap(&self) {
        let gone = |s: &SessionInfo| procfs::start_time(s.pid) != Some(s.pid_start);
        if self.live.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|s| !s.detached && gone(s)) {
            self.detach(gone, "ended: its opening process is gone");
        }
    }

    /// Once a second: look at every session's processes again; drop detached
    /// sessions of which nothing runs.
    fn follow(&self) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.is_empty() {
            return;
        }
        let all = end::processes();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        live.retain(|s| {
            let t = tracked.entry(s.id).or_default();
            changed |= t.refresh_in(&all, (s.pid, s.pid_start));
            let keep = !s.detached || !t.seen.is_empty();
            if !keep {
                info!("session {} (detached) ended: the last of its processes is gone", s.id);
                tracked.remove(&s.id);
                changed = true;
            }
            keep
        });
        drop(tracked);
        if changed {
            self.save(&live);
        }
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
    /// identity), ended at `ends_at` (the config's rule). A session its stack
    /// asked to end (`end_at_expiry`) keeps ending, as long after the new
    /// `exp` as it would have after the old. The session's deadline now;
    /// `Err` if it ended meanwhile.
    pub fn renew(&self, id: u64, claims: SessionClaims, ends_at: Option<i64>) -> Result<Option<i64>, String> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let s = live.iter_mut().find(|s| s.id == id).ok_or("the session has ended")?;
        let grace = s.ends_at.map(|t| t.saturating_sub(s.claims.exp));
        s.ends_at = ends_at.or(grace.map(|g| claims.exp.saturating_add(g)));
        s.claims = claims;
        let now_ends = s.ends_at;
        self.save(&live);
        Ok(now_ends)
    }

    /// End every live session `which` picks: it is dropped at once (no more
    /// claims or AWS credentials), its processes get SIGHUP now and SIGKILL
    /// after `kill_after`. `why` is logged for each. The ids ended.
    pub fn end(&self, which: impl Fn(&SessionInfo) -> bool, why: impl Fn(&SessionInfo) -> String) -> Vec<u64> {
        let ended: Vec<(SessionInfo, end::Tracked)> = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let (gone, kept): (Vec<SessionInfo>, Vec<SessionInfo>) =
                std::mem::take(&mut *live).into_iter().partition(|s| which(s));
            *live = kept;
            let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<(SessionInfo, end::Tracked)> =
                gone.into_iter().map(|s| (tracked.remove(&s.id).unwrap_or_default(), s)).map(|(t, s)| (s, t)).collect();
            drop(tracked);
            if !gone.is_empty() {
                self.save(&live);
            }
            gone
        };
        if !ended.is_empty() {
            self.prune();
        }
        let kill_at = self.clock.mono() + self.kill_after;
        let mut dying = self.dying.lock().unwrap_or_else(|e| e.into_inner());
        for (s, t) in &ended {
            let opener = (s.pid, s.pid_start);
            let procs = end::tree(&t.roots(opener), t.scope.as_deref());
            // Not the opener yet: sshd's monitor, seeing its child end, closes
            // the session as on a logout (wtmp, pam_close_session).
            let mut others: Vec<end::Proc> = procs.iter().copied().filter(|p| *p != opener).collect();
            if others.is_empty() {
                others = procs.clone(); // the opener alone
            }
            let n = end::signal(&others, nix::sys::signal::Signal::SIGHUP);
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
            dying.push(Dying { id: s.id, procs: [vec![opener], procs].concat(), scope: t.scope.clone(), kill_at });
        }
        drop(dying);
        if !ended.is_empty() {
            // The SIGKILL still owed survives a restart (lock order: live, then dying).
            self.save(&self.live.lock().unwrap_or_else(|e| e.into_inner()));
        }
        ended.iter().map(|(s, _)| s.id).collect()
    }

    /// Once a second: end the sessions whose deadline passed, SIGKILL what
    /// is left of sessions ended `kill_after` ago. The ids ended now.
    pub fn tick(&self) -> Vec<u64> {
        self.follow();
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
        let killed = !due.is_empty();
        for d in due {
            let n = end::signal(&end::tree(&d.procs, d.scope.as_deref()), nix::sys::signal::Signal::SIGKILL);
            if n > 0 {
                warning!("session {}: SIGKILL to {n} process(es) still running after SIGHUP", d.id);
            }
        }
        if killed {
            self.save(&self.live.lock().unwrap_or_else(|e| e.into_inner()));
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
mod tests;
