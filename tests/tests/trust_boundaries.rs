//! Issue 12: trust boundaries — what an unprivileged local user, a logged-in
//! OIDC user or a remote client can do to helperd and the module, tried as
//! they would, through the real module, helperd and IdP.

use integration::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const ALGS: &[&str] = &["RS256", "ES256"];

fn setup() -> (Idp, Env, Helperd) {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    (idp, env, h)
}

fn rs(idp: &Idp, claims: Value) -> String {
    idp.sign(json!({"alg": "RS256"}), claims)
}

/// One raw frame to helperd's socket; the answer's bytes (if any).
fn raw_frame(sock: &std::path::Path, body: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    s.write_all(&f).unwrap();
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    out
}

/// Item 4: nothing a client sends can start a line in helperd's log.
#[test]
fn log_lines_cannot_be_forged() {
    let (_idp, env, h) = setup();
    let forged = "helperd[1] info: account created name=root";
    let body = format!(r#"{{"v":1,"body":{{"op":"x\n{forged}\r\u001b[2K"}}}}"#);
    raw_frame(&env.socket(), body.as_bytes());
    let body = json!({"v": 1, "body": {"op": "refresh_jwks", "issuer": format!("https://x\n{forged}")}}).to_string();
    raw_frame(&env.socket(), body.as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(log.contains("bad request from uid=0"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with(forged), "forged line: {line:?}\n{log}");
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "control characters: {line:?}");
    }
}

/// Item 8: a token within the issuer's leeway is accepted all the way (the
/// verifier and the stack's demands agree); `alg: none` is named as such.
#[test]
fn leeway_holds_end_to_end_and_alg_none_is_named() {
    let (idp, env, _h) = setup();
    let mut c = idp.claims("alice", "host-login");
    c["exp"] = json!(now() - 2); // Env's issuer has leeway_secs = 5
    env.pam("alice", &rs(&idp, c)).assert_allowed();
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&idp.claims("alice", "host-login").to_string()));
    env.pam("alice", &unsigned).assert_denied("alg-none");
}

/// Item 7: `max_age=` needs `auth_time`; a refreshed ID token (new `iat`, no
/// `auth_time`) does not pass as a fresh authentication unless configured.
#[test]
fn max_age_needs_auth_time_unless_configured() {
    let (idp, env, _h) = setup();
    let so = module_so();
    let claims = |auth_time: Option<i64>| {
        let mut c = idp.claims("alice", "host-login"); // a fresh jti each time
        c["iat"] = json!(now());
        if let Some(t) = auth_time {
            c["auth_time"] = json!(t);
        }
        c
    };
    let no_auth_time = rs(&idp, claims(None));
    let r = env.pam_with(&so, "max_age=900", "alice", &no_auth_time);
    r.assert_denied("step-up-failed");
    assert!(r.stderr.contains("needs auth_time"), "{}", r.stderr);
    env.pam_with(&so, "max_age=900", "alice", &rs(&idp, claims(Some(now() - 60)))).assert_allowed();
    env.pam_with(&so, "max_age=900", "alice", &rs(&idp, claims(Some(now() - 1000)))).assert_denied("step-up-failed");
    // Real IdP tokens carry auth_time (the client requires it).
    env.pam_with(&so, "max_age=900", "alice", &idp.token("host-login", "alice")).assert_allowed();
    env.edit(|c| c.pam("max_age_uses_iat", true));
    env.pam_with(&so, "max_age=900", "alice", &no_auth_time).assert_allowed();
}

/// Run a command as uid/gid 65534 (an unprivileged local user).
fn as_nobody(argv: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(argv)
        .output()
        .unwrap()
}

/// Item 3: the account list (identities, GECOS, login times) is root's; it
/// lists any number of accounts (pages below the 64 KiB frame).
#[test]
fn users_is_root_only_and_lists_every_account() {
    let (_idp, env, _h) = setup();
    let issuer = std::fs::read_to_string(&env.config).unwrap();
    let issuer = issuer.split("url = \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let groups: Vec<String> = (0..8).map(|i| format!("team-{i}")).collect();
    for i in 0..600 {
        let name = format!("user{i:04}");
        let gecos = format!("A rather long display name for user number {i:04}, Department of Examples");
        let r = oidc_core::ipc_call(
            &env.socket(),
            &login_request(&issuer, &format!("sub-{i}"), &name, &groups, &gecos),
            Duration::from_secs(5),
        );
        assert!(matches!(r, Ok(oidc_core::Response::Admitted { .. })), "{i}: {r:?}");
    }
    let cfg = env.config.display().to_string();
    // Make the socket's directory reachable for the unprivileged caller.
    let out = as_nobody(&[helperd_bin().to_str().unwrap(), "--config", &cfg, "users"]);
    assert!(!out.status.success(), "users served to uid 65534");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only root"), "{out:?}");
    let out = std::process::Command::new(helperd_bin()).args(["--config", &cfg, "users"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("user")).count(), 600, "{}", &text[..400.min(text.len())]);
    let out = std::process::Command::new(helperd_bin()).args(["--config", &cfg, "sessions"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Item 12: pam_oidc.so carries no NSS entry point (the snapshot code it needs
/// lives in its own crate); libnss_oidc.so.2 carries them all.
#[test]
fn the_pam_module_exports_no_nss_entry_point() {
    let syms = |so: &std::path::Path| {
        let out = std::process::Command::new("nm").args(["-D", "--defined-only"]).arg(so).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pam = syms(&module_so());
    assert!(pam.contains("pam_sm_authenticate") && pam.contains("pam_sm_open_session"), "{pam}");
    assert!(!pam.contains("_nss_"), "NSS symbols in pam_oidc.so:\n{pam}");
    let nss = syms(&nss_so());
    assert_eq!(nss.matches(" T _nss_oidc_").count(), 11, "{nss}");
}

/// Item 6: each token logs in once on a host — with or without `jti`, across
/// a helperd restart — and the default lifetime cap is an hour.
#[test]
fn a_token_logs_in_once() {
    let (idp, env, mut h) = setup();
    let t = idp.token("host-login", "alice"); // a real IdP token (no jti: its signature counts)
    env.pam("alice", &t).assert_allowed();
    let r = env.pam("alice", &t);
    r.assert_denied("replayed");
    assert!(r.stdout.contains("already used") || r.stderr.contains("already used"), "{}", r.stderr);
    let with_jti = rs(&idp, idp.claims("alice", "host-login"));
    env.pam("alice", &with_jti).assert_allowed();
    h.stop();
    let _h = env.start_helperd();
    env.pam("alice", &with_jti).assert_denied("replayed");
    env.pam("alice", &t).assert_denied("replayed");
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    let mut long = idp.claims("alice", "host-login");
    long["exp"] = json!(now() + 7200);
    env.pam("alice", &rs(&idp, long)).assert_denied("lifetime-too-long");
}

/// Item 1: an unprivileged user who fills the public socket with idle
/// connections delays no root decision; other users keep their own quota;
/// the refusals are logged at a bounded rate.
#[test]
fn an_unprivileged_user_cannot_stall_root_logins() {
    let (idp, env, h) = setup();
    let script = format!(
        "import socket,time\nss=[]\nfor i in range(300):\n  s=socket.socket(socket.AF_UNIX)\n  try:\n    s.connect('{}')\n    ss.append(s)\n  except Exception:\n    pass\nprint('held', len(ss), flush=True)\ntime.sleep(60)\n",
        env.socket().display()
    );
    let mut hog = die_with_parent(&mut std::process::Command::new("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(hog.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("held"), "{line}");
    // A new user's login needs helperd (admission) within ipc_timeout_ms: it completes.
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    env.pam("bob", &idp.token("host-login", "bob")).assert_allowed();
    // Another unprivileged uid still gets its own share of the public socket.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65533", "--regid=65533", "--clear-groups"])
        .arg(helperd_bin())
        .args(["--config", &env.config.display().to_string(), "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _ = hog.kill();
    let _ = hog.wait();
    let log = std::fs::read_to_string(&h.log).unwrap();
    let refused = log.lines().filter(|l| l.contains("refused a connection from uid=65534")).count();
    assert!((1..=10).contains(&refused), "{refused} lines: logging is rate-limited\n{log}");
}

/// Item 2: device-code flows (anyone who reaches port 22 can start one) are
/// capped in all and per remote host, and waiting ones hold no connection slot.
#[test]
fn device_flows_are_capped_and_wait_outside_the_pool() {
    use oidc_core::{ipc_call, Request, Response};
    let idp = Idp::start();
    let issuer = Issuer::standard(&idp.issuer(), ALGS)
        .set("audiences", ["host-login", "host-device"])
        .set("device_client_id", "host-device");
    let env = Env::new(
        Config::new()
            .helperd("max_connections", 8)
            .helperd("max_device_flows", 12)
            .helperd("max_device_flows_per_host", 3)
            .issuer(issuer),
    );
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let root_sock = env.dir.0.join("helperd-root.sock");
    let start = |rhost: &str| {
        ipc_call(
            &root_sock,
            &Request::DeviceStart { issuer: idp.issuer(), rhost: rhost.into() },
            Duration::from_secs(10),
        )
        .unwrap()
    };
    let mut flows = vec![];
    for i in 0..5 {
        match start("203.0.113.7") {
            Response::DeviceStarted { flow_id, .. } => flows.push(flow_id),
            Response::DeviceFailed { code, reason } => {
                assert!(
                    i >= 3 && code == oidc_core::DeviceFailure::Busy && reason.contains("203.0.113.7"),
                    "{i}: {reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(flows.len(), 3, "per remote host");
    for i in 0..20 {
        match start(&format!("198.51.100.{i}")) {
            Response::DeviceStarted { flow_id, .. } => flows.push(flow_id),
            Response::DeviceFailed { code, .. } => assert_eq!(code, oidc_core::DeviceFailure::Busy),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(flows.len(), 12, "in all");
    // Twelve waits, more than the 8 root connections: none holds a slot.
    let waiters: Vec<_> = flows
        .iter()
        .map(|f| {
            let (sock, f) = (root_sock.clone(), f.clone());
            std::thread::spawn(move || {
                ipc_call(&sock, &Request::DeviceWait { flow_id: f, timeout_secs: 6 }, Duration::from_secs(10))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    for w in waiters {
        assert!(matches!(w.join().unwrap(), Ok(Response::DeviceFailed { .. })));
    }
}

/// Issue 12 (9): an HMAC secret file is used only while it is private and root's
/// (needs root to own and chown the file; the heavy tier runs as root).
#[test]
fn hmac_secret_file_must_be_private_and_roots() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("hmac");
    let key = dir.0.join("hmac.key");
    std::fs::write(&key, "a-shared-secret-of-at-least-32-bytes\n").unwrap();
    let text = format!(
        "version = 1\n[helperd]\ncache_dir = \"{}\"\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
         algorithms = [\"HS256\"]\nhmac_secret_file = \"{}\"\n",
        dir.0.display(),
        key.display()
    );
    let cfg = oidc_core::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let now = 1_800_000_000;
    let claims = json!({"iss": "https://idp.test", "sub": "s", "aud": "a", "exp": now + 60, "iat": now,
        "preferred_username": "alice"});
    let tok = oidc_core::crypto::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"a-shared-secret-of-at-least-32-bytes"),
    )
    .unwrap();
    let mut no_refresh = |_: &str| Err("none".to_string());
    let mut verify = || oidc_core::verify_token(&cfg, &tok, now, &mut no_refresh).result;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(verify().unwrap_err().code(), "config-error");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(verify().unwrap().username, "alice");
    // A private file that root does not own is refused too.
    std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
    let e = verify().unwrap_err();
    assert!(e.code() == "config-error" && e.to_string().contains("not root"), "{e}");
}
