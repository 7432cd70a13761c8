//! `helperd renew`: a live session extended with a fresh token of the *same*
//! identity, from inside it, without logging out. The peer's session is found
//! as for sudo's claim reuse (its process tree and real uid); the token is
//! verified like a login's (issuer rules, keys, times), used once, must name
//! the session's issuer, `sub` and login name, and must not be locked or in a
//! denied group. Renewal never widens: the session keeps only the host groups
//! it had that the new token still gives.

use crate::dispatch::Services;
use crate::log::{info, warning};
use crate::server::Peer;
use oidc_core::{clean, RefusalCode, Response, Secret, SessionClaims};

fn refuse(peer: &Peer, code: RefusalCode, reason: String) -> Response {
    warning!("session renewal refused for uid={} pid={} code={}: {reason}", peer.uid, peer.pid, code.as_str());
    Response::Refused { code, reason }
}

/// Renew the peer's session with `token`.
pub fn renew(svc: &Services, peer: &Peer, token: &Secret) -> Response {
    let (found, detail) = svc.sessions.session_for(peer);
    let Some((id, old)) = found else { return refuse(peer, RefusalCode::NoSession, detail) };
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
            let why = format!("session {id}: the token is refused: {e}");
            return refuse(peer, RefusalCode::TokenRefused, why);
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
        return refuse(peer, RefusalCode::OtherIdentity, why);
    }
    let Some(icfg) = cfg.issuer(&v.issuer) else {
        return refuse(peer, RefusalCode::UntrustedIssuer, format!("{} is no longer configured", clean(&v.issuer)));
    };
    // Only host groups the session had and the new token still gives.
    let gives = svc.accounts.role_groups(&v.issuer, &v.groups);
    let groups: Vec<String> = old.groups.iter().filter(|g| gives.contains(g)).cloned().collect();
    let probes = oidc_core::deny_probes(icfg, &v.all_groups, v.groups_incomplete);
    let mut claims = SessionClaims::from_verified(&v, &old.account, groups, probes);
    claims.verified_at = now;
    if let Some(lock) = svc.locks.lock_for(&claims) {
        return refuse(peer, RefusalCode::Locked, format!("session {id}: {} is locked by {}", lock.target, lock.by));
    }
    if let Err(r) = oidc_core::check_groups(&claims.groups, &claims.idp_groups, &cfg.policy, &[]) {
        return refuse(peer, RefusalCode::TokenRefused, format!("session {id}: {r}"));
    }
    let replay_id = oidc_core::replay_id(token.expose(), v.jti.as_deref());
    if let Err(why) = svc.replay.reserve(&v.issuer, &replay_id, cfg.accepted_until(&v.issuer, v.exp), now) {
        return refuse(peer, RefusalCode::Replayed, why);
    }
    if let Err(why) = svc.replay.commit() {
        svc.replay.release(&v.issuer, &replay_id);
        return refuse(peer, RefusalCode::AccountsUnavailable, why);
    }
    let ends_at = match svc.sessions.renew(id, claims.clone(), cfg.session_ends_at(&claims.issuer, claims.exp)) {
        Ok(t) => t,
        Err(why) => return refuse(peer, RefusalCode::NoSession, why),
    };
    svc.aws.renew(id, &claims, Some(token.clone()));
    let dropped: Vec<&String> = old.groups.iter().filter(|g| !claims.groups.contains(g)).collect();
    let detail = if dropped.is_empty() {
        format!("session {id} renewed until {}", oidc_core::format_rfc3339(claims.exp))
    } else {
        format!(
            "session {id} renewed until {}; groups no longer given: {}",
            oidc_core::format_rfc3339(claims.exp),
            dropped.iter().map(|g| clean(g)).collect::<Vec<_>>().join(",")
        )
    };
    info!(
        "session {id} renewed: user={} uid={} pid={} issuer={} sub={} token exp {} (was {}){}",
        clean(&claims.account),
        peer.uid,
        peer.pid,
        clean(&claims.issuer),
        clean(&claims.sub),
        oidc_core::format_rfc3339(claims.exp),
        oidc_core::format_rfc3339(old.exp),
        if dropped.is_empty() { String::new() } else { format!("; dropped groups {dropped:?}") }
    );
    Response::Renewed { id, exp: claims.exp, ends_at, detail }
}
