//! AWS peers on loopback: moto (STS + IAM, from the project's venv) and a
//! strict IMDSv2 test server (tests/fixtures/imds.py). Killed by PID on drop.

use crate::{die_with_parent, free_port, root, TempDir};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn venv(bin: &str) -> PathBuf {
    let p = root().join(".venv/bin").join(bin);
    assert!(p.exists(), "{} missing: run scripts/deps (python venv with moto and awscli)", p.display());
    p
}

pub fn aws_cli() -> PathBuf {
    venv("aws")
}

fn wait_port(port: u16, what: &str) {
    wait_addr((std::net::Ipv4Addr::LOCALHOST, port).into(), what)
}

fn wait_addr(addr: std::net::SocketAddr, what: &str) {
    let t = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post(url: &str, body: &str) -> String {
    ureq::post(url)
        .header("content-type", "text/plain")
        .send(body.as_bytes())
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// moto with roles ops / devs-web / forbidden and an IAM user "instance" that
/// may assume only ops and devs-web. With `auth`, moto checks SigV4 signatures
/// and IAM policies (then AssumeRoleWithWebIdentity, unsigned, does not work).
pub struct Moto {
    pub port: u16,
    child: Child,
    /// The "instance role" access key (served by the IMDS test server).
    pub instance_key: Value,
    /// Holds moto's request recording (MOTO_RECORDER_FILEPATH); removed on drop.
    _dir: TempDir,
}

impl Moto {
    pub fn start(auth: bool) -> Moto {
        let port = free_port();
        // moto writes its recording to ./moto_recording unless told otherwise: keep
        // it (and anything else it writes) in the test's temp dir.
        let dir = TempDir::new("moto");
        let child = die_with_parent(&mut Command::new(venv("moto_server")))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(&dir.0)
            .env("MOTO_RECORDER_FILEPATH", dir.0.join("moto_recording"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port, "moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let out =
            Command::new(venv("python3")).arg(root().join("tests/fixtures/moto_setup.py")).arg(&url).output().unwrap();
        assert!(out.status.success(), "moto setup: {}", String::from_utf8_lossy(&out.stderr));
        let instance_key: Value = serde_json::from_slice(&out.stdout).unwrap();
        if auth {
            post(&format!("{url}/moto-api/reset-auth"), "0");
        }
        post(&format!("{url}/moto-api/recorder/start-recording"), "");
        Moto { port, child, instance_key, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Form bodies of the STS requests moto received (decoded), in order.
    pub fn sts_requests(&self) -> Vec<String> {
        let text = ureq::get(&format!("{}/moto-api/recorder/download-recording", self.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                let body = v["body"].as_str()?.to_string();
                let body = if v["body_encoded"].as_bool() == Some(true) {
                    use base64::Engine as _;
                    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).ok()?).ok()?
                } else {
                    body
                };
                body.contains("Action=AssumeRole").then_some(body)
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The strict IMDSv2 test server; `mode` is "v2" or "v1only".
pub struct Imds {
    pub port: u16,
    addr: std::net::SocketAddr,
    child: Child,
    _dir: TempDir,
}

impl Imds {
    pub fn start(key: &Value, mode: &str) -> Imds {
        Imds::start_at(key, mode, (std::net::Ipv4Addr::LOCALHOST, free_port()).into())
    }

    /// Listening on `addr` (e.g. 169.254.169.254:80 inside a private network namespace).
    pub fn start_at(key: &Value, mode: &str, addr: std::net::SocketAddr) -> Imds {
        let dir = TempDir::new("imds");
        let creds = dir.0.join("creds.json");
        std::fs::write(&creds, key.to_string()).unwrap();
        let child = die_with_parent(&mut Command::new("/usr/bin/python3"))
            .arg(root().join("tests/fixtures/imds.py"))
            .args([&addr.port().to_string(), &creds.display().to_string(), mode, &addr.ip().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_addr(addr, "imds.py");
        Imds { port: addr.port(), addr, child, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
