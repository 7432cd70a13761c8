//! `pam_sm_open_session` / `pam_sm_close_session`: bind the verified login to
//! this session in helperd (uid, the opening process, tty, rhost, claims), and
//! end it. Registration trouble is logged, never blocks the login (the access
//! decision was made in auth/account).

use crate::auth::{setup, ENV_LOGIN_ID};
use crate::handle::{Pam, Prio};
use oidc_core::config::Config;
use oidc_core::ipc::{Client, Request, Response};
use pam::constants::PamResultCode;
use std::time::Duration;

fn client(cfg: &Config) -> Client {
    Client::new(&cfg.helperd.socket, Duration::from_millis(cfg.pam.ipc_timeout_ms))
}

pub fn open_session(pam: &mut dyn Pam, raw: &[String]) -> PamResultCode {
    let Ok((_, cfg)) = setup(pam, raw, "session") else { return PamResultCode::PAM_SESSION_ERR };
    let Some(login_id) = pam.getenv(ENV_LOGIN_ID).filter(|l| !l.is_empty()) else {
        return PamResultCode::PAM_IGNORE; // not an OIDC login, or helperd was down at auth
    };
    let req = Request::OpenSession { login_id, pid: std::process::id() as i32, tty: pam.tty(), rhost: pam.rhost() };
    let user = pam.user().unwrap_or_default();
    match client(&cfg).call(&req) {
        Ok(Response::SessionOpened { id }) => {
            pam.log(Prio::Info, &format!("session open user={user} session={id}"));
        }
        Ok(other) => pam.log(Prio::Warning, &format!("session open user={user}: helperd refused: {other:?}")),
        Err(e) => pam.log(Prio::Warning, &format!("session open user={user}: {e}")),
    }
    // The login id has done its job; keep it out of the session's environment.
    let _ = pam.putenv(ENV_LOGIN_ID, "");
    PamResultCode::PAM_SUCCESS
}

pub fn close_session(pam: &mut dyn Pam, raw: &[String]) -> PamResultCode {
    let Ok((_, cfg)) = setup(pam, raw, "session") else { return PamResultCode::PAM_SESSION_ERR };
    let req = Request::CloseSession { pid: std::process::id() as i32 };
    match client(&cfg).call(&req) {
        Ok(Response::SessionClosed { closed }) if closed > 0 => {
            let user = pam.user().unwrap_or_default();
            pam.log(Prio::Info, &format!("session close user={user}"));
        }
        Ok(_) => {}
        Err(e) => pam.log(Prio::Warning, &format!("session close: {e}")),
    }
    PamResultCode::PAM_SUCCESS
}
