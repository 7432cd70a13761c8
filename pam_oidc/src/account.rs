//! `pam_sm_acct_mgmt`: group policy on the identity verified by this
//! transaction's `pam_sm_authenticate` (read back from the PAM environment),
//! or — when authentication was skipped (sudo's cached credentials) — on the
//! claims of the caller's live OIDC session, which must still be valid.

use crate::args::Args;
use crate::auth::{event, setup};
use crate::edges::Edges;
use crate::env::Published;
use crate::handle::Pam;
use crate::reuse::Reuse;
use crate::verdict::{finish, Admission, Judgement, Refusal};
use oidc_core::check_groups;
use oidc_core::Config;
use oidc_core::Rejection;
use pam::constants::PamResultCode;

pub fn acct_mgmt(pam: &mut dyn Pam, raw: &[String], edges: &dyn Edges) -> PamResultCode {
    let (a, cfg) = match setup(pam, raw, "account") {
        Ok(x) => x,
        Err(j) => return finish(pam, *j),
    };
    let user = match pam.user() {
        Ok(u) => u,
        Err(_) => return PamResultCode::PAM_USER_UNKNOWN,
    };
    let j = decide(pam, &a, &cfg, &user, edges);
    finish(pam, j)
}

/// A refusal of the account stage: always "permission denied".
fn refuse(r: Rejection) -> Result<Admission, Refusal> {
    let reason = r.to_string();
    Err(Refusal::new(r, reason, PamResultCode::PAM_PERM_DENIED))
}

/// Is the OIDC account `user` locked (by name, or the identity holding it in
/// the account store)? A locks file or store that cannot be read counts as
/// locked: fail closed.
fn locked(cfg: &Config, user: &str) -> Option<String> {
    let locks = match oidc_core::LocksSaved::read(&cfg.helperd.state_dir) {
        Ok(l) if l.locks.is_empty() => return None,
        Ok(l) => l,
        Err(e) => return Some(format!("the locks file cannot be read: {e}")),
    };
    let store = oidc_core::Store::load(&cfg.helperd.state_dir.join(oidc_core::STORE_FILE));
    let held = store
        .as_ref()
        .ok()
        .and_then(|s| s.users.iter().find(|u| u.name == user).map(|u| (u.issuer.clone(), u.sub.clone())));
    let (issuer, sub) = held.unwrap_or_default();
    let probe = oidc_core::SessionClaims::naming(&issuer, &sub, user, user);
    locks.lock_for(&probe).map(|l| format!("{} is locked on this host by {}", l.target, oidc_core::clean(&l.by)))
}

pub fn decide(pam: &mut dyn Pam, a: &Args, cfg: &Config, user: &str, edges: &dyn Edges) -> Judgement {
    let mut j = Judgement::new(event(pam, "account", user));
    // A local or directory account: its sudo rights and logins are the other
    // modules' and sudoers' business (an EC2 NOPASSWD admin keeps working).
    if let crate::local::Kind::Local(_) = crate::local::classify(cfg, pam, user) {
        return j;
    }
    let p = Published::read(pam);
    (j.ev.issuer, j.ev.sub, j.ev.jti) = (p.issuer.clone(), p.sub.clone(), p.jti.clone());
    if p.user.is_empty() {
        let reused = crate::reuse::none_can_lend(cfg, edges.real_uid()).unwrap_or_else(|| {
            crate::reuse::session_claims(
                &*edges.helper(cfg),
                user,
                &a.demand(cfg),
                edges.now(),
                &crate::reuse::leeway_of(cfg),
                cfg.pam.reuse_max_age_secs,
            )
        });
        let why = match reused {
            Reuse::Usable(c, detail) => {
                (j.ev.issuer, j.ev.sub, j.ev.jti) =
                    (c.issuer.clone(), c.sub.clone(), c.jti.clone().unwrap_or_default());
                let r = match check_groups(&c.groups, &c.idp_groups, &cfg.policy, &a.require_groups) {
                    Ok(()) => {
                        Ok(Admission::Allowed { reason: format!("claims of {detail} still valid"), publish: None })
                    }
                    Err(r) => refuse(r),
                };
                return j.with(r);
            }
            Reuse::Unsatisfied(why) | Reuse::LacksGroup(why) => why,
            Reuse::NoSession(why) => {
                // Not an OIDC login (an ssh key the user put in place, a cron
                // job): a locked identity is refused whatever the way in.
                if let Some(locked) = locked(cfg, user) {
                    return j.with(refuse(Rejection::AccountRefused {
                        code: oidc_core::RefusalCode::Locked,
                        reason: locked,
                    }));
                }
                // Only a stack that demands a group needs OIDC; otherwise leave
                // the decision to other modules.
                if a.require_groups.is_empty() {
                    return j;
                }
                format!("require_group set but no verified OIDC identity: {why}")
            }
        };
        return j.with(refuse(Rejection::NoOidcIdentity(why)));
    }
    if p.user != user {
        return j.with(refuse(Rejection::UserMismatch { token_user: p.user, pam_user: user.to_string() }));
    }
    let r = match check_groups(&p.groups, &p.idp_groups, &cfg.policy, &a.require_groups) {
        Ok(()) => {
            let reason = format!("group policy satisfied (groups={})", oidc_core::clean(&p.groups.join(",")));
            Ok(Admission::Allowed { reason, publish: None })
        }
        Err(r) => refuse(r),
    };
    j.with(r)
}
