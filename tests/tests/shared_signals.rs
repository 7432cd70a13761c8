//! Issue 15, part 3: RFC 8936 poll-based SET delivery against a stand-in
//! transmitter (tests/fixtures/ssf_transmitter.py) on loopback. helperd
//! refuses to start with a token file others can read; then a CAEP
//! session-revoked SET ends the subject's live session (opened through the
//! root socket) and is acknowledged; a RISC account-disabled SET locks the
//! identity (`helperd locks`: source ssf; new logins refused) and ends its
//! session; a SET for another audience is reported in setErrs, not applied;
//! account-enabled lifts the lock. Prints the time from the SET being queued
//! to the session's end.

use integration::*;
use oidc_core::{ipc_call, RefusalCode, Request, Response};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ISSUER: &str = "http://127.0.0.1:9";
const AUD: &str = "https://hosts.test";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes-long";
const POLL: u64 = 5;

struct Transmitter {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Drop for Transmitter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Transmitter {
    fn start() -> Transmitter {
        let dir = TempDir::new("ssf");
        std::fs::write(dir.0.join("token"), "stream-token").unwrap();
        let port = free_port();
        let child = die_with_parent(&mut Command::new("/usr/bin/python3"))
            .arg(root().join("tests/fixtures/ssf_transmitter.py"))
            .args([&port.to_string(), &dir.0.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "transmitter did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Transmitter { child, port, dir }
    }

    fn enqueue(&self, jti: &str, event: &str, sub: &str, aud: &str) -> Instant {
        let claims = json!({
            "iss": ISSUER, "aud": aud, "iat": now(), "jti": jti,
            "events": {event: {"subject": {"format": "iss_sub", "iss": ISSUER, "sub": sub}}},
        });
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some("secevent+jwt".into());
        let set =
            oidc_core::crypto::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
        let url = format!("http://127.0.0.1:{}/enqueue", self.port);
        ureq::post(&url).send(json!({ jti: set }).to_string()).unwrap();
        Instant::now()
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.0.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_request(&self, what: &str, ok: impl Fn(&Value) -> bool) {
        let t = Instant::now();
        while !self.requests().iter().any(&ok) {
            assert!(t.elapsed() < Duration::from_secs(POLL + 10), "no request {what}: {:?}", self.requests());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn ask(root_socket: &Path, r: &Request) -> Response {
    ipc_call(root_socket, r, Duration::from_secs(5)).unwrap()
}

fn login(root_socket: &Path, name: &str) -> Response {
    ask(root_socket, &login_request(ISSUER, &format!("sub-{name}"), name, &[], ""))
}

/// alice logs in and opens a session held by a child process.
fn session(root_socket: &Path) -> Child {
    let Response::Admitted { login_id, .. } = login(root_socket, "alice") else { panic!("alice not admitted") };
    let shell = Command::new("sleep").arg("300").spawn().unwrap();
    let r = ask(
        root_socket,
        &Request::OpenSession {
            login_id,
            pid: shell.id() as i32,
            tty: "pts/3".into(),
            rhost: "198.51.100.9".into(),
            end_at_expiry: false,
        },
    );
    assert!(matches!(r, Response::SessionOpened { .. }), "{r:?}");
    shell
}

fn ends_within(shell: &mut Child, since: Instant, log: &Path) -> Duration {
    loop {
        if shell.try_wait().unwrap().is_some() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(POLL + 10),
            "still running: {}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn caep_and_risc_events_end_sessions_and_lock_until_enabled() {
    let tx = Transmitter::start();
    let env = Env::new(Config::new());
    let secret = env.dir.0.join("hmac.key");
    private(&secret, SECRET, 0o600);
    let token: PathBuf = env.dir.0.join("ssf.token");
    private(&token, "stream-token\n", 0o644);
    env.edit(|c| {
        c.issuer(Issuer::standard(ISSUER, &["HS256"]).set("hmac_secret_file", secret.clone())).raw(&format!(
            "\n[[locks.ssf]]\nissuer = \"{ISSUER}\"\npoll_url = \"http://127.0.0.1:{}/poll\"\naudience = \"{AUD}\"\n\
             token_file = \"{}\"\npoll_secs = {POLL}\n",
            tx.port,
            token.display()
        ))
    });
    // A bearer token others can read: helperd does not start.
    let out = Command::new(helperd_bin())
        .args(["--config".as_ref(), env.config.as_os_str(), "run".as_ref()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let h = env.start_helperd();
    let rs = env.dir.0.join("helperd-root.sock");
    tx.wait_request("the first poll", |r| r["maxEvents"] == json!(100) && r["returnImmediately"] == json!(true));

    // CAEP session-revoked: the session ends, the SET is acknowledged, no lock.
    let mut shell = session(&rs);
    let queued = tx.enqueue("set-1", oidc_core::SESSION_REVOKED, "sub-alice", AUD);
    let took = ends_within(&mut shell, queued, &h.log);
    println!("SET queued -> session ended: {} ms (poll_secs = {POLL})", took.as_millis());
    tx.wait_request("acking set-1", |r| r["ack"] == json!(["set-1"]));
    let mut shell = session(&rs);

    // RISC account-disabled: locked (source ssf), the session ends, logins refused.
    let queued = tx.enqueue("set-2", oidc_core::ACCOUNT_DISABLED, "sub-alice", AUD);
    let took = ends_within(&mut shell, queued, &h.log);
    println!("SET queued -> account locked, session ended: {} ms", took.as_millis());
    assert!(matches!(login(&rs, "alice"), Response::Refused { code: RefusalCode::Locked, .. }));
    let locks = Command::new(helperd_bin())
        .args(["--config".as_ref(), env.config.as_os_str(), "locks".as_ref()])
        .output()
        .unwrap();
    let locks = String::from_utf8_lossy(&locks.stdout);
    assert!(locks.contains("ssf") && locks.contains("identity http://127.0.0.1:9 sub sub-alice"), "{locks}");

    // Another audience: reported, not applied.
    tx.enqueue("set-3", oidc_core::ACCOUNT_ENABLED, "sub-alice", "https://other.test");
    tx.wait_request("setErrs for set-3", |r| r["setErrs"]["set-3"]["err"] == json!("invalid_audience"));
    assert!(matches!(login(&rs, "alice"), Response::Refused { code: RefusalCode::Locked, .. }));

    // RISC account-enabled: the lock is lifted.
    tx.enqueue("set-4", oidc_core::ACCOUNT_ENABLED, "sub-alice", AUD);
    tx.wait_request("acking set-4", |r| r["ack"] == json!(["set-4"]));
    assert!(matches!(login(&rs, "alice"), Response::Admitted { .. }));
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(log.contains("session-revoked SET set-1") && log.contains("ssf lock(s) lifted (account-enabled)"), "{log}");
}
