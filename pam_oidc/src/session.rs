//! `pam_sm_open_session` / `pam_sm_close_session`: bind the verified login to
//! this session in helperd (uid, the opening process, tty, rhost, claims) and
//! get the session's AWS credentials set up; end it at close. Registration
//! trouble is logged and never blocks a login — except AWS credentials that a
//! role marks `required` (then the login fails, with the reason).

use crate::auth::{setup, ENV_GROUPS, ENV_LOGIN_ID};
use crate::handle::{Pam, Prio};
use oidc_core::config::Config;
use oidc_core::ipc::{AwsStatus, Client, Request, Response};
use pam::constants::PamResultCode;
use std::time::Duration;

fn client(cfg: &Config, secs: u64) -> Client {
    let t = Duration::from_millis(cfg.pam.ipc_timeout_ms).max(Duration::from_secs(secs));
    Client::for_caller(&cfg.helperd, t)
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

pub fn open_session(pam: &mut dyn Pam, raw: &[String]) -> PamResultCode {
    let cfg = match setup(pam, raw, "session") {
        Ok((_, cfg)) => cfg,
        Err(PamResultCode::PAM_IGNORE) => return PamResultCode::PAM_IGNORE, // a local user
        Err(_) => return PamResultCode::PAM_SESSION_ERR,
    };
    let Some(login_id) = pam.getenv(ENV_LOGIN_ID).filter(|l| !l.is_empty()) else {
        return PamResultCode::PAM_IGNORE; // not an OIDC login, or helperd was down at auth
    };
    let req = Request::OpenSession { login_id, pid: std::process::id() as i32, tty: pam.tty(), rhost: pam.rhost() };
    let user = pam.user().unwrap_or_default();
    let rc = match client(&cfg, cfg.aws.timeout_secs + 2).call(&req) {
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
            let groups: Vec<String> =
                pam.getenv(ENV_GROUPS).unwrap_or_default().split(',').map(str::to_string).collect();
            let issuer = pam.getenv(crate::auth::ENV_ISSUER).unwrap_or_default();
            let required =
                cfg.aws.require_credentials || cfg.aws.role_for(&groups, &issuer).is_some_and(|r| r.required);
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

pub fn close_session(pam: &mut dyn Pam, raw: &[String]) -> PamResultCode {
    let cfg = match setup(pam, raw, "session") {
        Ok((_, cfg)) => cfg,
        Err(PamResultCode::PAM_IGNORE) => return PamResultCode::PAM_IGNORE, // a local user
        Err(_) => return PamResultCode::PAM_SESSION_ERR,
    };
    // A local account's session (cron, su, a key login) is none of helperd's business.
    if let Ok(user) = pam.user() {
        if let crate::local::Kind::Local(_) = crate::local::classify(&cfg, pam, &user) {
            return PamResultCode::PAM_IGNORE;
        }
    }
    let req = Request::CloseSession { pid: std::process::id() as i32 };
    match client(&cfg, 0).call(&req) {
        Ok(Response::SessionClosed { closed }) if closed > 0 => {
            let user = pam.user().unwrap_or_default();
            pam.log(Prio::Info, &format!("session close user={user}"));
        }
        Ok(_) => {}
        Err(e) => pam.log(Prio::Warning, &format!("session close: {e}")),
    }
    PamResultCode::PAM_SUCCESS
}
