//! A live session extended with a fresh token of the *same* identity, without
//! logging out — by `helperd renew` from inside it, or by helperd itself with
//! a token obtained by refresh (device-code sessions, `revalidate.rs`). Both
//! go through [`apply_token`]: the token is verified like a login's (issuer
//! rules, keys, times), used once, must name the session's issuer, `sub` and
//! login name, be newer than the session's token, and must not be locked or in
//! a denied group; what the login was admitted on must still hold (every host
//! group, the acr, a role account's rule, the account's holder). Renewal never
//! widens.

use crate::dispatch::Services;
use crate::log::{info, warning};
use crate::server::Peer;
use oidc_core::{clean, RefusalCode, Rejection, Response, Secret, SessionClaims};

/// A renewal's token must be issued at least this long after the session's.
const MIN_RENEWAL_SECS: i64 = 10;

/// Why a token did not renew a session.
#[derive(Debug)]
pub struct Refusal {
    pub code: RefusalCode,
    pub reason: String,
    /// Not the token's fault (keys or state unavailable): try again later.
    pub transient: bool,
}

fn no(code: RefusalCode, reason: String) -> Refusal {
    Refusal { code, reason, transient: matches!(code, RefusalCode::Replayed | RefusalCode::AccountsUnavailable) }
}

/// A session renewed: its claims and deadline from now on, what it was before.
pub struct Applied {
    pub claims: SessionClaims,
    pub ends_at: Option<i64>,
    pub old_exp: i64,
    /// Host groups the session had that the new token no longer gives.
    pub dropped: Vec<String>,
}

/// Renew session `id` (whose claims are `old`) with `token`, or say why not.
pub fn apply_token(svc: &Services, id: u64, old: &SessionClaims, token: &Secret) -> Result<Applied, Refusal> {
    let cfg = svc.keys.config();
    let now = svc.clock.now();
    let mut refresh = |iss: &str| match svc.keys.refresh_on_demand(iss, false) {
        Response::Refreshed { ok: true, detail, .. } => Ok(detail),
        Response::Refreshed { detail, .. } => Err(detail),
        other => Err(format!("unexpected {other:?}")),
    };
    let out = oidc_core::verify_token(cfg, token.expose(), now, &mut refresh);
    let v = match out.result {
        Ok(v) => v,
        Err(ref e) => {
            let mut r = no(RefusalCode::TokenRefused, format!("session {id}: the token is refused: {e}"));
            r.transient = matches!(e, Rejection::KeysUnavailable(_));
            return Err(r);
        }
    };
    let name = if v.username.is_empty() { &v.identity } else { &v.username };
    if v.issuer != old.issuer || v.sub != old.sub || *name != old.identity {
        let why = format!(
            "session {id} is {} sub {} ({}); the token is {} sub {} ({})",
            clean(&old.issuer),
            clean(&old.sub),
            clean(&old.identity),
            clean(&v.issuer),
            clean(&v.sub),
            clean(name)
        );
        return Err(no(RefusalCode::OtherIdentity, why));
    }
    let Some(icfg) = cfg.issuer(&v.issuer) else {
        return Err(no(RefusalCode::UntrustedIssuer, format!("{} is no longer configured", clean(&v.issuer))));
    };
    // Newer than the token the session lives on (each renewal uses an entry
    // of the replay cache: at most one per MIN_RENEWAL_SECS a session).
    if v.iat < old.iat.saturating_add(MIN_RENEWAL_SECS) || v.exp <= old.exp {
        let why = format!(
            "session {id}: the token (iat {}, exp {}) is not newer than the session's (iat {}, exp {}) by {MIN_RENEWAL_SECS}s",
            v.iat, v.exp, old.iat, old.exp
        );
        return Err(no(RefusalCode::TokenRefused, why));
    }
    // What the login was admitted on must still hold: every host group the
    // session has (a stack's require_group= was checked on them), its acr,
    // the role-account rule, and the account still the identity's.
    let gives = svc.accounts.role_groups(&v.issuer, &v.groups);
    let lost: Vec<String> = old.groups.iter().filter(|g| !gives.contains(g)).map(|g| clean(g)).collect();
    if !lost.is_empty() {
        let why = format!("session {id}: the token no longer gives host group(s) {}: log in again", lost.join(","));
        return Err(no(RefusalCode::TokenRefused, why));
    }
    if old.acr.is_some() && v.acr != old.acr {
        let why = format!("session {id}: acr {:?} is not the session's {:?}", v.acr, old.acr);
        return Err(no(RefusalCode::TokenRefused, clean(&why)));
    }
    if cfg.is_role_account(&old.account) {
        if let Err(r) = oidc_core::account_for(cfg, &v, &old.account, &gives) {
            return Err(no(RefusalCode::TokenRefused, format!("session {id}: {r}")));
        }
    } else if let Some(holder) = svc.accounts.holder_of(&old.account) {
        if holder != format!("{} {}", v.issuer, clean(&v.identity)) {
            let why = format!("session {id}: {} is now held by {holder}", clean(&old.account));
            return Err(no(RefusalCode::OtherIdentity, why));
        }
    }
    let probes = oidc_core::deny_probes(icfg, &v.all_groups, v.groups_incomplete);
    let mut claims = SessionClaims::from_verified(&v, &old.account, old.groups.clone(), probes);
    // When the user last proved themselves here stays the login's: a token
    // minted without them (a refresh) must not reset sudo's reuse_max_age.
    claims.verified_at = old.verified_at;
    if let Some(lock) = svc.locks.lock_for(&claims) {
        return Err(no(RefusalCode::Locked, format!("session {id}: {} is locked by {}", lock.target, lock.by)));
    }
    if let Err(r) = oidc_core::check_groups(&claims.groups, &claims.idp_groups, &cfg.policy, &[]) {
        return Err(no(RefusalCode::TokenRefused, format!("session {id}: {r}")));
    }
    let replay_id = oidc_core::replay_id(token.expose(), v.jti.as_deref());
    if let Err(why) = svc.replay.reserve(&v.issuer, &replay_id, cfg.accepted_until(&v.issuer, v.exp), now) {
        return Err(no(RefusalCode::Replayed, why));
    }
    if let Err(why) = svc.replay.commit(&v.issuer, &replay_id) {
        svc.replay.release(&v.issuer, &replay_id);
        return Err(no(RefusalCode::AccountsUnavailable, why));
    }
    let ends_at = match svc.sessions.renew(id, claims.clone(), cfg.session_ends_at(&claims.issuer, claims.exp)) {
        Ok(t) => t,
        Err(why) => return Err(no(RefusalCode::NoSession, why)),
    };
    // A role account's sessions get AWS credentials only if its rules opt in (as at open).
    let aws_allowed = cfg.role_switch(&claims.account, |r| r.aws_credentials) != Some(false);
    svc.aws.renew(id, &claims, Some(token.clone()), aws_allowed);
    let dropped = old.groups.iter().filter(|g| !claims.groups.contains(g)).cloned().collect();
    Ok(Applied { claims, ends_at, old_exp: old.exp, dropped })
}

fn refuse(peer: &Peer, code: RefusalCode, reason: String) -> Response {
    warning!("session renewal refused for uid={} pid={} code={}: {reason}", peer.uid, peer.pid, code.as_str());
    Response::Refused { code, reason }
}

/// Renew the peer's session with `token` (`helperd renew`).
pub fn renew(svc: &Services, peer: &Peer, token: &Secret) -> Response {
    let (found, detail) = svc.sessions.session_for(peer);
    let Some((id, old)) = found else { return refuse(peer, RefusalCode::NoSession, detail) };
    let a = match apply_token(svc, id, &old, token) {
        Ok(a) => a,
        Err(r) => return refuse(peer, r.code, r.reason),
    };
    let claims = &a.claims;
    let until = oidc_core::format_rfc3339(claims.exp);
    let detail = if a.dropped.is_empty() {
        format!("session {id} renewed until {until}")
    } else {
        let dropped: Vec<String> = a.dropped.iter().map(|g| clean(g)).collect();
        format!("session {id} renewed until {until}; groups no longer given: {}", dropped.join(","))
    };
    info!(
        "session {id} renewed: user={} uid={} pid={} issuer={} sub={} token exp {until} (was {}){}",
        clean(&claims.account),
        peer.uid,
        peer.pid,
        clean(&claims.issuer),
        clean(&claims.sub),
        oidc_core::format_rfc3339(a.old_exp),
        if a.dropped.is_empty() { String::new() } else { format!("; dropped groups {:?}", a.dropped) }
    );
    Response::Renewed { id, exp: claims.exp, ends_at: a.ends_at, detail }
}
