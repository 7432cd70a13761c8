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
use oidc_core::Config;
use oidc_core::{AwsStatus, Request, Response};
use pam::constants::PamResultCode;
use std::time::Duration;

/// The stage's config, or the code for a stack whose config is broken (a
/// local user's session is never blocked by it).
fn config(pam: &mut dyn Pam, raw: &[String]) -> Result<(crate::args::Args, Config), PamResultCode> {
    match setup(pam, raw, "session") {
        Ok(both) => Ok(both),
        Err(j) => match finish(pam, *j) {
            PamResultCode::PAM_IGNORE => Err(PamResultCode::PAM_IGNORE),
            _ => Err(PamResultCode::PAM_SESSION_ERR),
        },
    }
}

/// What opening a session comes to, before anything is written: the log
/// lines, the environment to set, a message for the user and the code.
pub struct Opened {
    pub log: Vec<(Prio, String)>,
    pub env: Vec<(&'static str, String)>,
    pub message: Option<String>,
    pub rc: PamResultCode,
}

impl Opened {
    fn new(rc: PamResultCode) -> Opened {
        Opened { log: vec![], env: vec![], message: None, rc }
    }

    /// Write it: log lines, environment (a variable that cannot be set is
    /// logged), the message; the login id is always removed from the
    /// session's environment.
    fn apply(self, pam: &mut dyn Pam, user: &str) -> PamResultCode {
        for (prio, line) in &self.log {
            pam.log(*prio, line);
        }
        for (k, v) in &self.env {
            if pam.putenv(k, v).is_err() {
                pam.log(Prio::Warning, &format!("session open user={user}: cannot set {k}"));
            }
        }
        if let Some(m) = &self.message {
            pam.error(m);
        }
        // The login id has done its job; keep it out of the session's environment.
        let _ = pam.putenv(ENV_LOGIN_ID, "");
        self.rc
    }
}

pub fn open_session(pam: &mut dyn Pam, raw: &[String], edges: &dyn Edges) -> PamResultCode {
    let (args, cfg) = match config(pam, raw) {
        Ok(both) => both,
        Err(rc) => return rc,
    };
    let published = Published::read(pam);
    // Must this session end when its token does (the config for its issuer,
    // or this stack)? Then it opens only if helperd has it.
    let must_end = args.end_at_expiry || cfg.session_ends_at(&published.issuer, 0).is_some();
    let user = pam.user().unwrap_or_default();
    if published.login_id.is_empty() {
        if published.user.is_empty() || !must_end {
            return PamResultCode::PAM_IGNORE; // not an OIDC login, or helperd was down at auth
        }
        // An OIDC login the module admitted alone (helperd down): nobody would end it.
        return decide_open(
            &cfg,
            &published,
            &user,
            must_end,
            Err(oidc_core::IpcError::Down("no login id: helperd was unreachable at authentication".into())),
        )
        .apply(pam, &user);
    }
    let req = Request::OpenSession {
        login_id: published.login_id.clone(),
        pid: edges.pid(),
        tty: pam.tty(),
        rhost: pam.rhost(),
        end_at_expiry: args.end_at_expiry,
    };
    let wait = Duration::from_secs(cfg.aws.timeout_secs + 2);
    let answer = edges.helper(&cfg).call_within(&req, wait);
    decide_open(&cfg, &published, &user, must_end, answer).apply(pam, &user)
}

/// The session's fate from helperd's answer. `must_end`: the session must
/// end when its token expires (`on_expiry = "end"`, `end_at_expiry`), which
/// only helperd can do — without it the session does not open.
pub fn decide_open(
    cfg: &Config,
    published: &Published,
    user: &str,
    must_end: bool,
    answer: Result<Response, oidc_core::IpcError>,
) -> Opened {
    match answer {
        Ok(Response::SessionOpened { id, aws }) => {
            let mut o = Opened::new(PamResultCode::PAM_SUCCESS);
            o.log.push((Prio::Info, format!("session open user={user} session={id}")));
            if let Some(st) = aws {
                aws_outcome(&mut o, cfg, user, &st);
            }
            o
        }
        other => {
            let why = match other {
                Ok(r) => format!("helperd refused: {r:?}"),
                Err(e) => e.to_string(),
            };
            // Without helperd there are no AWS credentials; fail only if they are required.
            let required = cfg.aws.require_credentials
                || cfg.aws.role_for(&published.groups, &published.issuer).is_some_and(|r| r.required);
            let fail = required || must_end;
            let mut o = Opened::new(if fail { PamResultCode::PAM_SESSION_ERR } else { PamResultCode::PAM_SUCCESS });
            o.log.push((Prio::Warning, format!("session open user={user}: {why}")));
            if must_end {
                o.log.push((
                    Prio::Warning,
                    format!("session refused user={user}: it must end with its token (sessions.on_expiry = \"end\" or end_at_expiry) and helperd does not have it"),
                ));
                o.message = Some(
                    "OIDC session refused: it cannot be ended when its token expires (helperd unavailable)".into(),
                );
            } else if required {
                o.message = Some("AWS credentials unavailable: helperd unreachable".into());
            }
            o
        }
    }
}

/// The session's environment for AWS CLIs and SDKs: a config whose
/// `credential_process` asks helperd (no secret in the environment or on disk).
fn aws_outcome(o: &mut Opened, cfg: &Config, user: &str, st: &AwsStatus) {
    if st.granted {
        o.env.push(("AWS_CONFIG_FILE", cfg.aws.config_file.display().to_string()));
        o.env.push(("AWS_SDK_LOAD_CONFIG", "1".into()));
        o.log.push((Prio::Info, format!("session open user={user}: {}", st.message)));
        return;
    }
    o.log.push((Prio::Warning, format!("session open user={user}: {}", st.message)));
    o.message = Some(st.message.clone());
    if st.required_failed {
        o.rc = PamResultCode::PAM_SESSION_ERR;
    }
}

pub fn close_session(pam: &mut dyn Pam, raw: &[String], edges: &dyn Edges) -> PamResultCode {
    let cfg = match config(pam, raw) {
        Ok((_, cfg)) => cfg,
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
