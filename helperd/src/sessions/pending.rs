//! Verified logins waiting for their session (sshd authenticates in another
//! process than the one that opens the session): kept by a random login id,
//! capped, and dropped after `PENDING_TTL`.

use crate::log::warning;
use oidc_core::{Secret, SessionClaims};
use std::collections::HashMap;
use std::time::Duration;

/// A verified login not bound to a session within this time is dropped.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many verified logins wait for their session (sshd's default
/// MaxStartups lets 100 unauthenticated connections exist at once); beyond it
/// the oldest is dropped (its session would then open without claims, logged).
pub(super) const MAX_PENDING: usize = 1024;

/// A verified login waiting for its session: claims, the token kept for web
/// identity (if any), and when it was verified (the clock's monotonic time);
/// a device login's refresh token (it stays in helperd) beside it.
pub(super) type Pending = (SessionClaims, Option<Secret>, Duration);

/// Pending logins by id, and their ids in arrival order (expiry in O(1) per login).
#[derive(Default)]
pub(super) struct PendingSet {
    pub(super) by_id: HashMap<String, Pending>,
    pub(super) grants: HashMap<String, crate::revalidate::Grant>,
    order: std::collections::VecDeque<(Duration, String)>,
    /// Live logins dropped at the cap since the last warning, and when that was.
    dropped: u64,
    warned: Option<Duration>,
}

fn young(t: Duration, now: Duration) -> bool {
    now.saturating_sub(t) < PENDING_TTL
}

impl PendingSet {
    pub(super) fn insert(&mut self, id: String, p: Pending, now: Duration) {
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

    pub(super) fn get(&self, id: &str, now: Duration) -> Option<&Pending> {
        self.by_id.get(id).filter(|p| young(p.2, now))
    }

    pub(super) fn remove(&mut self, id: &str, now: Duration) -> Option<(Pending, Option<crate::revalidate::Grant>)> {
        let grant = self.grants.remove(id);
        self.by_id.remove(id).filter(|p| young(p.2, now)).map(|p| (p, grant))
    }
}
