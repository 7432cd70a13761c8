//! Issue 7 (faults): a byte-a-time IdP, helperd killed during a JWKS fetch, and a
//! full disk under the state directory — bounded time, consistent state, clear logs.

use integration::*;
use oidc_core::{ipc_call, Client, Helper as _, Request, Response};
use std::io::Write;
use std::time::{Duration, Instant};

/// An "IdP" that accepts, sends headers, then one byte every 200 ms.
fn trickling_idp() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let _ =
                    c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n");
                for _ in 0..100_000 {
                    if c.write_all(b" ").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
    });
    url
}

#[test]
fn a_byte_a_time_idp_is_cut_off_at_the_fetch_deadline() {
    let url = trickling_idp();
    let env = Env::new(Config::new().helperd("fetch_timeout_secs", 2).issuer(Issuer::standard(&url, &["RS256"])));
    let h = env.start_helperd();
    std::thread::sleep(Duration::from_millis(2500)); // the start-up fetch runs into the deadline too
    let t = Instant::now();
    let r = Client::new(&env.socket(), Duration::from_secs(10)).refresh_jwks(&url);
    let took = t.elapsed();
    assert!(r.is_err(), "{r:?}");
    assert!(took < Duration::from_secs(5), "took {took:?} with fetch_timeout_secs = 2");
    assert!(
        matches!(ipc_call(&env.socket(), &Request::Ping, Duration::from_secs(2)), Ok(Response::Pong { .. })),
        "helperd still serves"
    );
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(log.contains("jwks refresh failed") && log.contains("timeout"), "{log}");
}

#[test]
fn sigkill_during_a_jwks_fetch_leaves_no_torn_cache_and_a_restart_recovers() {
    let mut idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), &["RS256"])));
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let path = oidc_core::jwks_cache_path(&env.cache_dir(), &idp.issuer());
    let before = std::fs::read(&path).unwrap();
    // Rotate keys, ask for a refresh and kill helperd while it runs, many times.
    for i in 0..8 {
        let mut h = if i == 0 { None } else { Some(env.start_helperd()) };
        idp.restart();
        std::thread::sleep(Duration::from_millis(1100));
        let socket = env.socket();
        let iss = idp.issuer();
        let asker = std::thread::spawn(move || Client::new(&socket, Duration::from_secs(3)).refresh_jwks(&iss));
        std::thread::sleep(Duration::from_millis(3 * i));
        if let Some(h) = h.as_mut() {
            h.stop();
        }
        let _ = asker.join();
        let bytes = std::fs::read(&path).unwrap();
        assert!(oidc_core::read_jwks_cache(&env.cache_dir(), &idp.issuer()).is_ok(), "round {i}: torn cache");
        assert!(!bytes.is_empty());
        let leftovers: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(leftovers.len() <= 2, "round {i}: {leftovers:?}");
    }
    drop(h);
    let _h = env.start_helperd();
    let r = Client::new(&env.socket(), Duration::from_secs(5)).refresh_jwks(&idp.issuer());
    assert!(r.is_ok() || r.as_ref().is_err_and(|e| e.contains("rate-limited")), "{r:?}");
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    let _ = before;
}

#[test]
fn a_full_state_disk_refuses_cleanly_and_keeps_the_last_good_store() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), &["RS256"])));
    let state = env.dir.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // helperd in a private mount namespace whose state dir is a 48 KiB tmpfs.
    let log = env.dir.0.join("helperd-full.log");
    let mut child = die_with_parent(&mut std::process::Command::new("unshare"))
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -n -t tmpfs -o size=48k tmpfs {} && exec {} --config {} run",
            state.display(),
            helperd_bin().display(),
            env.config.display()
        ))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while ipc_call(&env.socket(), &Request::Ping, Duration::from_secs(1)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "helperd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut refused = None;
    for i in 0..2000 {
        let req =
            login_request(&idp.issuer(), &format!("s-{i}"), &format!("user{i}"), &["devs".into()], &"x".repeat(100));
        match ipc_call(&env.socket(), &req, Duration::from_secs(5)) {
            Ok(Response::Admitted { .. }) => {}
            Ok(Response::Refused { code, reason }) => {
                refused = Some((i, code, reason));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let (n, code, reason) = refused.expect("the 48 KiB disk fills up");
    assert_eq!(code, oidc_core::RefusalCode::AccountsUnavailable);
    assert!(reason.contains("No space left"), "{reason}");
    // The store on the full disk is read through the namespace's mount: check from inside.
    let out = std::process::Command::new("nsenter")
        .args(["-t", &child.id().to_string(), "-m", "cat"])
        .arg(state.join("accounts.json"))
        .output()
        .unwrap();
    let store: oidc_core::Store = serde_json::from_slice(&out.stdout).expect("the last good store parses");
    assert_eq!(store.users.len(), n, "every admitted login is in it, the refused one is not");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("No space left on device"), "{text}");
}

/// An "IdP" whose JWKS endpoint misbehaves on demand; discovery always answers.
/// Modes: 0 good (the real IdP's keys), 1 HTTP 500, 2 an HTML error page with
/// status 200, 3 a JWKS whose keys are garbage, 4 truncated JSON.
fn switchable_idp(good_jwks: String, mode: std::sync::Arc<std::sync::atomic::AtomicU8>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let base = url.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (good, mode, base) = (good_jwks.clone(), mode.clone(), base.clone());
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader};
                let mut c = c;
                let mut line = String::new();
                let mut r = BufReader::new(c.try_clone().unwrap());
                let _ = r.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let (status, ctype, body) = if line.contains("/.well-known/openid-configuration") {
                    ("200 OK", "application/json", format!(r#"{{"issuer":"{base}","jwks_uri":"{base}/jwks"}}"#))
                } else {
                    match mode.load(std::sync::atomic::Ordering::SeqCst) {
                        0 => ("200 OK", "application/json", good),
                        1 => ("500 Internal Server Error", "text/plain", "upstream exploded".into()),
                        2 => ("200 OK", "text/html", "<html><body><h1>Sign in to continue</h1></body></html>".into()),
                        3 => ("200 OK", "application/json", r#"{"keys":[{"kty":"RSA","kid":"k","n":"!!!","e":"AQAB"},{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"}]}"#.into()),
                        _ => ("200 OK", "application/json", r#"{"keys":[{"kty":"RSA","#.into()),
                    }
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

#[test]
fn an_idp_answering_500_html_or_garbage_keys_never_replaces_good_keys() {
    use std::sync::atomic::{AtomicU8, Ordering};
    let idp = Idp::start();
    let mode = std::sync::Arc::new(AtomicU8::new(0));
    let url = switchable_idp(idp.jwks().to_string(), mode.clone());
    let kid = idp.jwks()["keys"].as_array().unwrap().iter().find(|k| k["alg"] == "RS256").unwrap()["kid"].clone();
    let token_for = |user: &str| {
        let mut c = idp.claims(user, "host-login");
        c["iss"] = url.clone().into();
        idp.sign(serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), c)
    };
    let env = Env::new(Config::new().issuer(Issuer::standard(&url, &["RS256"])));
    let h = env.start_helperd();
    env.wait_cached(&url);
    let cache = oidc_core::jwks_cache_path(&env.cache_dir(), &url);
    let good = std::fs::read(&cache).unwrap();
    env.pam("alice", &token_for("alice")).assert_allowed();
    for (m, what, needle) in [
        (1, "HTTP 500", "500"),
        (2, "an HTML page", "not JSON"),
        (3, "garbage keys", "no usable signing keys"),
        (4, "truncated JSON", "not JSON"),
    ] {
        mode.store(m, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1100)); // past jwks_refresh_min_interval_secs = 1
        let r = Client::new(&env.socket(), Duration::from_secs(10)).refresh_jwks(&url);
        let err = r.expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(std::fs::read(&cache).unwrap(), good, "{what} replaced the cached keys");
        // Logins go on with the cached keys.
        env.pam("alice", &token_for("alice")).assert_allowed();
    }
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(log.contains("500") && log.contains("not JSON") && log.contains("no usable signing keys"), "{log}");

    // With no cache at all, the same faults refuse the login with the reason logged.
    mode.store(1, Ordering::SeqCst);
    let env2 = Env::new(Config::new().issuer(Issuer::standard(&url, &["RS256"])));
    let _h2 = env2.start_helperd();
    let r = env2.pam("alice", &token_for("alice"));
    r.assert_denied("keys-unavailable");
    assert!(r.log().iter().any(|l| l.contains("500")), "{}", r.stderr);
}
