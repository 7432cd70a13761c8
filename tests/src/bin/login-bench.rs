//! Login-time benchmark (run by scripts/bench as root): seconds from starting
//! `ssh` to the remote command's output, over the namespace sshd, for each way
//! in — a local key (the baseline), a token fed by askpass, `pam-oidc ssh`
//! (the client: a fresh ID token from its cached refresh token, fed through
//! its askpass), a device-code login and a push login (CIBA) — with the
//! approvals automated against the test IdP (device: its own pages driven at
//! once; push: approved at once).
//!
//!   login-bench ROUNDS
//!
//! Prints `method=key n=… p50_s=… max_s=…` lines. The device and push
//! figures include the IdP's polling interval (device 5 s, push 1 s here).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench tool

use integration::sshd::{SshHost, Stacks};
use integration::*;
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret-not-for-production";

fn report(method: &str, mut t: Vec<f64>) {
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("method={method} n={} p50_s={:.2} max_s={:.2}", t.len(), t[t.len() / 2], t[t.len() - 1]);
}

fn ok(out: &std::process::Output, what: &str) {
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("IN"), "{what}: {s}{}", String::from_utf8_lossy(&out.stderr));
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(5);
    let idp = Idp::start();
    let env = Env::new(Config::new());
    let secret = env.dir.0.join("ciba.secret");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let issuer = Issuer::standard(&idp.issuer(), &["RS256", "ES256"])
        .set("audiences", ["host-login", "host-device", "host-cli"])
        .set("ciba_client_id", "host-login")
        .set("ciba_client_secret_file", secret.display().to_string())
        .set("device_client_id", "host-device")
        .set("device_scope", "openid profile groups");
    env.edit(|c| c.pam("device_timeout_secs", 60).helperd("ciba_user_cooldown_secs", 1).issuer(issuer));
    env.prelogin(&["alice"], &[]);
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let none = env.dir.0.join("no.token");
    std::fs::write(&none, "").unwrap();

    // Key and token: the shipped stacks (local users fall through to the host's).
    let host = SshHost::start_with_locals(&env, &Stacks::shipped(""), "");
    let mut key = vec![];
    let mut token = vec![];
    for i in 0..rounds {
        let t = Instant::now();
        ok(&host.ssh_key("lkey", "echo IN"), "key");
        key.push(t.elapsed().as_secs_f64());
        let f = env.dir.0.join(format!("t{i}"));
        std::fs::write(&f, idp.token("host-login", "alice")).unwrap();
        let t = Instant::now();
        ok(&host.ssh("alice", &f, "echo IN"), "token");
        token.push(t.elapsed().as_secs_f64());
    }
    // The client: logged in once through the "browser" (the IdP's /test/browse),
    // then each `pam-oidc ssh` refreshes for a fresh token and feeds it.
    let home = TempDir::new("bench-client");
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
    let browser = h.join("browser");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\ncurl -sS -G --data-urlencode \"url=$1\" --data-urlencode user=alice {}/test/browse >/dev/null\n",
            idp.issuer()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").args(["+x", &browser.display().to_string()]).status().unwrap();
    let client = |args: &[String]| {
        let mut c = std::process::Command::new(client_bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", h)
            .env("XDG_CACHE_HOME", h.join(".cache"))
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("BROWSER", &browser)
            .args(args)
            .stdin(std::process::Stdio::null());
        c.output().unwrap()
    };
    let login = client(&["login".into()]);
    assert!(login.status.success(), "pam-oidc login: {}", String::from_utf8_lossy(&login.stderr));
    let mut cli = vec![];
    for _ in 0..rounds {
        let mut a: Vec<String> =
            vec!["ssh".into(), "-F".into(), "/dev/null".into(), "-p".into(), host.port.to_string()];
        for o in ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"] {
            a.extend(["-o".to_string(), o.to_string()]);
        }
        a.extend(["alice@127.0.0.1".to_string(), "echo IN".to_string()]);
        let t = Instant::now();
        ok(&client(&a), "pam-oidc ssh");
        cli.push(t.elapsed().as_secs_f64());
    }
    drop(host);
    report("key", key);
    report("token", token);
    report("client", cli);

    // Device code: the prompt's code approved at the IdP as soon as it shows.
    let host = SshHost::start(&env, &Stacks::device(), "");
    let mut device = vec![];
    for i in 0..rounds {
        let prompts = env.dir.0.join(format!("prompts-{i}"));
        let rec = env.dir.0.join(format!("rec-{i}"));
        std::fs::write(&rec, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho\n", prompts.display())).unwrap();
        std::process::Command::new("chmod").args(["+x", &rec.display().to_string()]).status().unwrap();
        let t = Instant::now();
        std::thread::scope(|s| {
            let ssh = s.spawn(|| host.ssh_with("alice", &none, "echo IN", &rec));
            let code = loop {
                let all = std::fs::read_to_string(&prompts).unwrap_or_default();
                if let Some(c) = all
                    .lines()
                    .find(|l| l.contains("confirm the code"))
                    .and_then(|l| Some(l.split("confirm the code ").nth(1)?.split(',').next()?.to_string()))
                {
                    break c;
                }
                assert!(t.elapsed() < Duration::from_secs(30), "no device prompt");
                std::thread::sleep(Duration::from_millis(20));
            };
            let url = format!("{}/test/device?user_code={code}&user=alice&action=approve", idp.issuer());
            ureq::get(&url).call().unwrap();
            ok(&ssh.join().unwrap(), "device");
        });
        device.push(t.elapsed().as_secs_f64());
    }
    drop(host);
    report("device", device);

    // Push: approved at once by the IdP's "phone".
    let host = SshHost::start(&env, &Stacks::ciba(), "");
    let mut push = vec![];
    let mut phases = vec![];
    for _ in 0..rounds {
        let (t, at) = (Instant::now(), std::time::SystemTime::now());
        ok(&host.ssh("alice", &none, "echo IN"), "push");
        push.push(t.elapsed().as_secs_f64());
        // Where a push's time goes: until the IdP got the request, until the poll that got the token.
        let r = idp.ciba_requests("alice").pop().unwrap();
        let since = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let asked = r["started_ms"].as_i64().unwrap() - since;
        let polled = r["polls"].as_array().unwrap().last().unwrap().as_i64().unwrap();
        phases.push(format!("{asked}+{polled}"));
    }
    report("push", push);
    println!("push-phases-ms ssh→backchannel request+request→token poll: {}", phases.join(" "));
}
