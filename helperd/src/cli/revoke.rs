//! `helperd lock` / `unlock` / `locks` (root) and `helperd renew` (a
//! session's user, from inside it).

use super::{ask, ask_within, unexpected};
use oidc_core::{clean, Config, LockTarget, Request, Response, Secret};
use std::io::{IsTerminal, Read};
use std::time::Duration;

const LOCK_USAGE: &str = "usage: helperd lock NAME [--reason TEXT] | helperd lock --sub ISSUER SUB [--reason TEXT]";

/// `NAME` or `--sub ISSUER SUB`, and `--reason TEXT`.
fn target(args: &[String]) -> Option<(LockTarget, String)> {
    let (mut target, mut reason) = (None, String::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reason" => reason = it.next()?.clone(),
            "--sub" if target.is_none() => {
                let (issuer, sub) = (it.next()?.clone(), it.next()?.clone());
                target = Some(LockTarget::Identity { issuer, sub });
            }
            n if target.is_none() && !n.starts_with('-') && !n.is_empty() => {
                target = Some(LockTarget::Name { name: n.to_string() })
            }
            _ => return None,
        }
    }
    Some((target?, reason))
}

/// `helperd lock NAME|--sub ISSUER SUB [--reason TEXT]`.
pub fn lock(cfg: &Config, args: &[String]) -> i32 {
    let Some((target, reason)) = target(args) else {
        eprintln!("{LOCK_USAGE}");
        return 2;
    };
    let by = std::env::var("SUDO_USER").unwrap_or_default();
    match ask(cfg, Request::Lock { target, reason, by }) {
        Ok(Response::Locked { detail, .. }) => {
            println!("{}", clean(&detail));
            0
        }
        Ok(r) => unexpected(r),
        Err(code) => code,
    }
}

/// `helperd unlock NAME|--sub ISSUER SUB`.
pub fn unlock(cfg: &Config, args: &[String]) -> i32 {
    let Some((target, _)) = target(args) else {
        eprintln!("usage: helperd unlock NAME | helperd unlock --sub ISSUER SUB");
        return 2;
    };
    match ask(cfg, Request::Unlock { target: target.clone() }) {
        Ok(Response::Unlocked { removed: 0 }) => {
            eprintln!(
                "helperd: no lock set with `helperd lock` for {target} (fleet list locks end when the list drops them)"
            );
            1
        }
        Ok(Response::Unlocked { .. }) => {
            println!("unlocked {target}");
            0
        }
        Ok(r) => unexpected(r),
        Err(code) => code,
    }
}

/// `helperd locks`: every lock in force.
pub fn locks(cfg: &Config) -> i32 {
    let locks = match super::all_pages(
        cfg,
        |offset| Request::Locks { offset },
        |r| match r {
            Response::Locks { locks, next } => Ok((locks, next)),
            r => Err(r),
        },
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    println!("{:<20} {:<8} {:<48} {:<40} reason", "since", "source", "who", "by");
    for l in locks {
        println!(
            "{:<20} {:<8} {:<48} {:<40} {}",
            oidc_core::format_rfc3339(l.at),
            clean(&l.source),
            l.target.to_string(),
            clean(&l.by),
            clean(&l.reason)
        );
    }
    0
}

/// Read the token: `--token-file F`, else `$OIDC_TOKEN_FILE`, else stdin (a
/// terminal: prompted, not echoed). Never from the command line.
fn read_token(cfg: &Config, args: &[String]) -> Result<Secret, String> {
    let limit = cfg.pam.max_token_bytes as u64 + 2;
    let file = match args {
        [] => std::env::var_os("OIDC_TOKEN_FILE").map(std::path::PathBuf::from),
        [flag, f] if flag == "--token-file" => Some(f.into()),
        _ => return Err("usage: helperd renew [--token-file FILE]   (or the token on stdin)".into()),
    };
    let mut raw = zeroize::Zeroizing::new(String::new());
    let read = match &file {
        Some(f) => std::fs::File::open(f).and_then(|h| h.take(limit).read_to_string(&mut raw)),
        None if std::io::stdin().is_terminal() => {
            eprint!("{}", cfg.pam.prompt);
            let r = no_echo_line(&mut raw);
            eprintln!();
            r
        }
        None => std::io::stdin().take(limit).read_to_string(&mut raw),
    };
    read.map_err(|e| format!("reading the token: {e}"))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err("no token given".into());
    }
    Ok(Secret::new(token.to_string()))
}

/// One line from the terminal with echo off (restored after).
fn no_echo_line(out: &mut String) -> std::io::Result<usize> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let r = stdin.read_line(out);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    r
}

/// `helperd renew [--token-file FILE]`: extend this session with a fresh token
/// of the same identity.
pub fn renew(cfg: &Config, args: &[String]) -> i32 {
    let token = match read_token(cfg, args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("helperd: {e}");
            return 2;
        }
    };
    match ask_within(cfg, Request::RenewSession { token }, Duration::from_secs(10)) {
        Ok(Response::Renewed { detail, ends_at, .. }) => {
            println!("{}", clean(&detail));
            if let Some(t) = ends_at {
                println!("the session ends at {}", oidc_core::format_rfc3339(t));
            }
            0
        }
        Ok(Response::Refused { code, reason }) => {
            eprintln!("helperd: renewal refused ({code}): {}", clean(&reason));
            1
        }
        Ok(r) => unexpected(r),
        Err(code) => code,
    }
}
