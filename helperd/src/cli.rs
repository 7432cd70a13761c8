//! The admin commands that ask the running daemon: status, users, sessions.

use crate::keys::unix_now;
use oidc_core::audit::clean;
use oidc_core::config::Config;
use oidc_core::ipc::{call, Request, Response};
use std::time::Duration;

/// One request to the daemon; errors are printed, the Err is the exit code.
fn ask(cfg: &Config, req: Request) -> Result<Response, i32> {
    ask_within(cfg, req, Duration::from_secs(5))
}

fn ask_within(cfg: &Config, req: Request, timeout: Duration) -> Result<Response, i32> {
    match call(&cfg.helperd.socket, &req, timeout) {
        Ok(Response::Error { message }) => {
            eprintln!("helperd: {message}");
            Err(1)
        }
        Ok(r) => Ok(r),
        Err(e) => {
            eprintln!("helperd: {e}");
            Err(1)
        }
    }
}

fn unexpected(r: Response) -> i32 {
    eprintln!("helperd: unexpected answer {r:?}");
    1
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

pub fn status(cfg: &Config) -> i32 {
    let issuers = match ask(cfg, Request::Status) {
        Ok(Response::Status { issuers }) => issuers,
        Ok(r) => return unexpected(r),
        Err(code) => return code,
    };
    let now = unix_now();
    for i in issuers {
        let when = |t: Option<i64>, f: &dyn Fn(i64) -> String| t.map_or("never".to_string(), f);
        println!(
            "{}\n  keys: {}  fetched: {}  expires in: {}  fetches: {}  rate-limited: {}  last error: {}",
            i.issuer,
            i.keys,
            when(i.fetched_at, &|t| format!("{}s ago", now - t)),
            when(i.expires_at, &|t| format!("{}s", t - now)),
            i.fetches,
            i.rate_limited,
            i.last_error.as_deref().unwrap_or("-")
        );
    }
    0
}

pub fn users(cfg: &Config) -> i32 {
    let users = match ask(cfg, Request::Users) {
        Ok(Response::Users { users }) => users,
        Ok(r) => return unexpected(r),
        Err(code) => return code,
    };
    let now = unix_now();
    println!("{:<20} {:>10}  {:<30} {:<12} identity", "name", "uid", "groups", "last login");
    for u in users {
        let ago = format!("{}s ago", now - u.last_login);
        println!("{:<20} {:>10}  {:<30} {ago:<12} {} {}", u.name, u.uid, u.groups.join(","), u.issuer, clean(&u.sub));
    }
    0
}

pub fn sessions(cfg: &Config) -> i32 {
    let sessions = match ask(cfg, Request::Sessions) {
        Ok(Response::Sessions { sessions }) => sessions,
        Ok(r) => return unexpected(r),
        Err(code) => return code,
    };
    let now = unix_now();
    println!(
        "{:>4} {:<16} {:>10} {:>8} {:<10} {:<16} {:<12} identity",
        "id", "user", "uid", "pid", "tty", "rhost", "token exp"
    );
    for s in sessions {
        let exp = format!("{}s", s.claims.exp - now);
        println!(
            "{:>4} {:<16} {:>10} {:>8} {:<10} {:<16} {exp:<12} {} {}",
            s.id,
            s.claims.account,
            s.uid,
            s.pid,
            or_dash(&s.tty),
            or_dash(&s.rhost),
            s.claims.issuer,
            clean(&s.claims.sub)
        );
        if let Some(aws) = &s.aws {
            println!("     aws: {aws}");
        }
    }
    0
}

/// `credential_process` for the AWS CLI and SDKs: this session's credentials
/// as JSON (Version 1). helperd serves them only to the session's own uid (and
/// root), checked on the socket; nothing is written to disk.
pub fn credentials(cfg: &Config) -> i32 {
    let wait = Duration::from_secs(cfg.aws.timeout_secs + 5);
    match ask_within(cfg, Request::AwsCredentials, wait) {
        Ok(Response::AwsCredentials { access_key_id, secret_access_key, session_token, expiration }) => {
            let out = serde_json::json!({
                "Version": 1,
                "AccessKeyId": access_key_id,
                "SecretAccessKey": secret_access_key.expose(),
                "SessionToken": session_token.expose(),
                "Expiration": expiration,
            });
            println!("{out}");
            0
        }
        Ok(r) => unexpected(r),
        Err(code) => code,
    }
}
