//! Issue 4: real sshd, sudo and /bin/login in a private mount namespace, with
//! the captured syslog as the witness.

use integration::sshd::{askpass, SshHost, Stacks};
use integration::*;
use serde_json::json;
use std::path::PathBuf;

const ALGS: &[&str] = &["RS256", "ES256"];

/// The users these tests log in as resolve before their first login (roster).
const USERS: &[&str] = &["alice", "bob", "carol"];

fn setup(policy: Config, patterns: &[&str], sudo_args: &str, sudoers: &str) -> (Idp, Env, Helperd, SshHost) {
    let idp = Idp::start();
    let env = Env::new(policy.issuer(Issuer::standard(&idp.issuer(), ALGS)));
    env.prelogin(USERS, patterns);
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::standard(sudo_args), sudoers);
    (idp, env, h, host)
}

fn token_file(env: &Env, name: &str, token: &str) -> PathBuf {
    let p = env.dir.0.join(format!("{name}.token"));
    std::fs::write(&p, token).unwrap();
    p
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn first_login_of_a_never_seen_user_gets_claim_groups_home_and_session() {
    let (idp, env, h, host) = setup(Config::new(), &[], "", "");
    let t = token_file(&env, "alice", &idp.token("host-login", "alice"));
    let out =
        host.ssh("alice", &t, "id; echo HOME=$HOME; stat -c '%a %U' $HOME; echo ENV=$OIDC_USER,$OIDC_SUB,$OIDC_ISSUER");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ssh failed: {}\n{}", text(&out), host.syslog().join("\n"));
    assert!(
        stdout.contains("(alice) gid=") && stdout.contains("(devs)") && stdout.contains("(ops-admins)"),
        "{stdout}"
    );
    assert!(stdout.contains("HOME=/home/alice\n700 alice\n"), "pam_mkhomedir made a private home: {stdout}");
    assert!(stdout.contains(&format!("ENV=alice,u-alice,{}", idp.issuer())), "{stdout}");
    host.wait_log("auth result=allow code=ok service=sshd user=alice");
    let log = || std::fs::read_to_string(&h.log).unwrap();
    assert!(log().contains("session 1 opened: user=alice"), "{}", log());
    let t0 = std::time::Instant::now();
    while !log().contains("session 1 closed") && t0.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(log().contains("session 1 closed"), "{}", log());
}

#[test]
fn refusals_over_sshd_are_logged_with_their_reason() {
    let (idp, env, _h, host) = setup(Config::new().policy("allowed_groups", ["devs"]), &["dev-*"], "", "");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("alice", "not-a-token".into(), "code=malformed", "invalid token"),
        (
            "alice",
            {
                let mut c = idp.claims("alice", "host-login");
                c["exp"] = json!(now() - 600);
                idp.sign(json!({"alg": "RS256"}), c)
            },
            "code=expired",
            "token expired",
        ),
        ("alice", idp.token("host-login", "bob"), "code=user-mismatch", "token is for another user"),
        ("carol", idp.token("host-login", "carol"), "code=not-in-allowed-group", "not in a group allowed on this host"),
    ];
    for (user, token, needle, told) in cases {
        let out = host.ssh_as_user_sees_it(user, &token_file(&env, "t", &token), "echo LOGGED-IN");
        assert!(!out.status.success() && !text(&out).contains("LOGGED-IN"), "{user} {needle}: {}", text(&out));
        // The client (a CI job's askpass included) is told why, in one short line.
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!("OIDC login refused: {told}")),
            "{user} {needle}: the client was not told: {said}"
        );
        let line = host.wait_log(needle);
        assert!(line.contains(&format!("user={user}")) && line.contains("result=deny"), "{line}");
    }
    // A name outside the namespace never reaches a shell; sshd says why.
    let out = host.ssh("zed", &token_file(&env, "z", &idp.token("host-login", "zed")), "echo LOGGED-IN");
    assert!(!out.status.success());
    host.wait_log("Invalid user zed");
}

#[test]
fn tokens_of_1k_4k_12k_over_sshd_sudo_and_console_login() {
    let (idp, env, _h, host) = setup(Config::new(), &[], "step_up", "%devs ALL=(ALL:ALL) ALL\n");
    for size in [1024usize, 4096, 12 * 1024] {
        // A token for each login: each token logs in once on a host.
        let files: Vec<_> = (0..4)
            .map(|i| {
                let tok = idp.token_of_size("host-login", "alice", size);
                assert!(tok.len() >= size - 64 && tok.len() <= size + 512, "{} for {size}", tok.len());
                token_file(&env, &format!("alice-{size}-{i}"), &tok)
            })
            .collect();
        let f = &files[0];
        // sshd keyboard-interactive through ssh's askpass (1023-byte replies).
        let cmd = format!(
            "echo SSH-OK; OIDC_TOKEN_FILE={f1} {a} --lines | sudo -S -p 'PROMPT ' id -u && echo SUDO-S-OK; \
             OIDC_TOKEN_FILE={f2} SUDO_ASKPASS={a} sudo -A id -un && echo SUDO-A-OK",
            f1 = files[1].display(),
            f2 = files[2].display(),
            a = askpass().display()
        );
        let out = host.ssh("alice", f, &cmd);
        let t = text(&out);
        assert!(t.contains("SSH-OK"), "{size}: ssh: {t}\n{}", host.syslog().join("\n"));
        assert!(t.contains("0\nSUDO-S-OK"), "{size}: sudo -S: {t}\n{}", host.syslog().join("\n"));
        assert!(t.contains("root\nSUDO-A-OK"), "{size}: sudo -A: {t}\n{}", host.syslog().join("\n"));
        // The real /bin/login on a pseudo-terminal (4095-byte lines).
        let console = host.console_login("alice", &files[3]);
        assert!(console.contains("LOGIN-OK") && console.contains("uid="), "{size}: login: {console}");
    }
    let parts =
        host.syslog().iter().filter(|l| l.contains("service=sudo user=alice") && l.contains("result=allow")).count();
    assert!(parts >= 6, "{parts} sudo logins");
}

#[test]
fn sudo_reuses_fresh_session_claims_else_steps_up_and_checks_the_group() {
    let (idp, env, h, host) =
        setup(Config::new(), &[], "require_group=ops-admins max_age=3", "ALL ALL=(ALL:ALL) ALL\n");
    let fresh = |user: &str| {
        format!(
            "curl -s 'http://127.0.0.1:{}/test/token?client=host-login&user={user}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id_token\"])' > /tmp/$$.tok; \
             OIDC_TOKEN_FILE=/tmp/$$.tok {} --lines | sudo -S -p 'PROMPT ' true",
            idp.port,
            askpass().display()
        )
    };
    // bob (devs only): his own session's claims do not have the group, nor does a fresh token;
    // alice's live session is no help to him.
    let cmd = format!("sudo -S true </dev/null 2>/dev/null || echo REFUSED; {} || echo REFUSED-FRESH", fresh("bob"));
    let out = host.ssh("bob", &token_file(&env, "bob", &idp.token("host-login", "bob")), &cmd);
    let t = text(&out);
    assert!(t.contains("REFUSED\n") && t.contains("REFUSED-FRESH"), "{t}");
    let line = host.wait_log("service=sudo user=bob");
    assert!(
        host.syslog().iter().any(|l| l.contains("service=sudo user=bob") && l.contains("code=not-in-allowed-group")),
        "{line}"
    );
    // alice (ops-admins): no prompt while the login is fresh; step-up once it is older than max_age.
    let cmd = format!(
        "sudo -S -p 'FIRST-PROMPT ' true </dev/null && echo NO-PROMPT-OK; \
         sudo -S -p '' -u bob sudo -S -p 'INNER ' true </dev/null || echo BORROW-REFUSED; sleep 4; \
         sudo -S -p 'SECOND-PROMPT ' true </dev/null 2>/dev/null || echo STEP-UP-NEEDED; {} && echo STEP-UP-OK",
        fresh("alice")
    );
    let out = host.ssh("alice", &token_file(&env, "alice", &idp.token("host-login", "alice")), &cmd);
    let t = text(&out);
    assert!(t.contains("NO-PROMPT-OK") && !t.contains("FIRST-PROMPT"), "{t}\n{}", host.syslog().join("\n"));
    assert!(t.contains("STEP-UP-NEEDED") && t.contains("STEP-UP-OK"), "{t}\n{}", host.syslog().join("\n"));
    // A process of another uid inside alice's session (sudo -u bob) gets none of her claims.
    assert!(t.contains("BORROW-REFUSED"), "{t}");
    let hlog = std::fs::read_to_string(&h.log).unwrap();
    assert!(hlog.contains("is inside another uid's session"), "{t}\n{hlog}\n{}", host.syslog().join("\n"));
    host.wait_log("service=sudo user=alice rhost=- issuer");
    assert!(host.syslog().iter().any(|l| l.contains("service=sudo user=alice") && l.contains("claims of session")));
    assert!(host.syslog().iter().any(|l| l.contains("service=sudo user=alice")
        && l.contains("fresh token because")
        && l.contains("max_age=3")));
}

#[test]
fn device_code_login_over_sshd_approved_denied_and_abandoned() {
    let idp = Idp::start();
    let issuer = Issuer::standard(&idp.issuer(), ALGS)
        .set("audiences", ["host-login", "host-device"])
        .set("device_client_id", "host-device")
        .set("device_scope", "openid profile groups");
    let env = Env::new(Config::new().pam("device_timeout_secs", 8).issuer(issuer));
    env.prelogin(USERS, &[]);
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::device(), "");
    // An askpass that records the prompt (the verification URL and code are in it) and presses Enter.
    let prompts = env.dir.0.join("prompts");
    let recorder = env.dir.0.join("record-askpass");
    std::fs::write(&recorder, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho\n", prompts.display())).unwrap();
    std::process::Command::new("chmod").args(["+x", &recorder.display().to_string()]).status().unwrap();
    let none = env.dir.0.join("no.token");
    std::fs::write(&none, "").unwrap();
    let user_code = |before: usize| -> String {
        let t = std::time::Instant::now();
        loop {
            let all = std::fs::read_to_string(&prompts).unwrap_or_default();
            if let Some(l) = all.lines().skip(before).find(|l| l.contains("confirm the code")) {
                assert!(l.contains(&format!("open {}/device?user_code=", idp.issuer())), "{l}");
                return l.split("confirm the code ").nth(1).unwrap().split(',').next().unwrap().to_string();
            }
            assert!(t.elapsed().as_secs() < 20, "no device prompt: {all}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    for (n, action) in ["approve", "deny", "never"].into_iter().enumerate() {
        let t0 = std::time::Instant::now();
        let out = std::thread::scope(|s| {
            let ssh = s.spawn(|| host.ssh_with("alice", &none, "id; echo DEVICE-LOGIN-OK", &recorder));
            let code = user_code(n);
            if action != "never" {
                let r = ureq::get(&format!("{}/test/device?user_code={code}&user=alice&action={action}", idp.issuer()))
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap();
                assert!(r.contains("\"done\":true"), "{r}");
            }
            ssh.join().unwrap()
        });
        let t = text(&out);
        match action {
            "approve" => {
                assert!(
                    t.contains("DEVICE-LOGIN-OK") && t.contains("(ops-admins)"),
                    "{t}\n{}",
                    host.syslog().join("\n")
                );
                host.wait_log("auth result=allow code=ok service=sshd user=alice");
            }
            "deny" => {
                assert!(!t.contains("DEVICE-LOGIN-OK"), "{t}");
                host.wait_log("code=device-denied");
            }
            _ => {
                assert!(!t.contains("DEVICE-LOGIN-OK"), "{t}");
                host.wait_log("code=device-timeout");
                let took = t0.elapsed().as_secs();
                assert!((8..=20).contains(&took), "refused after {took}s with device_timeout_secs = 8");
            }
        }
    }
}
