//! The admin commands that ask the running daemon: status, users, sessions.

mod revoke;
pub use revoke::{lock, locks, renew, unlock};

use crate::clock::unix_now;
use oidc_core::clean;
use oidc_core::Config;
use oidc_core::Helper as _;
use oidc_core::{Request, Response};
use std::time::Duration;

/// One request to the daemon; errors are printed, the Err is the exit code.
fn ask(cfg: &Config, req: Request) -> Result<Response, i32> {
    ask_within(cfg, req, Duration::from_secs(5))
}

fn ask_within(cfg: &Config, req: Request, timeout: Duration) -> Result<Response, i32> {
    match oidc_core::Client::for_caller(&cfg.helperd, timeout).call(&req) {
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

/// Every page of a listing (`users`, `sessions`); `Err` is the exit code.
fn all_pages<T>(
    cfg: &Config,
    req: impl Fn(usize) -> Request,
    page: impl Fn(Response) -> Result<(Vec<T>, Option<usize>), Response>,
) -> Result<Vec<T>, i32> {
    let mut all = vec![];
    let mut offset = Some(0);
    while let Some(o) = offset {
        let (items, next) = page(ask(cfg, req(o))?).map_err(unexpected)?;
        all.extend(items);
        offset = next.filter(|n| *n > o);
    }
    Ok(all)
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
    let users = match all_pages(
        cfg,
        |offset| Request::Users { offset },
        |r| match r {
            Response::Users { users, next } => Ok((users, next)),
            r => Err(r),
        },
    ) {
        Ok(u) => u,
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
    let sessions = match all_pages(
        cfg,
        |offset| Request::Sessions { offset },
        |r| match r {
            Response::Sessions { sessions, next } => Ok((sessions, next)),
            r => Err(r),
        },
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = unix_now();
    println!(
        "{:>4} {:<16} {:>10} {:>8} {:<10} {:<16} {:<10} {:<10} identity",
        "id", "user", "uid", "pid", "tty", "rhost", "token exp", "ends"
    );
    for s in sessions {
        // Seconds from now (negative: past); the session ends at `ends` (`-`: kept past its token).
        let exp = format!("{}s", s.claims.exp - now);
        let ends = s.ends_at.map_or("-".to_string(), |t| format!("{}s", t - now));
        println!(
            "{:>4} {:<16} {:>10} {:>8} {:<10} {:<16} {exp:<10} {ends:<10} {} {}",
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

/// `helperd id-key generate [--force]` / `helperd id-key check`.
pub fn id_key(cfg: &Config, args: &[String]) -> i32 {
    let path = &cfg.accounts.id_key_file;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["check"] => match nss_snapshot::format::IdKey::read(path) {
            Ok(_) => {
                println!("{}: ok (128-bit key, private to root)", path.display());
                0
            }
            Err(e) => {
                eprintln!("helperd: {e}");
                1
            }
        },
        ["generate", rest @ ..] if rest.is_empty() || rest == ["--force"] => {
            if path.exists() && rest.is_empty() {
                eprintln!(
                    "helperd: {} exists; a new key changes the uid every new user gets (existing accounts keep \
                     theirs). Use --force to replace it.",
                    path.display()
                );
                return 1;
            }
            let Some(mut b) = crate::ids::random_bytes::<16>() else {
                eprintln!("helperd: no randomness available");
                return 1;
            };
            let mut hex = crate::ids::hex(&b);
            b.fill(0);
            hex.push('\n');
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let r = crate::atomic::write(path, hex.as_bytes(), 0o600);
            zeroize::Zeroize::zeroize(&mut hex);
            match r {
                Ok(()) => {
                    println!("wrote {} (0600); copy this file to every host of the fleet", path.display());
                    0
                }
                Err(e) => {
                    eprintln!("helperd: writing {}: {e}", path.display());
                    1
                }
            }
        }
        _ => {
            eprintln!("usage: helperd id-key generate [--force] | helperd id-key check");
            2
        }
    }
}

/// `helperd rebind NAME --issuer URL --sub ID`.
pub fn rebind(cfg: &Config, args: &[String]) -> i32 {
    let (mut name, mut issuer, mut sub) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--issuer" => issuer = it.next().cloned(),
            "--sub" => sub = it.next().cloned(),
            n if name.is_none() && !n.starts_with('-') => name = Some(n.to_string()),
            _ => name = None,
        }
    }
    let (Some(name), Some(issuer), Some(sub)) = (name, issuer, sub) else {
        eprintln!("usage: helperd rebind NAME --issuer URL --sub ID");
        return 2;
    };
    match ask(cfg, Request::Rebind { name, issuer, sub }) {
        Ok(Response::Rebound { detail }) => {
            println!("{}", clean(&detail));
            0
        }
        Ok(Response::Refused { code, reason }) => {
            eprintln!("helperd: refused ({code}): {}", clean(&reason));
            1
        }
        Ok(r) => unexpected(r),
        Err(code) => code,
    }
}
