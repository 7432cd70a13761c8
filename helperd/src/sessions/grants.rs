//! The refresh grants of device-code sessions (see `revalidate.rs`): kept by
//! session id while the session is live, handed out one at a time when due
//! (so two refreshes of one grant never overlap), dropped — and so wiped —
//! when the session closes, ends or is revoked.

use super::Sessions;
use crate::revalidate::{Grant, Next};
use oidc_core::SessionClaims;

/// A session's grant and when it is refreshed next.
pub struct Kept {
    grant: Grant,
    /// Unix seconds; `i64::MAX` while a refresh is in flight.
    next_at: i64,
    /// Transient failures in a row.
    failures: u32,
}

impl Sessions {
    /// Session `id` (living on `claims`) is revalidated with `grant`.
    pub(super) fn keep_grant(&self, id: u64, grant: Grant, claims: &SessionClaims) {
        let next_at = crate::revalidate::due_at(claims, self.clock.now());
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Kept { grant, next_at, failures: 0 });
    }

    /// Does session `id` keep a refresh grant?
    #[cfg(test)]
    pub fn has_grant(&self, id: u64) -> bool {
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id)
    }

    /// The grants due at `now`, with their session's claims and failures so
    /// far; each is marked in flight until [`Sessions::grant_done`].
    pub fn due_grants(&self, now: i64) -> Vec<(u64, SessionClaims, Grant, u32)> {
        let live: Vec<(u64, SessionClaims)> = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.iter().map(|s| (s.id, s.claims.clone())).collect()
        };
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = vec![];
        for (id, claims) in live {
            if let Some(k) = grants.get_mut(&id).filter(|k| k.next_at <= now) {
                k.next_at = i64::MAX;
                due.push((id, claims, k.grant.clone(), k.failures));
            }
        }
        due
    }

    /// The outcome of refreshing session `id`'s grant.
    pub fn grant_done(&self, id: u64, next: Next) {
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        match next {
            Next::Drop => {
                grants.remove(&id);
            }
            Next::Retry { at } => {
                if let Some(k) = grants.get_mut(&id) {
                    (k.next_at, k.failures) = (at, k.failures.saturating_add(1));
                }
            }
            Next::Renewed { refresh_token, at } => {
                if let Some(k) = grants.get_mut(&id) {
                    if let Some(r) = refresh_token {
                        k.grant.refresh_token = r;
                    }
                    (k.next_at, k.failures) = (at, 0);
                }
            }
        }
        drop(grants);
        // The session may have ended while its refresh was in flight.
        self.prune();
    }

    /// Session `id` lives on without claims or credentials (`on_revoked = "keep"`).
    pub fn revoke(&self, id: u64) {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    pub(super) fn is_revoked(&self, id: u64) -> bool {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }

    /// Drop the grants (wiping their refresh tokens) and revocation marks of
    /// sessions no longer live.
    pub(super) fn prune(&self) {
        let ids = self.ids();
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| ids.contains(id));
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).retain(|id| ids.contains(id));
    }
}

/// For tests: the refresh token a session keeps, if any.
#[cfg(test)]
impl Sessions {
    pub fn refresh_token_of(&self, id: u64) -> Option<oidc_core::Secret> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).get(&id).map(|k| k.grant.refresh_token.clone())
    }
}
