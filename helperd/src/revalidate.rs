//! Revalidation of device-code sessions (issuers with `device_refresh = true`).
//!
//! The refresh token the IdP returned to helperd's device flow never leaves
//! helperd: it is kept (wiped on drop, `Debug` redacted) under the replay id of
//! the ID token handed to the module, picked up by the `Login` that reports
//! that very token (same issuer and `sub`), carried with the pending login to
//! its session, and dropped when the session closes or ends.
//!
//! A background step ([`step`], every second, on its own thread) refreshes
//! each session's grant before its token expires: at 80 % of the token's
//! lifetime or 60 s before `exp`, whichever is later, and never sooner than
//! [`MIN_INTERVAL`] after the previous attempt. The new ID token is verified
//! like a login's and must be the same identity ([`crate::renew::apply_token`]):
//! the session is renewed (claims, `exp`, deadline, AWS) and a rotated refresh
//! token kept. A refusal — the IdP's OAuth error (`invalid_grant`: the user is
//! disabled or the grant revoked), a token of another identity, a token that
//! does not verify, a locked identity — ends the session (or, with
//! `[sessions] on_revoked = "keep"`, stops its claims and AWS credentials and
//! leaves its processes). Network errors, 5xx and 429 are retried with backoff
//! (5 s doubling, at most 5 minutes) for as long as the session lives; its
//! token's own expiry still applies (`on_expiry`).

use crate::dispatch::Services;
use crate::log::{info, warning};
use oidc_core::{clean, OnRevoked, RefusalCode, Secret, SessionClaims};
use serde_json::Value;
use std::time::Duration;

/// Never refresh a grant sooner than this after the previous attempt.
pub const MIN_INTERVAL: i64 = 5;
/// Transient failures back off from 5 s, doubling, to at most this.
pub const MAX_BACKOFF: i64 = 300;
/// A device flow's refresh token waits at most this long for its login.
pub const UNCLAIMED_TTL: Duration = Duration::from_secs(600);

/// A refresh token and where to use it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub issuer: String,
    /// The (unverified) `sub` of the ID token it came with: the login that
    /// claims it must be that identity's.
    pub sub: String,
    pub token_endpoint: String,
    pub client_id: String,
    pub refresh_token: Secret,
}

/// When a session living on `claims` is refreshed next (unix seconds).
pub fn due_at(claims: &SessionClaims, now: i64) -> i64 {
    let iat = if claims.iat > 0 && claims.iat <= claims.exp { claims.iat } else { claims.verified_at.min(claims.exp) };
    let lifetime = claims.exp.saturating_sub(iat).max(0);
    let at = (iat + lifetime * 8 / 10).max(claims.exp - 60);
    at.max(now + MIN_INTERVAL)
}

/// The wait after `failures` transient failures in a row (1 → 5 s).
pub fn backoff(failures: u32) -> i64 {
    (5_i64 << failures.saturating_sub(1).min(10)).min(MAX_BACKOFF)
}

/// What to do with a session's grant after an attempt.
#[derive(Debug)]
pub enum Next {
    /// Refreshed: keep the grant (with the rotated refresh token, if any) until `at`.
    Renewed { refresh_token: Option<Secret>, at: i64 },
    /// A transient failure: try again at `at`.
    Retry { at: i64 },
    /// No more refreshing (revoked, session gone, nothing to refresh with).
    Drop,
}

/// Refresh every session whose grant is due. Runs on its own thread: the
/// calls to the IdP are made with no lock held, one at a time, each bounded
/// by `helperd.fetch_timeout_secs`.
pub fn step(svc: &Services) {
    let now = svc.clock.now();
    for (id, old, grant, failures) in svc.sessions.due_grants(now) {
        let next = refresh(svc, id, &old, &grant, failures);
        svc.sessions.grant_done(id, next);
    }
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// One refresh of session `id`'s grant.
fn refresh(svc: &Services, id: u64, old: &SessionClaims, g: &Grant, failures: u32) -> Next {
    let now = svc.clock.now();
    let retry = |why: String| {
        let wait = backoff(failures + 1);
        warning!(
            "session {id} revalidation: {why}; retrying in {wait}s (token exp {})",
            oidc_core::format_rfc3339(old.exp)
        );
        Next::Retry { at: now + wait }
    };
    let ep = &g.token_endpoint;
    let auth = crate::client_auth::ClientAuth::load(svc.keys.config(), &g.issuer, crate::client_auth::Client::Device)
        .and_then(|a| a.fields(&g.client_id, ep, now));
    let fields = match auth {
        Ok(f) => f,
        Err(e) => return retry(e),
    };
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", g.refresh_token.expose()),
        ("client_id", g.client_id.as_str()),
    ];
    let form = crate::client_auth::with_auth(&form, &fields);
    let (status, body) = match svc.device.http().post_form(ep, &form) {
        Ok(x) => x,
        Err(e) => return retry(e),
    };
    let v: Option<Value> = serde_json::from_slice(&body).ok();
    if status >= 500 || status == 429 {
        return retry(format!("{ep}: HTTP {status}"));
    }
    let Some(v) = v else { return retry(format!("{ep}: HTTP {status}: not JSON")) };
    if status != 200 {
        let err = str_field(&v, "error").unwrap_or_else(|| format!("HTTP {status} without an error code"));
        let desc = str_field(&v, "error_description").map(|d| format!(" ({})", clean(&d))).unwrap_or_default();
        return revoked(svc, id, old, &format!("the IdP refused the refresh: {}{desc}", clean(&err)));
    }
    let Some(id_token) = str_field(&v, "id_token").map(Secret::new) else {
        warning!(
            "session {id} revalidation stopped: the IdP's refresh answer has no id_token; the session lives to its \
             token's exp {}",
            oidc_core::format_rfc3339(old.exp)
        );
        return Next::Drop;
    };
    let rotated = str_field(&v, "refresh_token").map(Secret::new);
    match crate::renew::apply_token(svc, id, old, &id_token) {
        Ok(a) => {
            info!(
                "session {id} revalidated: user={} issuer={} sub={} token exp {} (was {}){}",
                clean(&a.claims.account),
                clean(&a.claims.issuer),
                clean(&a.claims.sub),
                oidc_core::format_rfc3339(a.claims.exp),
                oidc_core::format_rfc3339(a.old_exp),
                if a.dropped.is_empty() { String::new() } else { format!("; dropped groups {:?}", a.dropped) }
            );
            Next::Renewed { refresh_token: rotated, at: due_at(&a.claims, now) }
        }
        Err(r) if r.code == RefusalCode::NoSession => Next::Drop,
        Err(r) if r.transient => retry(format!("{} ({})", r.reason, r.code.as_str())),
        Err(r) => revoked(svc, id, old, &format!("the refreshed token is refused ({}): {}", r.code.as_str(), r.reason)),
    }
}

/// The IdP no longer vouches for session `id`: end it, or (`on_revoked =
/// "keep"`) stop its claims and credentials.
fn revoked(svc: &Services, id: u64, old: &SessionClaims, why: &str) -> Next {
    match svc.keys.config().sessions.on_revoked {
        OnRevoked::End => {
            let ended = svc.sessions.end(|s| s.id == id, |_| format!("revalidation failed: {why}"));
            if !ended.is_empty() {
                svc.aws.forget(&svc.sessions.ids());
            }
        }
        OnRevoked::Keep => {
            svc.sessions.revoke(id);
            let live: Vec<u64> = svc.sessions.ids().into_iter().filter(|s| *s != id).collect();
            svc.aws.forget(&live);
            warning!(
                "session {id} revoked: user={} issuer={} sub={}: revalidation failed: {why}; claims and AWS \
                 credentials stopped, processes kept (sessions.on_revoked = \"keep\")",
                clean(&old.account),
                clean(&old.issuer),
                clean(&old.sub)
            );
        }
    }
    Next::Drop
}

// Through dispatch, over a scripted IdP: dispatch/tests/revalidate.rs.
#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: i64) -> SessionClaims {
        SessionClaims {
            issuer: "https://idp".into(),
            sub: "s".into(),
            account: "a".into(),
            identity: "a".into(),
            groups: vec![],
            idp_groups: vec![],
            jti: None,
            exp,
            iat,
            auth_time: None,
            acr: None,
            verified_at: iat,
            identity_id: String::new(),
            sid: None,
        }
    }

    /// 80 % of the lifetime or 60 s before exp, whichever is later; never
    /// sooner than MIN_INTERVAL from now.
    #[test]
    fn refresh_is_due_at_the_later_of_80_percent_and_exp_minus_60() {
        assert_eq!(due_at(&claims(1000, 1600), 1000), 1540, "10 min: exp - 60");
        assert_eq!(due_at(&claims(1000, 4600), 1000), 4540, "1 h: exp - 60");
        assert_eq!(due_at(&claims(1000, 1030), 1000), 1024, "30 s: 80 %");
        assert_eq!(due_at(&claims(1000, 1250), 1000), 1200, "250 s: 80 % (exp - 60 is 1190)");
        assert_eq!(due_at(&claims(1000, 1002), 1000), 1005, "never sooner than MIN_INTERVAL");
        assert_eq!(due_at(&claims(0, 1600), 1000), 1540, "no iat: from when it was verified");
        assert_eq!(due_at(&claims(1000, 1600), 2000), 2005, "already expired: soon");
        assert_eq!((1..=8).map(backoff).collect::<Vec<_>>(), vec![5, 10, 20, 40, 80, 160, 300, 300]);
    }
}
