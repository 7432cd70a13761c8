//! Issue 16 (items 2 and 3): the client command `pam-oidc` (crate `client`)
//! against the test IdP and the namespace sshd. A person logs in with the
//! authorization code flow + PKCE (a headless "browser": the IdP's
//! /test/browse drives its own login and consent pages, then calls the
//! client's loopback redirect); the tokens are cached 0600 in a 0700 dir; each
//! `pam-oidc ssh` logs in with a fresh ID token from the refresh token, without
//! the browser. CI jobs log in with the platform's token: GitHub Actions
//! (a stand-in of its token service on 127.0.0.1) and GitLab CI (`id_tokens`
//! variable). While ssh runs, no token shows in the argv or environment of
//! ssh or its askpass children (/proc/PID/cmdline, /proc/PID/environ).

use integration::sshd::{SshHost, Stacks};
use integration::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ALGS: &[&str] = &["RS256"];
const AUD: &str = "pam-oidc:test-hosts";

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `pam-oidc` for a user whose home is `home`: a clean environment (PATH, HOME,
/// the XDG dirs) plus `vars`.
fn client(home: &Path, vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(client_bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::null());
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

fn ssh_args(host: &SshHost, user: &str, command: &str) -> Vec<String> {
    let mut a: Vec<String> = ["-F", "/dev/null", "-p", &host.port.to_string()].iter().map(|s| s.to_string()).collect();
    for o in ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR", "NumberOfPasswordPrompts=1"]
    {
        a.push("-o".into());
        a.push(o.into());
    }
    a.push(format!("{user}@127.0.0.1"));
    a.push(command.into());
    a
}

/// One process seen under the client while it ran.
#[derive(Clone, Debug)]
struct Seen {
    comm: String,
    parent_comm: String,
    cmdline: String,
}

/// Watches a process (its argv) and every descendant (ssh, its askpass
/// children, sudo...; argv and environment) until stopped: records what ran
/// and any that holds a JWT-looking string or one of the `secrets` — what `ps`
/// and /proc show to the user's other processes.
struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<(u32, String), Seen>>>,
    leaks: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn stat_of(pid: u32) -> Option<(String, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = s.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    Some((comm, rest.split_whitespace().nth(1)?.parse().ok()?))
}

impl Watch {
    fn start(root: u32, secrets: Vec<String>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let leaks = Arc::new(Mutex::new(vec![]));
        let (s, sn, lk) = (stop.clone(), seen.clone(), leaks.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                // Parent links of every process, then the descendants of `root`.
                let mut parent = BTreeMap::new();
                let mut comm = BTreeMap::new();
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
                    if let Some((c, pp)) = stat_of(pid) {
                        parent.insert(pid, pp);
                        comm.insert(pid, c);
                    }
                }
                for (&pid, _) in parent.iter() {
                    let mut p = pid;
                    let mut under = false;
                    for _ in 0..32 {
                        match parent.get(&p) {
                            Some(&pp) if pp == root => {
                                under = true;
                                break;
                            }
                            Some(&pp) if pp > 1 => p = pp,
                            _ => break,
                        }
                    }
                    // The client itself: its argv too (its environment is the job's own).
                    if pid == root {
                        let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        let c = String::from_utf8_lossy(&c);
                        if c.contains("eyJ") || secrets.iter().any(|s| c.contains(s.as_str())) {
                            lk.lock().unwrap().push(format!("pam-oidc (pid {pid}) cmdline: {c}"));
                        }
                    }
                    // A child of the client between fork and exec is still the client (its
                    // memory, its environment): what it execs (ssh, sudo) is checked after.
                    let pre_exec = parent.get(&pid) == Some(&root) && comm.get(&pid) == comm.get(&root);
                    if !under || pre_exec {
                        continue;
                    }
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                    let (c, e) = (String::from_utf8_lossy(&cmdline), String::from_utf8_lossy(&environ));
                    let name = comm.get(&pid).cloned().unwrap_or_default();
                    for (what, t) in [("cmdline", &c), ("environ", &e)] {
                        if t.contains("eyJ") || secrets.iter().any(|s| t.contains(s.as_str())) {
                            let leak = format!("{name} (pid {pid}) {what}: {}", t.replace('\0', " "));
                            let mut l = lk.lock().unwrap();
                            if !l.contains(&leak) {
                                l.push(leak);
                            }
                        }
                    }
                    let pc = parent.get(&pid).and_then(|pp| comm.get(pp)).cloned().unwrap_or_default();
                    // A forked child is seen before and after its exec: keep both views.
                    let cmdline = c.replace('\0', " ");
                    sn.lock().unwrap().entry((pid, cmdline.clone())).or_insert(Seen {
                        comm: name,
                        parent_comm: pc,
                        cmdline,
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Watch { stop, seen, leaks, thread: Some(thread) }
    }

    fn finish(mut self) -> (Vec<Seen>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let seen = self.seen.lock().unwrap().values().cloned().collect();
        let leaks = self.leaks.lock().unwrap().clone();
        (seen, leaks)
    }
}

/// Run `c` to its end while watching its descendants.
fn run_watched(mut c: Command, secrets: Vec<String>) -> (Output, Vec<Seen>, Vec<String>, Duration) {
    let t = Instant::now();
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let watch = Watch::start(child.id(), secrets);
    let out = child.wait_with_output().unwrap();
    let took = t.elapsed();
    let (seen, leaks) = watch.finish();
    (out, seen, leaks, took)
}

fn logins(host: &SshHost, needle: &str) -> usize {
    host.syslog().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_person_logs_in_with_the_browser_once_then_ssh_and_sudo_use_fresh_tokens() {
    let idp = Idp::start();
    let issuer = Issuer::standard(&idp.issuer(), ALGS).set("audiences", ["host-login", "host-cli"]);
    let env = Env::new(Config::new().issuer(issuer));
    env.prelogin(&["alice"], &[]);
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::standard("step_up"), "%devs ALL=(ALL:ALL) ALL\n");

    let home = TempDir::new("client-home");
    let h = &home.0;
    std::fs::create_dir_all(h.join(".config/pam-oidc")).unwrap();
    std::fs::write(
        h.join(".config/pam-oidc/client.toml"),
        format!(
            "issuer = \"{}\"\nclient_id = \"host-cli\"\nscopes = \"openid profile groups offline_access\"\n",
            idp.issuer()
        ),
    )
    .unwrap();
    // The "browser": records the URL it was given and lets the IdP's /test/browse
    // log alice in and consent, ending at the client's loopback redirect.
    let calls = h.join("browser-calls");
    let browser = h.join("browser");
    script(
        &browser,
        &format!(
            "printf '%s\\n' \"$1\" >> {calls}\ncurl -sS -G --data-urlencode \"url=$1\" --data-urlencode user=alice \
             {iss}/test/browse >> {calls}.out 2>&1",
            calls = calls.display(),
            iss = idp.issuer()
        ),
    );
    // A browser that must not be needed any more.
    let no_browser = h.join("no-browser");
    script(&no_browser, &format!("echo CALLED >> {}\nexit 1", h.join("no-browser-calls").display()));

    // Before login, ssh is refused with the fix (no terminal: no interactive login).
    let out = client(h, &[]).arg("ssh").args(ssh_args(&host, "alice", "true")).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("run `pam-oidc login` first"), "{}", text(&out));

    // Refused at the IdP (the user says no at the consent page): the login fails, saying so.
    let denying = h.join("denying-browser");
    script(
        &denying,
        &format!(
            "curl -sS -G --data-urlencode \"url=$1\" --data-urlencode user=alice --data-urlencode action=deny {}/test/browse >/dev/null 2>&1",
            idp.issuer()
        ),
    );
    let out = client(h, &[("BROWSER", denying.to_str().unwrap())]).arg("login").output().unwrap();
    assert!(!out.status.success() && text(&out).contains("the IdP refused the login: access_denied"), "{}", text(&out));
    assert!(
        !h.join(".cache/pam-oidc").exists()
            || std::fs::read_dir(h.join(".cache/pam-oidc"))
                .unwrap()
                .flatten()
                .all(|e| !e.path().to_string_lossy().ends_with(".json"))
    );

    // `pam-oidc login`: authorization code + PKCE through the browser.
    let out = client(h, &[("BROWSER", browser.to_str().unwrap())]).arg("login").output().unwrap();
    assert!(
        out.status.success(),
        "login: {}\n{}",
        text(&out),
        std::fs::read_to_string(calls.with_extension("out")).unwrap_or_default()
    );
    assert!(text(&out).contains("logged in as alice"), "{}", text(&out));
    let urls = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(urls.lines().count(), 1, "{urls}");
    for part in [
        "response_type=code",
        "client_id=host-cli",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A",
    ] {
        assert!(urls.contains(part), "{part} in {urls}");
    }
    assert!(!urls.contains("code_verifier"), "{urls}");
    let browsed = std::fs::read_to_string(calls.with_extension("out")).unwrap();
    assert!(browsed.contains("\"done\":true") && browsed.contains("Logged in"), "{browsed}");
    // The cache: one 0600 file in a 0700 dir, with a refresh token.
    let dir = h.join(".cache/pam-oidc");
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600);
    let cached: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert!(cached["refresh_token"].is_string() && cached["id_token"].is_string(), "{cached}");
    assert_eq!(cached["issuer"], json!(idp.issuer()));
    let first_rt = cached["refresh_token"].as_str().unwrap().to_string();

    // Two ssh logins, no browser: each with a new ID token from the refresh token.
    let mut tokens = vec![cached["id_token"].as_str().unwrap().to_string()];
    let mut times = vec![];
    for round in 1..=2 {
        let mut c = client(h, &[("BROWSER", no_browser.to_str().unwrap())]);
        c.arg("ssh").args(ssh_args(&host, "alice", "id; echo LOGGED-IN"));
        let (out, seen, leaks, took) = run_watched(c, vec![first_rt.clone()]);
        assert!(out.status.success(), "ssh {round}: {}\n{}", text(&out), host.syslog().join("\n"));
        let t = text(&out);
        assert!(t.contains("(alice)") && t.contains("LOGGED-IN"), "{t}");
        assert!(leaks.is_empty(), "a token in argv or environment: {leaks:#?}");
        assert!(seen.iter().any(|s| s.comm == "ssh"), "{seen:#?}");
        times.push(took);
        let now: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        tokens.push(now["id_token"].as_str().unwrap().to_string());
        assert_eq!(now["id_token_used"], json!(true));
    }
    assert!(!h.join("no-browser-calls").exists(), "the browser was called again");
    assert_eq!(logins(&host, "auth result=allow code=ok service=sshd user=alice"), 2, "{}", host.syslog().join("\n"));
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "a new ID token for each login");
    eprintln!("pam-oidc ssh with a cached refresh token: {times:?}");

    // Plain ssh with the command as its askpass (the ssh-config way): each prompt is a new
    // process; the rest of a token waits in a 0600 file in the user's 0700 runtime dir,
    // deleted once sent.
    let run = h.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let plain_ssh = || {
        let mut plain = Command::new("ssh");
        plain
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", h)
            .env("XDG_CACHE_HOME", h.join(".cache"))
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("XDG_RUNTIME_DIR", &run)
            .env("SSH_ASKPASS", client_bin())
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .args(["-o", "PreferredAuthentications=keyboard-interactive"])
            .args(ssh_args(&host, "alice", "echo PLAIN-SSH"));
        plain
    };
    // A host client.toml does not list gets no token (a typo, a hostile server, a
    // man in the middle: a token opens every host of its audience).
    let before = logins(&host, "auth result=allow code=ok service=sshd user=alice");
    let out = plain_ssh().output().unwrap();
    assert!(!out.status.success() && text(&out).contains("not a host this client gives tokens to"), "{}", text(&out));
    assert_eq!(logins(&host, "auth result=allow code=ok service=sshd user=alice"), before);
    let toml = h.join(".config/pam-oidc/client.toml");
    let listed = format!("{}hosts = [\"127.0.0.*\"]\n", std::fs::read_to_string(&toml).unwrap());
    std::fs::write(&toml, listed).unwrap();
    let plain = plain_ssh();
    let (out, _, leaks, _) = run_watched(plain, vec![first_rt.clone()]);
    assert!(out.status.success() && text(&out).contains("PLAIN-SSH"), "{}\n{}", text(&out), host.syslog().join("\n"));
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert_eq!(logins(&host, "auth result=allow code=ok service=sshd user=alice"), 3);
    let now: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert!(now["id_token"].as_str().unwrap().len() > 500, "a token of more than one part");
    assert_eq!(mode(&run.join("pam-oidc")), 0o700);
    assert_eq!(std::fs::read_dir(run.join("pam-oidc")).unwrap().count(), 0, "nothing left behind");

    // sudo on the host: `pam-oidc sudo` feeds sudo -A (step_up: a fresh token each time),
    // here from a command that prints one.
    let fetch = env.dir.0.join("fetch-token.sh");
    script(
        &fetch,
        &format!(
            "curl -fsS '{}/test/token?client=host-login&user=alice' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id_token\"])'",
            idp.issuer()
        ),
    );
    let inner =
        format!("{} sudo --from 'command:sh {}' id -un && echo SUDO-OK", client_bin().display(), fetch.display());
    let out = client(h, &[("BROWSER", no_browser.to_str().unwrap())])
        .arg("ssh")
        .args(ssh_args(&host, "alice", &inner))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("root\nSUDO-OK"), "{t}\n{}", host.syslog().join("\n"));
    assert_eq!(logins(&host, "auth result=allow code=ok service=sudo user=alice"), 1, "{}", host.syslog().join("\n"));

    // `logout` forgets the tokens: the next ssh needs a login again.
    let out = client(h, &[]).arg("logout").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!files[0].exists());
}

/// A stand-in for GitHub Actions' token service on 127.0.0.1: checks the
/// bearer and the audience, waits `delay` (so the askpass child waiting for
/// the token can be watched), and answers `{"value": <token signed by the IdP>}`.
struct GithubStandIn {
    url: String,
    served: Arc<AtomicUsize>,
}

fn github_stand_in(issuer: String, bearer: &'static str, delay: Duration) -> GithubStandIn {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("authorization:") {
                    auth = v.trim().to_string();
                }
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let ok_path = target.starts_with("/_apis/token?api-version=2.0&audience=pam-oidc%3Atest-hosts");
            let (status, body) = if auth != format!("bearer {}", bearer.to_ascii_lowercase()) {
                ("401 Unauthorized", json!({"message": "bad bearer"}).to_string())
            } else if !ok_path {
                ("400 Bad Request", json!({"message": format!("bad request {target}")}).to_string())
            } else {
                std::thread::sleep(delay);
                let n = now();
                let jti = format!("gh-{}", count.fetch_add(1, Ordering::SeqCst));
                let claims = json!({"iss": issuer, "aud": AUD, "sub": "repo:acme/infra:ref:refs/heads/main",
                    "jti": jti, "exp": n + 300, "iat": n - 5, "nbf": n - 5, "repository": "acme/infra",
                    "repository_owner": "acme", "repository_owner_id": "1342004", "ref": "refs/heads/main",
                    "event_name": "push", "runner_environment": "github-hosted"});
                let signed = ureq::post(&format!("{issuer}/test/sign"))
                    .header("content-type", "application/json")
                    .send(json!({"header": {"alg": "RS256"}, "payload": claims}).to_string().as_bytes())
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap();
                let token =
                    serde_json::from_str::<serde_json::Value>(&signed).unwrap()["token"].as_str().unwrap().to_string();
                ("200 OK", json!({"count": 1, "value": token}).to_string())
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    GithubStandIn { url: format!("http://127.0.0.1:{port}/_apis/token?api-version=2.0"), served }
}

#[test]
fn ci_jobs_log_in_with_github_and_gitlab_tokens_never_in_argv_or_environment() {
    let (gh, gl) = (Idp::start(), Idp::start());
    let github = Issuer::new(&gh.issuer())
        .set("audiences", [AUD])
        .set("algorithms", ALGS)
        .set("user_accounts", false)
        .require("repository_owner_id", "1342004");
    let gitlab = Issuer::new(&gl.issuer())
        .set("audiences", [AUD])
        .set("algorithms", ALGS)
        .set("user_accounts", false)
        .require("namespace_id", "6543210");
    let env = Env::new(
        Config::new()
            .issuer(github)
            .issuer(gitlab)
            .role_account(
                RoleAccount::new("deploy", &gh.issuer())
                    .require("repository", "acme/infra")
                    .require("ref", "refs/heads/main"),
            )
            .role_account(
                RoleAccount::new("deploy", &gl.issuer()).require("project_path", "acme/infra").require("ref", "main"),
            ),
    );
    let _h = env.start_helperd();
    env.wait_cached(&gh.issuer());
    env.wait_cached(&gl.issuer());
    let host = SshHost::start_with_locals(&env, &Stacks::standard(""), "");
    let home = TempDir::new("ci-home");
    let h = &home.0;

    // GitHub Actions: the runner's token service, asked for the hosts' audience.
    const BEARER: &str = "runner-request-token-7f3a";
    let svc = github_stand_in(gh.issuer(), BEARER, Duration::from_millis(1500));
    let gh_env = [
        ("GITHUB_ACTIONS", "true"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", svc.url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", BEARER),
    ];
    for (how, args) in
        [("--from github", vec!["--from", "github", "--audience", AUD]), ("auto-detected", vec!["--audience", AUD])]
    {
        let mut c = client(h, &gh_env);
        c.arg("ssh").args(&args).args(ssh_args(&host, "deploy", "id -un; sleep 1; echo RELEASED"));
        let (out, seen, leaks, _) = run_watched(c, vec![BEARER.into()]);
        assert!(out.status.success(), "{how}: {}\n{}", text(&out), host.syslog().join("\n"));
        assert!(text(&out).contains("deploy\nRELEASED"), "{how}: {}", text(&out));
        assert!(leaks.is_empty(), "{how}: a token or the request bearer in argv or environment: {leaks:#?}");
        // ssh ran, and its askpass child was seen (it waits for the token service).
        assert!(seen.iter().any(|s| s.comm == "ssh"), "{seen:#?}");
        assert!(
            seen.iter().any(|s| s.parent_comm == "ssh" && s.cmdline.contains("OIDC token")),
            "{how}: the askpass child was not seen: {seen:#?}"
        );
    }
    assert_eq!(svc.served.load(Ordering::SeqCst), 2, "one token per login");
    assert_eq!(logins(&host, "auth result=allow code=ok service=sshd user=deploy"), 2, "{}", host.syslog().join("\n"));
    // A wrong request token: refused by the token service, and said so.
    let mut bad = gh_env;
    bad[2].1 = "wrong";
    let out = client(h, &bad)
        .arg("ssh")
        .args(["--from", "github", "--audience", AUD])
        .args(ssh_args(&host, "deploy", "true"))
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("HTTP 401"), "{}", text(&out));

    // GitLab CI: the job's id_tokens variable; it is not passed on to ssh.
    let n = now();
    let gl_token = gl.sign(
        json!({"alg": "RS256"}),
        json!({"iss": gl.issuer(), "aud": AUD, "sub": "project_path:acme/infra:ref_type:branch:ref:main",
            "jti": "gl-1", "exp": n + 300, "iat": n - 5, "nbf": n - 5, "namespace_id": "6543210",
            "namespace_path": "acme", "project_path": "acme/infra", "ref": "main", "ref_type": "branch"}),
    );
    let mut c = client(h, &[("GITLAB_CI", "true"), ("PAM_OIDC_TOKEN", gl_token.as_str())]);
    c.arg("ssh").args(ssh_args(&host, "deploy", "id -un; env | grep -c 'e[y]J'; sleep 1; echo RELEASED"));
    let (out, seen, leaks, _) = run_watched(c, vec![gl_token.clone()]);
    assert!(out.status.success(), "gitlab: {}\n{}", text(&out), host.syslog().join("\n"));
    assert!(text(&out).contains("deploy\n0\nRELEASED"), "gitlab: {}", text(&out));
    assert!(leaks.is_empty(), "gitlab: {leaks:#?}");
    assert!(seen.iter().any(|s| s.comm == "ssh"), "{seen:#?}");
    assert_eq!(logins(&host, "auth result=allow code=ok service=sshd user=deploy"), 3, "{}", host.syslog().join("\n"));
}

#[test]
fn a_headless_login_uses_the_device_flow_and_token_prints_fresh_tokens() {
    let idp = Idp::start();
    let home = TempDir::new("device-home");
    let h = &home.0;
    let flags = ["--issuer", &idp.issuer(), "--client-id", "host-cli", "--scopes", "openid profile offline_access"];
    // No BROWSER, no DISPLAY: the device flow, its URL and code on stderr.
    let mut login = client(h, &[]).arg("login").args(flags).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(login.stderr.take().unwrap());
    let mut said = String::new();
    let code = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "no device code: {said}");
        said.push_str(&line);
        if let Some(c) = line.split("confirm the code ").nth(1) {
            break c.trim().to_string();
        }
    };
    assert!(said.contains(&format!("{}/device", idp.issuer())), "{said}");
    let r = ureq::get(&format!("{}/test/device?user_code={code}&user=bob&action=approve", idp.issuer()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(r.contains("\"done\":true"), "{r}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(login.wait().unwrap().success(), "{said}{rest}");
    assert!(rest.contains("logged in as bob"), "{rest}");

    // `token`: a fresh ID token each time (from the refresh token), for other tools.
    let mut seen = vec![];
    for _ in 0..2 {
        let out = client(h, &[]).arg("token").args(flags).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, t.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!((claims["preferred_username"].as_str(), claims["aud"].as_str()), (Some("bob"), Some("host-cli")));
        seen.push(t);
    }
    assert_ne!(seen[0], seen[1]);
    // `status` names the login, never a token.
    let out = client(h, &[]).arg("status").args(flags).output().unwrap();
    let s = text(&out);
    assert!(s.contains("logged in as: bob") && s.contains("refresh token: yes") && !s.contains("eyJ"), "{s}");
}
