//! `pam-oidc`: OIDC login for people and CI jobs, and ssh/sudo fed through
//! pam_oidc's continuation protocol (docs/tokens.md, `man pam-oidc`).

mod askpass;
mod cache;
mod config;
// Used by the static build only (http.rs); tested in both.
#[cfg_attr(not(target_feature = "crt-static"), allow(dead_code))]
mod dns;
mod http;
mod oidc;
mod run;
mod source;
mod text;

use std::ffi::OsString;
use std::path::PathBuf;

const USAGE: &str = "\
usage: pam-oidc COMMAND [OPTIONS] [ARGS...]

commands:
  login [--device] [--no-browser]   log in at the issuer; keeps the refresh token (cache, 0600)
  ssh [OPTIONS] [--] SSH_ARGS...    ssh with a fresh token for each login (keyboard-interactive)
  sudo [OPTIONS] [--] SUDO_ARGS...  sudo -A with a fresh token
  token                             print a fresh ID token on stdout (for other tools)
  status                            what is cached (no tokens shown)
  logout                            forget the cached tokens of the issuer
  ssh-config [HOST...]              print an ssh_config snippet for OIDC hosts
  askpass PROMPT                    answer one ssh/sudo prompt (what ssh and sudo run)

options (before the command's own arguments):
  --issuer URL         the OpenID Provider (issuer URL exactly as the hosts have it)
  --client-id ID       the client registered at the IdP (a public native app)
  --scopes 'S ...'     scopes (default: openid profile offline_access)
  --audience AUD       the audience a CI token is requested for (GitHub Actions)
  --from SOURCE        auto (default), login, github, gitlab[:VAR], k8s[:PATH], command:CMD
  --device             the device flow instead of the browser
  --no-browser         print the login URL, do not open a browser
  --config FILE        read only FILE (default: /etc/pam-oidc/client.toml, then
                       ~/.config/pam-oidc/client.toml)
";

fn main() {
    std::process::exit(real_main(std::env::args_os().skip(1).collect()));
}

/// Options shared by the commands.
#[derive(Default)]
struct Opts {
    flags: config::File,
    config: Option<PathBuf>,
    no_browser: bool,
}

const COMMANDS: [&str; 8] = ["login", "ssh", "sudo", "token", "status", "logout", "ssh-config", "askpass"];

fn real_main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = match args.into_iter().map(|a| a.into_string()).collect() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("pam-oidc: arguments must be UTF-8");
            return 2;
        }
    };
    // As an askpass program, ssh and sudo run this binary with the prompt as
    // its only argument.
    if let [prompt] = args.as_slice() {
        let p = prompt.trim_end();
        if !COMMANDS.contains(&p) && !p.starts_with('-') && (p.contains(' ') || p.ends_with(':') || p.ends_with('?')) {
            return askpass::run(prompt, &standalone_token, &askpass_hosts());
        }
    }
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return 2;
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            0
        }
        "-V" | "--version" => {
            println!("pam-oidc {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "askpass" => match rest {
            [prompt] => askpass::run(prompt, &standalone_token, &askpass_hosts()),
            _ => usage("askpass PROMPT"),
        },
        "ssh-config" => {
            print!(
                "{}",
                run::ssh_config(rest, &std::env::current_exe().unwrap_or_else(|_| "/usr/bin/pam-oidc".into()))
            );
            0
        }
        c if COMMANDS.contains(&c) => match parse_opts(rest) {
            Ok((opts, tail)) => report(command(c, opts, tail)),
            Err(e) => {
                eprintln!("pam-oidc {c}: {}", text::visible(&e));
                2
            }
        },
        other => {
            eprintln!("pam-oidc: unknown command {other:?}\n\n{USAGE}");
            2
        }
    }
}

/// A fresh token for an askpass run by a plain ssh/sudo: the settings of the
/// config files, no options.
fn standalone_token() -> Result<zeroize::Zeroizing<String>, String> {
    let settings = config::load(None, config::File::default())?;
    let env = |k: &str| std::env::var(k).ok();
    let source = source::Source::parse(&settings.source, &env)?;
    run::Ctx::new(settings, source, false)?.fresh_token()
}

/// The hosts client.toml lets a plain ssh's askpass give tokens to.
fn askpass_hosts() -> Vec<String> {
    config::load(None, config::File::default()).map(|s| s.hosts).unwrap_or_default()
}

fn usage(what: &str) -> i32 {
    eprintln!("usage: pam-oidc {what}");
    2
}

fn report(r: Result<i32, String>) -> i32 {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pam-oidc: {}", text::visible(&e));
            1
        }
    }
}

/// Leading `--option`s are ours; the rest (or what follows `--`) is the command's.
fn parse_opts(args: &[String]) -> Result<(Opts, Vec<String>), String> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a, None),
        };
        let value = |i: &mut usize| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            *i += 1;
            args.get(*i).cloned().ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--" => return Ok((o, args[i + 1..].to_vec())),
            "--issuer" => o.flags.issuer = Some(value(&mut i)?),
            "--client-id" => o.flags.client_id = Some(value(&mut i)?),
            "--scopes" => o.flags.scopes = Some(value(&mut i)?),
            "--audience" => o.flags.audience = Some(value(&mut i)?),
            "--from" => o.flags.source = Some(value(&mut i)?),
            "--config" => o.config = Some(PathBuf::from(value(&mut i)?)),
            "--device" => o.flags.flow = Some("device".into()),
            "--no-browser" => o.no_browser = true,
            n if n.starts_with("--") => return Err(format!("unknown option {n}")),
            _ => return Ok((o, args[i..].to_vec())),
        }
        i += 1;
    }
    Ok((o, vec![]))
}

fn command(cmd: &str, o: Opts, tail: Vec<String>) -> Result<i32, String> {
    let settings = config::load(o.config.as_deref(), o.flags)?;
    let env = |k: &str| std::env::var(k).ok();
    let source = source::Source::parse(&settings.source, &env)?;
    let ctx = run::Ctx::new(settings, source, o.no_browser)?;
    match cmd {
        "login" => {
            if !tail.is_empty() {
                return Err("login takes no arguments".into());
            }
            ctx.login().map(|()| 0)
        }
        "token" => {
            let t = ctx.fresh_token()?;
            println!("{}", t.as_str());
            Ok(0)
        }
        "status" => ctx.status().map(|()| 0),
        "logout" => ctx.logout().map(|()| 0),
        "ssh" => run::ssh(ctx, tail),
        "sudo" => run::sudo(ctx, tail),
        _ => Err(format!("unknown command {cmd}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn our_options_come_first_the_rest_is_ssh_s() {
        let (o, tail) =
            parse_opts(&s(&["--from", "github", "--audience=pam-oidc", "-p", "2222", "deploy@h", "true"])).unwrap();
        assert_eq!(o.flags.source.as_deref(), Some("github"));
        assert_eq!(o.flags.audience.as_deref(), Some("pam-oidc"));
        assert_eq!(tail, s(&["-p", "2222", "deploy@h", "true"]));
        let (o, tail) = parse_opts(&s(&["--device", "--", "--weird"])).unwrap();
        assert_eq!(o.flags.flow.as_deref(), Some("device"));
        assert_eq!(tail, s(&["--weird"]));
        assert!(parse_opts(&s(&["--nope"])).is_err());
        assert!(parse_opts(&s(&["--issuer"])).is_err());
    }
}
