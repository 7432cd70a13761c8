//! Issue 16: push login (OpenID Connect CIBA, poll mode) over real sshd and
//! sudo, against the real test IdP (npm oidc-provider) and a real helperd:
//! approve → a shell with no reply typed; deny → `ciba-denied`; no action →
//! `ciba-timeout`; `slow_down` honoured; the binding message names the host,
//! service and address; an approval by someone else logs no one in; sudo steps
//! up by push; the CIBA client authenticates by secret and by private_key_jwt,
//! and so does a confidential device-code client.

use integration::sshd::{SshHost, Stacks};
use integration::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALGS: &[&str] = &["RS256", "ES256"];
const SECRET: &str = "test-secret-not-for-production";

fn private(dir: &Path, name: &str, body: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, body).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f
}

/// An askpass that records every prompt it is shown and answers nothing.
fn recorder(env: &Env) -> (PathBuf, PathBuf) {
    let prompts = env.dir.0.join("prompts");
    let askpass = env.dir.0.join("record-askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\nexit 1\n", prompts.display())).unwrap();
    std::process::Command::new("chmod").args(["+x", &askpass.display().to_string()]).status().unwrap();
    (askpass, prompts)
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn hostname() -> String {
    let out = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn push_logins_over_sshd_and_sudo() {
    let idp = Idp::start();
    let env = Env::new(Config::new());
    let secret = private(&env.dir.0, "ciba.secret", &format!("{SECRET}\n"));
    let issuer = Issuer::standard(&idp.issuer(), ALGS)
        .set("audiences", ["host-login", "host-ciba-jwt"])
        .set("ciba_client_id", "host-login")
        .set("ciba_client_secret_file", secret.display().to_string())
        .set("ciba_scope", "openid profile groups");
    env.edit(|c| c.pam("device_timeout_secs", 8).helperd("ciba_user_cooldown_secs", 2).issuer(issuer));
    env.prelogin(&["alice", "bob", "carol", "dave", "erin"], &[]);
    let mut h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::ciba(), "alice ALL=(ALL) ALL\n");
    let (askpass, prompts) = recorder(&env);
    let none = env.dir.0.join("no.token");
    std::fs::write(&none, "").unwrap();

    // Approve: a shell, and not one prompt answered.
    let t = Instant::now();
    let out = host.ssh_with("alice", &none, "echo IN-SESSION", &askpass);
    let took = t.elapsed();
    assert!(text(&out).contains("IN-SESSION"), "{}\n{}", text(&out), host.syslog().join("\n"));
    assert_eq!(std::fs::read_to_string(&prompts).unwrap_or_default(), "", "no prompt reached the client");
    println!("push login approved at once: ssh to shell in {took:?}");
    host.wait_log("auth result=allow code=ok service=sshd user=alice");
    let seen = idp.ciba_requests("alice");
    assert_eq!(seen.len(), 1, "{seen:?}");
    let msg = seen[0]["binding_message"].as_str().unwrap();
    let me = hostname();
    assert!(
        msg.contains("sshd alice on ") && msg.contains(&me[..me.len().min(20)]) && msg.ends_with(" from 127.0.0.1"),
        "binding message {msg:?} names the service, the account, the host {me} and the address"
    );
    assert_eq!((seen[0]["client_id"].as_str(), seen[0]["login_hint"].as_str()), (Some("host-login"), Some("alice")));

    // A name that cannot log in here gets no push (anyone on port 22 can type one).
    let out = host.ssh_with("zed", &none, "echo IN-SESSION", &askpass);
    assert!(!text(&out).contains("IN-SESSION"), "{}", text(&out));
    assert!(host.wait_log("no push for zed").contains("code=ciba-error"));
    assert!(idp.ciba_requests("zed").is_empty(), "the IdP was asked to push to zed");

    // Deny: refused with its code; the user sees a short message.
    idp.phone("bob", "action=deny");
    let out = host.ssh_with("bob", &none, "echo IN-SESSION", &askpass);
    assert!(!text(&out).contains("IN-SESSION"), "{}", text(&out));
    let l = host.wait_log("code=ciba-denied");
    assert!(l.contains("auth result=deny") && l.contains("user=bob"), "{l}");

    // No action: refused when the module stops waiting.
    idp.phone("carol", "action=none");
    let t = Instant::now();
    let out = host.ssh_with("carol", &none, "echo IN-SESSION", &askpass);
    assert!(!text(&out).contains("IN-SESSION"), "{}", text(&out));
    let l = host.wait_log("code=ciba-timeout");
    assert!(l.contains("user=carol") && t.elapsed() >= Duration::from_secs(8), "{l} after {:?}", t.elapsed());

    // slow_down: the IdP says interval 1 but wants 4 s between polls; the
    // first poll gets slow_down, and the next comes 5 s later, approved.
    idp.phone("dave", "action=approve&delay_ms=3000&slow=1");
    let out = host.ssh_with("dave", &none, "echo IN-SESSION", &askpass);
    let d = &idp.ciba_requests("dave")[0];
    let hl = std::fs::read_to_string(&h.log).unwrap_or_default();
    assert!(text(&out).contains("IN-SESSION"), "{}\n{d}\n{hl}", text(&out));
    let polls: Vec<u64> = d["polls"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    assert_eq!(d["slow_downs"], 1, "one slow_down, then the client slowed: {d}");
    assert!(polls.len() == 2 && polls[1] - polls[0] >= 5_900, "polls {polls:?}: 1 s, then +6 s");

    // Approved by someone else (the IdP maps erin's hint to alice): the
    // token does not name the PAM user.
    idp.phone("erin", "action=approve&as=alice");
    let out = host.ssh_with("erin", &none, "echo IN-SESSION", &askpass);
    assert!(!text(&out).contains("IN-SESSION"), "{}", text(&out));
    let l = host.wait_log("code=user-mismatch");
    assert!(l.contains("auth result=deny") && l.contains("user=erin"), "{l}");

    // sudo steps up by push inside alice's session (`ciba step_up`).
    let out = host.ssh_with("alice", &none, "sudo -u root id -u && echo SUDO-OK", &askpass);
    assert!(text(&out).contains("SUDO-OK"), "{}\n{}", text(&out), host.syslog().join("\n"));
    host.wait_log("auth result=allow code=ok service=sudo user=alice");
    assert_eq!(idp.ciba_requests("alice").len(), 3, "ssh, ssh and sudo each pushed once");
    assert!(idp.ciba_requests("alice")[2]["binding_message"].as_str().unwrap().contains(" sudo alice on "));

    // The CIBA client authenticates with private_key_jwt instead.
    let key = private(&env.dir.0, "ciba.pem", &idp.client_key_pem());
    env.edit(|c| {
        c.edit_issuer(0, |i| {
            i.set("ciba_client_id", "host-ciba-jwt")
                .unset("ciba_client_secret_file")
                .set("ciba_client_key_file", key.display().to_string())
                .set("client_key_id", "client-1")
        })
    });
    h.stop();
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let out = host.ssh_with("alice", &none, "echo IN-SESSION", &askpass);
    assert!(text(&out).contains("IN-SESSION"), "{}\n{}", text(&out), host.syslog().join("\n"));
    assert_eq!(idp.ciba_requests("alice").last().unwrap()["client_id"], "host-ciba-jwt");

    // Number matching: the user types the code their phone shows (this askpass
    // reads it from the IdP, as a person reads it off the phone); a wrong code
    // is refused even though the push was approved.
    env.edit(|c| c.edit_issuer(0, |i| i.set("ciba_confirm_code", true)));
    let phone = env.dir.0.join("phone-askpass");
    std::fs::write(
        &phone,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {prompts}\nsleep 0.3\n\
             curl -s '{iss}/test/ciba/requests?user=alice' | python3 -c \
             'import json,sys; print(json.load(sys.stdin)[-1][\"binding_message\"].split()[0])'\n",
            prompts = prompts.display(),
            iss = idp.issuer()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").args(["+x", &phone.display().to_string()]).status().unwrap();
    let out = host.ssh_with("alice", &none, "echo IN-SESSION", &phone);
    assert!(text(&out).contains("IN-SESSION"), "{}\n{}", text(&out), host.syslog().join("\n"));
    let shown = std::fs::read_to_string(&prompts).unwrap();
    let code = idp.ciba_requests("alice").last().unwrap()["binding_message"].as_str().unwrap()[..4].to_string();
    assert!(shown.contains("type the code") && !shown.contains(&code), "the terminal never shows the code: {shown}");
    let wrong = env.dir.0.join("wrong-askpass");
    std::fs::write(&wrong, "#!/bin/sh\necho ZZZZ\n").unwrap();
    std::process::Command::new("chmod").args(["+x", &wrong.display().to_string()]).status().unwrap();
    let out = host.ssh_with("alice", &none, "echo IN-SESSION", &wrong);
    assert!(!text(&out).contains("IN-SESSION"), "{}", text(&out));
    assert!(host.wait_log("not the push's code").contains("code=ciba-denied"));
}

/// The device-code flow with a confidential client: a secret (0600, root),
/// then a private key, each against the IdP's client that requires it.
#[test]
fn a_confidential_device_client_logs_in_with_a_secret_or_a_key() {
    let idp = Idp::start();
    let env = Env::new(Config::new());
    let secret = private(&env.dir.0, "device.secret", &format!("{SECRET}\n"));
    let key = private(&env.dir.0, "device.pem", &idp.client_key_pem());
    for (n, (client, auth_key, file)) in [
        ("host-device-conf", "device_client_secret_file", &secret),
        ("host-device-jwt", "device_client_key_file", &key),
    ]
    .into_iter()
    .enumerate()
    {
        let issuer = Issuer::standard(&idp.issuer(), ALGS)
            .set("audiences", ["host-login", client])
            .set("device_client_id", client)
            .set(auth_key, file.display().to_string())
            .set("device_scope", "openid profile groups");
        env.edit(|c| {
            let c = c.pam("device_timeout_secs", 30);
            if n == 0 {
                c.issuer(issuer)
            } else {
                c.edit_issuer(0, |_| issuer)
            }
        });
        env.prelogin(&["alice"], &[]);
        let _h = env.start_helperd();
        env.wait_cached(&idp.issuer());
        let host = SshHost::start(&env, &Stacks::device(), "");
        let prompts = env.dir.0.join(format!("prompts-{client}"));
        let rec = env.dir.0.join(format!("rec-{client}"));
        std::fs::write(&rec, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho\n", prompts.display())).unwrap();
        std::process::Command::new("chmod").args(["+x", &rec.display().to_string()]).status().unwrap();
        let none = env.dir.0.join("no.token");
        std::fs::write(&none, "").unwrap();
        std::thread::scope(|s| {
            let ssh = s.spawn(|| host.ssh_with("alice", &none, "echo IN-SESSION", &rec));
            let t = Instant::now();
            let code = loop {
                let all = std::fs::read_to_string(&prompts).unwrap_or_default();
                let c = all
                    .lines()
                    .find(|l| l.contains("confirm the code"))
                    .and_then(|l| Some(l.split("confirm the code ").nth(1)?.split(',').next()?.to_string()));
                if let Some(c) = c {
                    break c;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "{client}: no device prompt: {}",
                    host.syslog().join("\n")
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            let url = format!("{}/test/device?user_code={code}&user=alice&action=approve", idp.issuer());
            let r = ureq::get(&url).call().unwrap().body_mut().read_to_string().unwrap();
            assert!(r.contains("\"done\":true"), "{client}: {r}");
            let out = ssh.join().unwrap();
            assert!(text(&out).contains("IN-SESSION"), "{client}: {}\n{}", text(&out), host.syslog().join("\n"));
        });
    }
    // A secret file others may read: the module refuses the config (and helperd would not start).
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    env.edit(|c| {
        c.edit_issuer(0, |i| {
            i.unset("device_client_key_file")
                .set("device_client_secret_file", secret.display().to_string())
                .set("device_client_id", "host-device-conf")
                .set("audiences", ["host-login", "host-device-conf"])
        })
    });
    let e = oidc_core::Config::load(&env.config).unwrap_err();
    assert!(e.to_string().contains("device_client_secret_file") && e.to_string().contains("chmod 600"), "{e}");
}
