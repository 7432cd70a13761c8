//! Decisions as values: a hook's logic computes a [`Judgement`] and writes
//! nothing; [`finish`] is the one place that turns it into the audit line,
//! the user's message, the PAM environment and the return code (sudo-rs's
//! `judge()` → `Judgement` is the model).

use crate::env::publish;
use crate::handle::{Pam, Prio};
use oidc_core::AuditEvent;
use oidc_core::Rejection;
use oidc_core::SessionClaims;
use pam::constants::PamResultCode;

/// What a hook decided, and the record of it.
pub struct Judgement {
    /// The audit record so far (stage, service, user, rhost, and the
    /// identity as far as it is known); `finish` fills in the outcome.
    pub ev: AuditEvent,
    /// Lines logged before the audit line (debug checks, notes).
    pub notes: Vec<(Prio, String)>,
    pub result: Result<Admission, Refusal>,
}

pub enum Admission {
    /// Not an OIDC account: the other modules decide (PAM_IGNORE), nothing audited.
    NotOurs,
    /// Allowed: the audit line's reason, and the identity to hand on.
    Allowed { reason: String, publish: Option<Box<Publish>> },
}

/// Claims for the later stages, and helperd's login id for open_session.
pub struct Publish {
    pub claims: SessionClaims,
    pub login_id: Option<String>,
}

pub struct Refusal {
    pub rejection: Rejection,
    /// The audit line's reason (the rejection and its context).
    pub reason: String,
    pub rc: PamResultCode,
    pub prio: Prio,
}

impl Refusal {
    /// A refusal logged at warning with the hook's usual code for it.
    pub fn new(rejection: Rejection, reason: String, rc: PamResultCode) -> Refusal {
        Refusal { rejection, reason, rc, prio: Prio::Warning }
    }
}

impl Judgement {
    pub fn new(ev: AuditEvent) -> Judgement {
        Judgement { ev, notes: vec![], result: Ok(Admission::NotOurs) }
    }

    pub fn with(mut self, result: Result<Admission, Refusal>) -> Judgement {
        self.result = result;
        self
    }
}

/// The one exit of every hook.
pub fn finish(pam: &mut dyn Pam, j: Judgement) -> PamResultCode {
    let Judgement { mut ev, notes, result } = j;
    for (prio, line) in &notes {
        pam.log(*prio, line);
    }
    let refusal = match result {
        Ok(Admission::NotOurs) => return PamResultCode::PAM_IGNORE,
        Ok(Admission::Allowed { reason, publish: p }) => {
            let published = match p {
                Some(p) => publish(pam, &p.claims, p.login_id.as_deref()).map_err(|r| {
                    let reason = r.to_string();
                    Refusal::new(r, reason, PamResultCode::PAM_AUTHINFO_UNAVAIL)
                }),
                None => Ok(()),
            };
            match published {
                Ok(()) => {
                    ev.allow = true;
                    ev.code = "ok".into();
                    ev.reason = reason;
                    pam.log(Prio::Notice, &ev.to_string());
                    return PamResultCode::PAM_SUCCESS;
                }
                Err(r) => r,
            }
        }
        Err(r) => r,
    };
    ev.allow = false;
    ev.code = refusal.rejection.code().into();
    ev.reason = refusal.reason;
    pam.log(refusal.prio, &ev.to_string());
    pam.error(refusal.rejection.user_message());
    refusal.rc
}
