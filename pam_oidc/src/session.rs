//! `pam_sm_open_session` / `pam_sm_close_session`: bind the verified login to
//! this session in helperd (uid, the opening process, tty, rhost, claims) and
//! get the session's AWS credentials set up; end it at close. Registration
//! trouble is logged and never blocks a login — except AWS credentials that a
//! role marks `required` (then the login fails, with the reason).

use crate::auth::setup;
use crate::edges::Edges;
use crate::env::{Published, ENV_LOGIN_ID};
use crate::handle::{Pam, Prio};
use crate::verdict::finish;
use oidc_core::config::Config;
use oidc_core::ipc::{AwsStatus, Request, Response};
use pam::constants::PamResultCode;
use std::time::Duration;

/// The stage's config, or the code for a stack whose config is broken (a
/// local user's session is never blocked by it).
fn config(pam: &mut dyn Pam, raw: &[String]) -> Result<Config, PamResultCode> {
    match setup(pam, raw, "session") {
        Ok((_, cfg)) => Ok(cfg),
        Err(j) => match finish(pam, *j) {
            PamResultCode::PAM_IGNORE => Err(PamResultCode::PAM_IGNORE),
            _ => Err(PamResultCode::PAM_SESSION_ERR),
        },
    }
}

/// The session's environment for AWS CLIs and SDKs: a config whose
/// `credential_process` asks helperd (no secret in the environment or on disk).
fn aws_env(pam: &mut dyn Pam, cfg: &Config, user: &str, st: &AwsStatus) -> PamResultCode {
    if st.granted {
        let file = cfg.aws.config_file.display().to_string();
        for (k, v) in [("AWS_CONFIG_FILE", file.as_str()), ("AWS_SDK_LOAD_CONFIG", "1")] {
            if pam.putenv(k, v).is_err() {
                pam.log(Prio::Warning, &format!("session open user={user}: cannot set {k}"));
            }
        }
        pam.log(Prio::Info, &format!("session open user={user}: {}", st.message));
        return PamResultCode::PAM_SUCCESS;
    }
    pam.log(Prio::Warning, &format!("session open user={user}: {}", st.message));
    pam.error(&st.message);
    if st.required_failed {
        PamResultCode::PAM_SESSION_ERR
    } else {
        PamResultCode::PAM_SUCCESS
    }
}

pub fn open_session(pam: &mut dyn Pam, raw: &[String], edges: &dyn Edges) -> PamResultCode {
    let cfg = match config(pam, raw) {
        Ok(cfg) => cfg,
        Err(rc) => return rc,
    };
    let published = Published::read(pam);
    if published.login_id.is_empty() {
        return PamResultCode::PAM_IGNORE; // not an OIDC login, or helperd was down at auth
    }
    let req = Request::OpenSession {
        login_id: published.login_id.clone(),
        pid: edges.pid(),
        tty: pam.tty(),
        rhost: pam.rhost(),
    };
    let user = pam.user().unwrap_or_default();
    let wait = Duration::from_secs(cfg.aws.timeout_secs + 2);
    let rc = match edges.helper(&cfg).call_within(&req, wait) {
        Ok(Response::SessionOpened { id, aws }) => {
            pam.log(Prio::Info, &format!("session open user={user} session={id}"));
            match aws {
                Some(st) => aws_env(pam, &cfg, &user, &st),
                None => PamResultCode::PAM_SUCCESS,
            }
        }
        other => {
            let why = match other {
                Ok(r) => format!("helperd refused: {r:?}"),
                Err(e) => e.to_string(),
            };
            pam.log(Prio::Warning, &format!("session open user={user}: {why}"));
            // Without helperd there are no AWS credentials; fail only if they are required.
            let required = cfg.aws.require_credentials
                || cfg.aws.role_for(&published.groups, &published.issuer).is_some_and(|r| r.required);
            if required {
                pam.error("AWS credentials unavailable: helperd unreachable");
                PamResultCode::PAM_SESSION_ERR
            } else {
                PamResultCode::PAM_SUCCESS
            }
        }
    };
    // The login id has done its job; keep it out of the session's environment.
    let _ = pam.putenv(ENV_LOGIN_ID, "");
    rc
}

pub fn close_session(pam: &mut dyn Pam, raw: &[String], edges: &dyn Edges) -> PamResultCode {
    let cfg = match config(pam, raw) {
        Ok(cfg) => cfg,
        Err(rc) => return rc,
    };
    // A local account's session (cron, su, a key login) is none of helperd's business.
    if let Ok(user) = pam.user() {
        if let crate::local::Kind::Local(_) = crate::local::classify(&cfg, pam, &user) {
            return PamResultCode::PAM_IGNORE;
        }
    }
    let req = Request::CloseSession { pid: edges.pid() };
    match edges.helper(&cfg).call(&req) {
        Ok(Response::SessionClosed { closed }) if closed > 0 => {
            let user = pam.user().unwrap_or_default();
            pam.log(Prio::Info, &format!("session close user={user}"));
        }
        Ok(_) => {}
        Err(e) => pam.log(Prio::Warning, &format!("session close: {e}")),
    }
    PamResultCode::PAM_SUCCESS
}
