//! The commands: a person's login and its cache, a fresh token for each host
//! login, and ssh/sudo run with this binary as their askpass.

use crate::askpass::{Allowed, Server, SOCKET_VAR};
use crate::cache::{Cache, Entry};
use crate::config::Settings;
use crate::http::Http;
use crate::oidc::{self, RefreshError};
use crate::source::Source;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use zeroize::Zeroizing;

/// A cached ID token is used only with at least this many seconds left.
pub const MIN_LIFETIME_SECS: i64 = 60;

pub struct Ctx {
    pub s: Settings,
    pub source: Source,
    no_browser: bool,
    http: Http,
}

fn stderr_is_tty() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(2) == 1 }
}

impl Ctx {
    pub fn new(s: Settings, source: Source, no_browser: bool) -> Result<Ctx, String> {
        let http = Http::new(Duration::from_secs(s.http_timeout_secs));
        Ok(Ctx { s, source, no_browser, http })
    }

    fn cache(&self) -> Result<Cache, String> {
        Cache::open(&Cache::default_dir()?)
    }

    /// An interactive login: the browser (authorization code + PKCE), or the
    /// device flow when asked or when there is no way to show a browser.
    fn interactive(&self) -> Result<oidc::Tokens, String> {
        self.s.require_login()?;
        let p = oidc::discover(&self.http, &self.s.issuer)?;
        let graphical = ["BROWSER", "DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        let device = self.s.device
            || p.authorization_endpoint.is_none()
            || (!graphical && !self.no_browser && p.device_authorization_endpoint.is_some());
        if device {
            oidc::device_login(&self.http, &p, &self.s)
        } else {
            oidc::browser_login(&self.http, &p, &self.s, !self.no_browser)
        }
    }

    /// `pam-oidc login`: log in and keep the tokens (the ID token unused).
    pub fn login(&self) -> Result<(), String> {
        if self.source != Source::Login {
            return Err(format!("--from {}: CI tokens are fetched at each login, not kept", self.source.name()));
        }
        let cache = self.cache()?;
        let _lock = cache.lock(&self.s.issuer, &self.s.client_id)?;
        let t = self.interactive()?;
        self.keep(&cache, &t, false)?;
        let c = oidc::claims(&t.id_token).unwrap_or_default();
        let who = crate::text::visible(
            c["preferred_username"].as_str().or(c["email"].as_str()).or(c["sub"].as_str()).unwrap_or("?"),
        );
        eprintln!(
            "pam-oidc: logged in as {who} at {}{}",
            self.s.issuer,
            if t.refresh_token.is_some() {
                ""
            } else {
                " (the IdP gave no refresh token: each further host login asks you to log in again)"
            }
        );
        Ok(())
    }

    fn keep(&self, cache: &Cache, t: &oidc::Tokens, used: bool) -> Result<(), String> {
        let old = cache.load(&self.s.issuer, &self.s.client_id).ok().flatten();
        let e = Entry {
            issuer: self.s.issuer.clone(),
            client_id: self.s.client_id.clone(),
            id_token: Some(t.id_token.to_string()),
            id_token_used: used,
            // An IdP that does not rotate refresh tokens sends none with a refresh: keep the old one.
            refresh_token: t.refresh_token.as_ref().map(|r| r.to_string()).or(old.and_then(|o| o.refresh_token)),
            updated: oidc::now(),
        };
        cache.store(&e)
    }

    /// A token no host has seen: from the CI source, or the person's refresh
    /// token, or the unused ID token of `pam-oidc login`, or (at a terminal) a new login.
    pub fn fresh_token(&self) -> Result<Zeroizing<String>, String> {
        if self.source != Source::Login {
            let env = |k: &str| std::env::var(k).ok();
            return self.source.fetch(&self.http, self.s.audience.as_deref(), &env);
        }
        self.s.require_login()?;
        let cache = self.cache()?;
        let _lock = cache.lock(&self.s.issuer, &self.s.client_id)?;
        let entry = cache.load(&self.s.issuer, &self.s.client_id).unwrap_or_else(|e| {
            eprintln!("pam-oidc: {}", crate::text::visible(&e));
            None
        });
        if let Some(e) = &entry {
            if let Some(rt) = &e.refresh_token {
                let p = oidc::discover(&self.http, &self.s.issuer)?;
                match oidc::refresh(&self.http, &p, &self.s, rt) {
                    Ok(t) => {
                        self.keep(&cache, &t, true)?;
                        return Ok(t.id_token);
                    }
                    Err(RefreshError::Rejected(m)) => {
                        let m = crate::text::visible(&m);
                        eprintln!("pam-oidc: the login at {} has ended ({m}): log in again", self.s.issuer);
                        cache.remove(&self.s.issuer, &self.s.client_id)?;
                    }
                    Err(RefreshError::Failed(m)) => return Err(m),
                    Err(RefreshError::Unusable(m, rotated)) => {
                        // The old refresh token is spent: keep the one that replaced it.
                        if let Some(rt) = rotated {
                            let mut kept = e.clone();
                            kept.refresh_token = Some(rt.to_string());
                            cache.store(&kept)?;
                        }
                        return Err(m);
                    }
                }
            } else if let Some(id) = e.id_token.as_deref().filter(|_| !e.id_token_used) {
                if oidc::remaining(id, oidc::now()).is_some_and(|r| r > MIN_LIFETIME_SECS) {
                    let mut used = e.clone();
                    used.id_token_used = true;
                    cache.store(&used)?;
                    return Ok(Zeroizing::new(id.to_string()));
                }
            }
        }
        if !stderr_is_tty() && std::env::var_os("BROWSER").is_none() {
            return Err(format!("not logged in at {}: run `pam-oidc login` first", self.s.issuer));
        }
        let t = self.interactive()?;
        self.keep(&cache, &t, true)?;
        Ok(t.id_token)
    }

    /// Before ssh/sudo start: a person is logged in (else logs in now, at a
    /// terminal), so the token prompt is answered at once; CI settings are complete.
    pub fn preflight(&self) -> Result<(), String> {
        match &self.source {
            Source::Login => {
                self.s.require_login()?;
                let cache = self.cache()?;
                let _lock = cache.lock(&self.s.issuer, &self.s.client_id)?;
                let usable = cache.load(&self.s.issuer, &self.s.client_id).ok().flatten().is_some_and(|e| {
                    e.refresh_token.is_some()
                        || (!e.id_token_used
                            && e.id_token
                                .as_deref()
                                .and_then(|t| oidc::remaining(t, oidc::now()))
                                .is_some_and(|r| r > MIN_LIFETIME_SECS))
                });
                if !usable {
                    if !stderr_is_tty() && std::env::var_os("BROWSER").is_none() {
                        return Err(format!("not logged in at {}: run `pam-oidc login` first", self.s.issuer));
                    }
                    let t = self.interactive()?;
                    self.keep(&cache, &t, false)?;
                }
                Ok(())
            }
            Source::Github if self.s.audience.is_none() => {
                Err("GitHub Actions: --audience (or audience in client.toml) names the hosts' audience".into())
            }
            _ => Ok(()),
        }
    }

    pub fn status(&self) -> Result<(), String> {
        if self.source != Source::Login {
            println!("source: {} (a token is fetched for each login)", self.source.name());
            return Ok(());
        }
        self.s.require_login()?;
        let cache = self.cache()?;
        println!(
            "issuer: {}\nclient: {}\ncache: {}",
            self.s.issuer,
            self.s.client_id,
            cache.path(&self.s.issuer, &self.s.client_id).display()
        );
        match cache.load(&self.s.issuer, &self.s.client_id)? {
            None => println!("not logged in"),
            Some(e) => {
                let c = e.id_token.as_deref().and_then(|t| oidc::claims(t).ok()).unwrap_or_default();
                let who = crate::text::visible(c["preferred_username"].as_str().or(c["sub"].as_str()).unwrap_or("?"));
                println!("logged in as: {who}");
                println!("refresh token: {}", if e.refresh_token.is_some() { "yes" } else { "no" });
                if let Some(r) = e.id_token.as_deref().and_then(|t| oidc::remaining(t, oidc::now())) {
                    println!("last ID token: {} ({}s left)", if e.id_token_used { "used" } else { "unused" }, r.max(0));
                }
            }
        }
        Ok(())
    }

    pub fn logout(&self) -> Result<(), String> {
        self.s.require_login()?;
        let cache = self.cache()?;
        let removed = cache.remove(&self.s.issuer, &self.s.client_id)?;
        eprintln!("pam-oidc: {}", if removed { "logged out (cached tokens deleted)" } else { "not logged in" });
        Ok(())
    }
}

/// The host ssh is asked to connect to: its first operand (`[user@]host`,
/// `ssh://[user@]host[:port]`), skipping options and their values as
/// ssh(1)'s option string has them. Lower case, as ssh's prompt prefix.
pub fn destination(args: &[String]) -> Option<String> {
    const WITH_VALUE: &str = "BbcDEeFIiJLlmOoPpQRSWw";
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            return it.next().and_then(|d| host_of(d));
        }
        if let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) {
            // `-p22`, `-vvp 22`: a flag taking a value takes the rest or the next word.
            if let Some(i) = flags.find(|c| WITH_VALUE.contains(c)) {
                if i + 1 == flags.len() {
                    it.next();
                }
            }
            continue;
        }
        return host_of(a);
    }
    None
}

fn host_of(d: &str) -> Option<String> {
    let d = d.strip_prefix("ssh://").unwrap_or(d);
    let d = d.rsplit_once('@').map_or(d, |(_, h)| h);
    let d = match d.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None if d.matches(':').count() == 1 => d.split(':').next().unwrap_or(d),
        None => d,
    };
    (!d.is_empty()).then(|| d.to_ascii_lowercase())
}

/// Does an ssh `-o` list already choose the authentication methods?
fn sets_preferred_auth(args: &[String]) -> bool {
    args.iter().any(|a| a.to_ascii_lowercase().contains("preferredauthentications"))
}

/// Whether an environment value looks like it holds a token.
fn holds_token(v: &str) -> bool {
    v.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')).any(oidc::looks_like_jwt)
}

/// The variables to remove from the environment of ssh/sudo (and so of their
/// askpass children): those that hold or can mint a token.
pub fn scrub(env: &[(String, String)], named: &[String]) -> Vec<String> {
    env.iter().filter(|(k, v)| named.contains(k) || holds_token(v)).map(|(k, _)| k.clone()).collect()
}

/// Run `cmd` with this binary as its askpass: the first token is fetched now,
/// later ones when a new login asks. Returns the command's exit code.
fn run_with_askpass(ctx: Ctx, mut cmd: Command, askpass_var: &str, allowed: Allowed) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
    ctx.preflight()?;
    let server = Server::start(Box::new(move || ctx.fresh_token()), allowed)?;
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    for k in scrub(&env, &Source::Login.secret_vars()) {
        cmd.env_remove(k);
    }
    cmd.env(askpass_var, &exe).env(SOCKET_VAR, &server.socket);
    let mut child = cmd.spawn().map_err(|e| format!("{e}"))?;
    // Like a shell: ^C and ^\ are for ssh/sudo; this process waits to clean up.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    drop(server);
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(1)))
}

/// `pam-oidc ssh ARGS`: ssh with keyboard-interactive (unless the arguments
/// choose) and this binary as SSH_ASKPASS.
pub fn ssh(ctx: Ctx, args: Vec<String>) -> Result<i32, String> {
    let mut cmd = Command::new(std::env::var("PAM_OIDC_SSH").unwrap_or_else(|_| "ssh".into()));
    if !sets_preferred_auth(&args) {
        cmd.args(["-o", "PreferredAuthentications=keyboard-interactive"]);
    }
    cmd.args(&args).env("SSH_ASKPASS_REQUIRE", "force");
    let secret = ctx.source.secret_vars();
    for v in &secret {
        cmd.env_remove(v);
    }
    let allowed = Allowed { hosts: ctx.s.hosts.clone(), destination: destination(&args), unprefixed: false };
    run_with_askpass(ctx, cmd, "SSH_ASKPASS", allowed)
}

/// `pam-oidc sudo ARGS`: `sudo -A ARGS` with this binary as SUDO_ASKPASS.
pub fn sudo(ctx: Ctx, args: Vec<String>) -> Result<i32, String> {
    let mut cmd = Command::new(std::env::var("PAM_OIDC_SUDO").unwrap_or_else(|_| "sudo".into()));
    cmd.arg("-A").args(&args);
    for v in ctx.source.secret_vars() {
        cmd.env_remove(v);
    }
    // sudo runs here: its prompts are local and name no host.
    let allowed = Allowed { hosts: vec![], destination: None, unprefixed: true };
    run_with_askpass(ctx, cmd, "SUDO_ASKPASS", allowed)
}

/// `pam-oidc ssh-config [HOST...]`.
pub fn ssh_config(hosts: &[String], exe: &Path) -> String {
    let hosts = if hosts.is_empty() { vec!["*.example.com".to_string()] } else { hosts.to_vec() };
    let list = hosts.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", ");
    let hosts = hosts.join(" ");
    format!(
        "# ~/.ssh/config: hosts that log in with OIDC (pam_oidc).\n\
         Host {hosts}\n    \
         PreferredAuthentications keyboard-interactive\n    \
         KbdInteractiveAuthentication yes\n    \
         NumberOfPasswordPrompts 1\n\
         \n\
         # ssh takes its askpass program from the environment, never from ssh_config.\n\
         # Either log in with `pam-oidc ssh HOST` (or: alias ssh='{exe} ssh'), or let\n\
         # plain ssh ask pam-oidc (other prompts still reach your terminal):\n\
         #   export SSH_ASKPASS={exe} SSH_ASKPASS_REQUIRE=force\n\
         # and list these hosts in ~/.config/pam-oidc/client.toml (tokens go to no other):\n\
         #   hosts = [{list}]\n\
         # Each OIDC token prompt gets a fresh token.\n",
        exe = exe.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_token_minting_variables_are_scrubbed() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let env: Vec<(String, String)> = [
            ("HOME", "/home/a"),
            ("PATH", "/usr/bin"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "opaque"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://x/?y"),
            ("PAM_OIDC_TOKEN", jwt),
            ("CI_JOB_JWT_V2", jwt),
            ("SOMETHING", &format!("Bearer {jwt}")),
            ("DEPLOY_TOKEN", "opaque"),
            ("VERSION", "eyJ.not.jwt-ish!"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut named = Source::Gitlab("DEPLOY_TOKEN".into()).secret_vars();
        named.push("X".into());
        let gone = scrub(&env, &named);
        for k in [
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "PAM_OIDC_TOKEN",
            "CI_JOB_JWT_V2",
            "SOMETHING",
            "DEPLOY_TOKEN",
        ] {
            assert!(gone.contains(&k.to_string()), "{k}: {gone:?}");
        }
        for k in ["HOME", "PATH"] {
            assert!(!gone.contains(&k.to_string()), "{k}");
        }
    }

    #[test]
    fn keyboard_interactive_unless_the_user_chose() {
        assert!(!sets_preferred_auth(&["-p".into(), "22".into(), "h".into()]));
        let d = |a: &[&str]| destination(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(d(&["-p", "22", "-o", "X=y", "alice@Web-1", "id"]).as_deref(), Some("web-1"));
        assert_eq!(d(&["-vvp22", "ssh://bob@[2001:db8::1]:2222"]).as_deref(), Some("2001:db8::1"));
        assert_eq!(d(&["-J", "jump.example.com", "-l", "alice", "db:22"]).as_deref(), Some("db"));
        assert_eq!(d(&["-F", "/dev/null", "--", "h"]).as_deref(), Some("h"));
        assert_eq!(d(&["-p", "22"]), None);
        assert!(sets_preferred_auth(&["-oPreferredAuthentications=publickey".into()]));
        assert!(sets_preferred_auth(&["-o".into(), "preferredauthentications publickey".into()]));
    }

    #[test]
    fn ssh_config_snippet_names_the_hosts_and_the_alias() {
        let s = ssh_config(&["web-*.acme.com".into()], Path::new("/usr/bin/pam-oidc"));
        assert!(s.contains("Host web-*.acme.com\n    PreferredAuthentications keyboard-interactive\n"), "{s}");
        assert!(s.contains("alias ssh='/usr/bin/pam-oidc ssh'"), "{s}");
        assert!(s.contains("export SSH_ASKPASS=/usr/bin/pam-oidc SSH_ASKPASS_REQUIRE=force"), "{s}");
    }
}
