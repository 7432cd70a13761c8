//! Issue 15, part 3: the fleet lock list. helperd polls an object in moto S3
//! (signature and IAM checking on; the instance role — an IAM user served by
//! the strict IMDSv2 test server — may only s3:GetObject that key): a name
//! added there is locked on the host within one poll (`helperd locks` shows
//! it, `unlock` cannot lift it, a new login is refused) and the live session
//! opened through the root socket ends; a malformed list changes nothing; a
//! name removed is unlocked. Prints the time from the upload to the session's
//! end (docs/benchmarks.md).

use integration::aws::{Imds, Moto};
use integration::*;
use oidc_core::{ipc_call, RefusalCode, Request, Response};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BUCKET: &str = "fleet-locks";
const KEY: &str = "prod/locks.json";
const ISSUER: &str = "http://127.0.0.1:9";
const POLL: u64 = 5;

fn s3(args: &[&str]) -> String {
    let out = Command::new(root().join(".venv/bin/python3"))
        .arg(root().join("tests/fixtures/fleet_s3.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "fleet_s3.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct World {
    moto: Moto,
    _imds: Imds,
    admin: String,
    env: Env,
    h: Helperd,
}

/// Upload `body` as the list (as the admin user); when it was in place.
fn put(moto: &Moto, admin: &str, env: &Env, body: &str) -> Instant {
    let f = env.dir.0.join("list.json");
    std::fs::write(&f, body).unwrap();
    s3(&["put", &moto.url(), BUCKET, KEY, admin, &f.display().to_string()]);
    Instant::now()
}

impl World {
    fn put(&self, body: &str) -> Instant {
        put(&self.moto, &self.admin, &self.env, body)
    }

    fn root_socket(&self) -> PathBuf {
        self.env.dir.0.join("helperd-root.sock")
    }

    fn ask(&self, r: &Request) -> Response {
        ipc_call(&self.root_socket(), r, Duration::from_secs(5)).unwrap()
    }

    fn login(&self, name: &str) -> Response {
        self.ask(&login_request(ISSUER, &format!("sub-{name}"), name, &[], ""))
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(helperd_bin())
            .args(["--config".as_ref(), self.env.config.as_os_str()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.h.log).unwrap()
    }

    fn wait_log(&self, what: &str, n: usize) {
        let t = Instant::now();
        while self.log().matches(what).count() < n {
            assert!(t.elapsed() < Duration::from_secs(3 * POLL + 10), "no {what:?} (x{n}) in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> Value {
        std::fs::read(self.env.dir.0.join("state/fleet-status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }
}

fn world() -> World {
    let moto = Moto::start(false);
    let admin = s3(&["setup", &moto.url(), BUCKET, KEY]).trim().to_string();
    let imds = Imds::start(&moto.instance_key, "v2");
    let env = Env::new(Config::new().issuer(Issuer::standard(ISSUER, &["RS256"])));
    env.edit(|c| {
        c.aws("region", "us-east-1").aws("imds_endpoint", imds.url()).raw(&format!(
            "\n[locks]\nfleet_list = \"s3://{BUCKET}/{KEY}\"\ns3_endpoint = \"{}\"\npoll_secs = {POLL}\n",
            moto.url()
        ))
    });
    put(&moto, &admin, &env, r#"{"version":1,"locks":[]}"#);
    // From here on moto checks every signature and IAM policy.
    ureq::post(&format!("{}/moto-api/reset-auth", moto.url())).send("0").unwrap();
    let h = env.start_helperd();
    World { moto, _imds: imds, admin, env, h }
}

#[test]
fn a_name_on_the_fleet_list_is_locked_within_one_poll_and_its_session_ends() {
    let w = world();
    let t = Instant::now();
    while w.status()["last_ok"].as_i64().is_none() {
        assert!(t.elapsed() < Duration::from_secs(15), "first poll: {} {}", w.status(), w.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // alice logs in and her session is open (a process standing in for sshd's monitor).
    let Response::Admitted { login_id, .. } = w.login("alice") else { panic!("alice: {}", w.log()) };
    let mut shell = Command::new("sleep").arg("300").spawn().unwrap();
    let opened = w.ask(&Request::OpenSession {
        login_id,
        pid: shell.id() as i32,
        tty: "pts/7".into(),
        rhost: "198.51.100.7".into(),
        end_at_expiry: false,
    });
    assert!(matches!(opened, Response::SessionOpened { .. }), "{opened:?}");

    // The fleet locks alice: her session ends within one poll.
    let uploaded = w.put(r#"{"version":1,"locks":[{"name":"alice","reason":"left the company"}]}"#);
    let ended = loop {
        if shell.try_wait().unwrap().is_some() {
            break uploaded.elapsed();
        }
        assert!(uploaded.elapsed() < Duration::from_secs(POLL + 10), "alice's session still runs: {}", w.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("fleet list changed in S3 -> session ended: {} ms (poll_secs = {POLL})", ended.as_millis());
    assert!(ended < Duration::from_secs(POLL + 5), "{ended:?}");
    // The poller logs what it applied once the sessions it ended are gone:
    // the line may follow the process's end by a moment.
    let applied = |log: &str| {
        log.contains("fleet lock list s3://fleet-locks/prod/locks.json applied: 1 entries; added 1: [name alice]")
            && log.contains("1 live session(s) ended")
    };
    let t = std::time::Instant::now();
    while !applied(&w.log()) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = w.log();
    assert!(applied(&log), "{log}");
    let (_, locks) = w.cli(&["locks"]);
    assert!(locks.contains("fleet") && locks.contains("name alice") && locks.contains("left the company"), "{locks}");
    let (ok, out) = w.cli(&["unlock", "alice"]);
    assert!(!ok && out.contains("fleet list locks end when the list drops them"), "{out}");
    match w.login("alice") {
        Response::Refused { code: RefusalCode::Locked, .. } => {}
        other => panic!("alice logged in while locked: {other:?}"),
    }
    assert!(matches!(w.login("bob"), Response::Admitted { .. }), "others are not locked");

    // A malformed list changes nothing: alice stays locked.
    w.put(r#"{"version":1,"locks":[{"name":"bob","typo":1}]}"#);
    w.wait_log("not applied", 1);
    assert!(matches!(w.login("alice"), Response::Refused { code: RefusalCode::Locked, .. }));
    assert!(matches!(w.login("bob"), Response::Admitted { .. }));
    assert!(w.status()["last_error"].as_str().unwrap().contains("unknown field"), "{}", w.status());

    // Removed from the list: unlocked within one poll (after the backoff of one failure).
    let removed = w.put(r#"{"version":1,"locks":[]}"#);
    w.wait_log("removed 1: [name alice]", 1);
    println!("fleet list changed in S3 -> lock lifted: {} ms", removed.elapsed().as_millis());
    assert!(matches!(w.login("alice"), Response::Admitted { .. }));
    let (_, locks) = w.cli(&["locks"]);
    assert!(!locks.contains("name alice"), "{locks}");
    let _ = shell.wait();
}
