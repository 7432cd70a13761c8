//! Revocation benchmark (run by scripts/bench as root): how long from a
//! revocation event to the session's end — its opening process gone and its
//! claims refused.
//!
//!   revoke-bench HELPERD WORKDIR ROUNDS
//!
//! Starts its own helperd (a role account `deploy`, `[sessions] on_expiry =
//! "end"`, grace 0, kill_after 1 s) on WORKDIR, and for each round opens a
//! session through the root socket whose opening process is a child `sleep`:
//!   * `lock`: `Request::Lock` of the session's login name → the child is reaped;
//!   * `expiry`: a session whose token expires 1–2 s ahead → from the `exp`
//!     second to the child reaped (helperd checks deadlines once a second);
//!   * `backchannel-logout`: a signed logout token POSTed to helperd's
//!     listener (HS256 issuer: the bench signs it) → the child reaped.
//!
//! Prints `event=lock n=… p50_ms=… max_ms=…` lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench tool

use oidc_core::{ipc_call, LockTarget, Request, Response, SessionClaims};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ISS: &str = "https://bench.invalid";
const HMAC: &str = "revoke-bench-shared-secret-of-32-bytes-or-more";

fn now_f() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn call(sock: &Path, r: &Request) -> Response {
    ipc_call(sock, r, Duration::from_secs(10)).unwrap()
}

/// A role login of `name` into deploy whose token expires at `exp`, bound to a new `sleep` child.
fn session(sock: &Path, name: &str, exp: i64) -> Child {
    let claims = SessionClaims {
        issuer: ISS.into(),
        sub: format!("sub-{name}"),
        account: "deploy".into(),
        identity: name.into(),
        groups: vec![],
        idp_groups: vec![],
        jti: None,
        exp,
        iat: exp - 60,
        auth_time: None,
        acr: None,
        verified_at: 0,
        identity_id: String::new(),
        sid: None,
    };
    let login = Request::Login { event: None, claims, web_token: None, role_groups: vec![], replay_id: None };
    let Response::Admitted { login_id, .. } = call(sock, &login) else { panic!("login refused") };
    let child = Command::new("sleep").arg("120").spawn().unwrap();
    let open = Request::OpenSession {
        login_id,
        pid: child.id() as i32,
        tty: String::new(),
        rhost: String::new(),
        end_at_expiry: false,
    };
    assert!(matches!(call(sock, &open), Response::SessionOpened { .. }));
    child
}

fn reaped(c: &mut Child) -> f64 {
    c.wait().unwrap();
    now_f()
}

fn report(event: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!("event={event} n={} p50_ms={:.1} max_ms={:.1}", ms.len(), ms[ms.len() / 2], ms[ms.len() - 1]);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (helperd, dir, rounds) = (PathBuf::from(&a[1]), PathBuf::from(&a[2]), a[3].parse::<usize>().unwrap());
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(dir.join("passwd"), "root:x:0:0::/root:/bin/sh\ndeploy:x:64990:64990::/tmp:/bin/sh\n").unwrap();
    std::fs::write(dir.join("group"), "root:x:0:\n").unwrap();
    let key = dir.join("hmac.key");
    std::fs::write(&key, format!("{HMAC}\n")).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let port = integration::free_port();
    let d = dir.display();
    let config = format!(
        "version = 1\n[helperd]\nsocket = \"{d}/helperd.sock\"\ncache_dir = \"{d}/cache\"\nstate_dir = \"{d}/state\"\n\
         nss_snapshot = \"{d}/nss.snapshot\"\n[accounts]\nid_key_file = \"{d}/id.key\"\npasswd_file = \"{d}/passwd\"\n\
         group_file = \"{d}/group\"\n[sessions]\non_expiry = \"end\"\ngrace_secs = 0\nkill_after_secs = 1\n\
         [backchannel_logout]\nlisten = \"127.0.0.1:{port}\"\n\
         [[issuer]]\nurl = \"{ISS}\"\naudiences = [\"bench\"]\nuser_accounts = false\nleeway_secs = 0\n\
         algorithms = [\"HS256\"]\nhmac_secret_file = \"{d}/hmac.key\"\n\
         [[role_account]]\nname = \"deploy\"\nissuer = \"{ISS}\"\nrequire = {{ repository = \"x\" }}\n"
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let mut h = Command::new(&helperd);
    h.arg("--config").arg(dir.join("config.toml")).arg("run");
    integration::die_with_parent(&mut h);
    let mut h = h.stderr(std::fs::File::create(dir.join("helperd.log")).unwrap()).spawn().unwrap();
    let sock = dir.join("helperd-root.sock");
    let t = Instant::now();
    while ipc_call(&sock, &Request::Ping, Duration::from_secs(1)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "helperd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let far = now_f() as i64 + 3600;

    let mut ms = vec![];
    for i in 0..rounds {
        let name = format!("alice{i}");
        let mut c = session(&sock, &name, far);
        let t0 = now_f();
        let lock = Request::Lock { target: LockTarget::Name { name }, reason: "bench".into(), by: String::new() };
        assert!(matches!(call(&sock, &lock), Response::Locked { .. }));
        ms.push((reaped(&mut c) - t0) * 1000.0);
    }
    report("lock", ms);

    // Tokens expiring at the next whole seconds; each session ends once its exp has passed.
    let exp = now_f().ceil() as i64 + 2;
    let mut children: Vec<(i64, Child)> =
        (0..rounds).map(|i| (exp + (i % 2) as i64, session(&sock, &format!("bob{i}"), exp + (i % 2) as i64))).collect();
    let ms: Vec<f64> = children.iter_mut().map(|(e, c)| (reaped(c) - *e as f64) * 1000.0).collect();
    report("expiry", ms);

    let mut ms = vec![];
    for i in 0..rounds {
        let name = format!("carol{i}");
        let mut c = session(&sock, &name, far);
        let claims = serde_json::json!({
            "iss": ISS, "aud": "bench", "iat": now_f() as i64, "jti": format!("logout-{i}-{}", std::process::id()),
            "sub": format!("sub-{name}"),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        let token = oidc_core::crypto::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
        )
        .unwrap();
        let t0 = now_f();
        let r = ureq::post(&format!("http://127.0.0.1:{port}/backchannel-logout"))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("logout_token={token}"));
        assert!(r.is_ok_and(|r| r.status() == 200), "logout token refused (see {}/helperd.log)", dir.display());
        ms.push((reaped(&mut c) - t0) * 1000.0);
    }
    report("backchannel-logout", ms);
    let _ = h.kill();
    let _ = h.wait();
}
