//! `pam_sm_acct_mgmt`: group policy on the identity verified by this
//! transaction's `pam_sm_authenticate` (read back from the PAM environment),
//! or — when authentication was skipped (sudo's cached credentials) — on the
//! claims of the caller's live OIDC session, which must still be valid.

use crate::auth::{setup, ENV_GROUPS, ENV_IDP_GROUPS, ENV_ISSUER, ENV_JTI, ENV_SUB, ENV_USER};
use crate::handle::{Pam, Prio};
use crate::reuse::Reuse;
use oidc_core::audit::AuditEvent;
use oidc_core::ipc::Client;
use oidc_core::policy::check_groups;
use oidc_core::Rejection;
use pam::constants::PamResultCode;
use std::time::Duration;

pub fn acct_mgmt(pam: &mut dyn Pam, raw: &[String], now: i64) -> PamResultCode {
    let (a, cfg) = match setup(pam, raw, "account") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let user = match pam.user() {
        Ok(u) => u,
        Err(_) => return PamResultCode::PAM_USER_UNKNOWN,
    };
    // A local or directory account: its sudo rights and logins are the other
    // modules' and sudoers' business (an EC2 NOPASSWD admin keeps working).
    if let crate::local::Kind::Local(_) = crate::local::classify(&cfg, pam, &user) {
        return PamResultCode::PAM_IGNORE;
    }
    let mut ev = AuditEvent {
        stage: "account",
        service: pam.service(),
        user: user.clone(),
        rhost: pam.rhost(),
        issuer: pam.getenv(ENV_ISSUER).unwrap_or_default(),
        sub: pam.getenv(ENV_SUB).unwrap_or_default(),
        jti: pam.getenv(ENV_JTI).unwrap_or_default(),
        ..Default::default()
    };
    let Some(oidc_user) = pam.getenv(ENV_USER).filter(|u| !u.is_empty()) else {
        let client = Client::for_caller(&cfg.helperd, Duration::from_millis(cfg.pam.ipc_timeout_ms));
        let why = match crate::reuse::session_claims(
            &client,
            &user,
            &a.demand(&cfg),
            now,
            &crate::reuse::leeway_of(&cfg),
            cfg.pam.reuse_max_age_secs,
        ) {
            Reuse::Usable(c, detail) => {
                (ev.issuer, ev.sub, ev.jti) = (c.issuer.clone(), c.sub.clone(), c.jti.clone().unwrap_or_default());
                if let Err(r) = check_groups(&c.groups, &c.idp_groups, &cfg.policy, &a.require_groups) {
                    return deny(pam, ev, &r);
                }
                ev.allow = true;
                ev.code = "ok".into();
                ev.reason = format!("claims of {detail} still valid");
                pam.log(Prio::Notice, &ev.to_string());
                return PamResultCode::PAM_SUCCESS;
            }
            Reuse::Unsatisfied(why) | Reuse::LacksGroup(why) => why,
            // Not an OIDC login (e.g. a local user with a key). Only a stack that
            // demands a group needs OIDC; otherwise leave the decision to other modules.
            Reuse::NoSession(_) if a.require_groups.is_empty() => return PamResultCode::PAM_IGNORE,
            Reuse::NoSession(why) => format!("require_group set but no verified OIDC identity: {why}"),
        };
        ev.code = "no-oidc-identity".into();
        ev.reason = oidc_core::audit::clean_n(&why, oidc_core::audit::MAX_CONTEXT);
        pam.log(Prio::Warning, &ev.to_string());
        pam.error("OIDC login refused: access denied");
        return PamResultCode::PAM_PERM_DENIED;
    };
    if oidc_user != user {
        let r = Rejection::UserMismatch { token_user: oidc_user, pam_user: user };
        return deny(pam, ev, &r);
    }
    let list = |k| -> Vec<String> {
        pam.getenv(k).unwrap_or_default().split(',').filter(|g| !g.is_empty()).map(str::to_string).collect()
    };
    let (groups, idp_groups) = (list(ENV_GROUPS), list(ENV_IDP_GROUPS));
    if let Err(r) = check_groups(&groups, &idp_groups, &cfg.policy, &a.require_groups) {
        return deny(pam, ev, &r);
    }
    ev.allow = true;
    ev.code = "ok".into();
    ev.reason = format!("group policy satisfied (groups={})", oidc_core::audit::clean(&groups.join(",")));
    pam.log(Prio::Notice, &ev.to_string());
    PamResultCode::PAM_SUCCESS
}

fn deny(pam: &mut dyn Pam, mut ev: AuditEvent, r: &Rejection) -> PamResultCode {
    ev.code = r.code().into();
    ev.reason = r.to_string();
    pam.log(Prio::Warning, &ev.to_string());
    pam.error(r.user_message());
    PamResultCode::PAM_PERM_DENIED
}
