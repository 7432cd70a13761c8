//! Issue 13 (blockers): the shipped PAM stacks and the pam-auth-update profile
//! leave local users exactly as they were — a key user, a password user, the
//! EC2-style NOPASSWD sudoer — while OIDC users get OIDC policy. Real sshd,
//! sudo and pam_unix in a private mount namespace.

use integration::sshd::{askpass, SshHost, Stacks, LOCAL_PASSWORD};
use integration::*;
use std::path::PathBuf;

const ALGS: &[&str] = &["RS256", "ES256"];
const SUDOERS: &str = "ladmin ALL=(ALL) NOPASSWD: ALL\nlpass ALL=(ALL:ALL) ALL\n%ops-admins ALL=(ALL:ALL) ALL\n";

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn world(stacks: Stacks) -> (Idp, Env, Helperd, SshHost) {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    env.prelogin(&["alice", "bob"], &[]);
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start_with_locals(&env, &stacks, SUDOERS);
    (idp, env, h, host)
}

/// An askpass that records every prompt and answers with the local password.
fn password_askpass(env: &Env) -> (PathBuf, PathBuf) {
    let prompts = env.dir.0.join("pw-prompts");
    let p = env.dir.0.join("pw-askpass");
    std::fs::write(&p, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho {LOCAL_PASSWORD}\n", prompts.display()))
        .unwrap();
    std::process::Command::new("chmod").args(["+x", &p.display().to_string()]).status().unwrap();
    (p, prompts)
}

fn local_and_oidc_users_each_get_what_they_should(idp: &Idp, env: &Env, host: &SshHost, sudo_gated: bool) {
    // A local key user logs in with the key (the account stage leaves it alone).
    let o = host.ssh_key("lkey", "echo KEY-OK");
    assert!(text(&o).contains("KEY-OK"), "lkey: {}\n{}", text(&o), host.syslog().join("\n"));
    // The EC2-style NOPASSWD sudoer keeps sudo.
    let o = host.ssh_key("ladmin", "sudo -n true && echo NOPASSWD-OK");
    assert!(text(&o).contains("NOPASSWD-OK"), "ladmin: {}\n{}", text(&o), host.syslog().join("\n"));
    // A local password user: only password prompts, never an OIDC one; sudo by password.
    let (pw, prompts) = password_askpass(env);
    let none = env.dir.0.join("no.token");
    std::fs::write(&none, "").unwrap();
    let cmd = format!("echo PW-OK; echo {LOCAL_PASSWORD} | sudo -S -p 'SUDO-PW:' true && echo SUDO-PW-OK");
    let o = host.ssh_with("lpass", &none, &cmd, &pw);
    let t = text(&o);
    assert!(t.contains("PW-OK") && t.contains("SUDO-PW-OK"), "lpass: {t}\n{}", host.syslog().join("\n"));
    let asked = std::fs::read_to_string(&prompts).unwrap_or_default();
    assert!(!asked.contains("OIDC") && !t.contains("OIDC"), "a local user saw an OIDC prompt: {asked}{t}");
    // The module wrote nothing about local users: no deny lines, no prompts.
    for u in ["lkey", "ladmin", "lpass"] {
        assert!(
            !host.syslog().iter().any(|l| l.contains(&format!("user={u} ")) && l.contains("result=")),
            "audit line for local {u}:\n{}",
            host.syslog().join("\n")
        );
    }
    // An OIDC user in ops-admins: token login, sudo on the session's claims.
    let tok = env.dir.0.join("alice.token");
    std::fs::write(&tok, idp.token("host-login", "alice")).unwrap();
    let o = host.ssh("alice", &tok, "echo OIDC-OK; sudo -S -p 'SUDO:' true </dev/null && echo OIDC-SUDO-OK");
    let t = text(&o);
    assert!(t.contains("OIDC-OK") && t.contains("OIDC-SUDO-OK"), "alice: {t}\n{}", host.syslog().join("\n"));
    assert!(!t.contains("Password"), "an OIDC user was asked for a password: {t}");
    // An OIDC user not in ops-admins: no sudo, and no password prompt after the refusal.
    let tok = env.dir.0.join("bob.token");
    std::fs::write(&tok, idp.token("host-login", "bob")).unwrap();
    let o = host.ssh("bob", &tok, "sudo -S -p 'SUDO:' true </dev/null || echo BOB-NO-SUDO");
    let t = text(&o);
    assert!(t.contains("BOB-NO-SUDO") && !t.contains("Password"), "bob: {t}");
    if sudo_gated {
        host.wait_log("service=sudo user=bob");
        // The refusal says what fell short (not "no token, PAM_CONV_ERR").
        assert!(
            host.syslog().iter().any(|l| l.contains("service=sudo user=bob")
                && l.contains("code=not-in-allowed-group")
                && l.contains("not in ops-admins")),
            "{}",
            host.syslog().join("\n")
        );
        // sudo passes PAM_SILENT, so the step-up prompt itself says what fell short.
        std::fs::write(&tok, idp.token("host-login", "bob")).unwrap();
        let o = host.ssh("bob", &tok, "sudo -S true </dev/null");
        let t = text(&o);
        assert!(t.contains("OIDC token (this session is not in ops-admins): "), "bob: {t}");
    }
    // A refused OIDC login over ssh gets no password prompt either.
    let bad = env.dir.0.join("bad.token");
    std::fs::write(&bad, "not-a-token").unwrap();
    let o = host.ssh_with("alice", &bad, "echo NO", &askpass());
    assert!(!text(&o).contains("NO\n"), "{}", text(&o));
}

#[test]
fn shipped_stacks_leave_local_users_as_they_were() {
    let (idp, env, _h, host) = world(Stacks::shipped("require_group=ops-admins max_age=900"));
    local_and_oidc_users_each_get_what_they_should(&idp, &env, &host, true);
}

/// A mistyped module argument or a config that does not load must not lock
/// local users out (their stacks reach pam_oidc first, with `default=die`):
/// they fall through as always; OIDC users are refused (fail closed) and the
/// error is logged for the operator.
#[test]
fn a_broken_argument_or_config_never_locks_local_users_out() {
    let (idp, env, _h, host) = world(Stacks::shipped("require_groups=ops-admins"));
    let local_sudo = |what: &str| {
        let o = host.ssh_key("ladmin", "sudo -n true && echo NOPASSWD-OK");
        assert!(text(&o).contains("NOPASSWD-OK"), "{what}: ladmin: {}\n{}", text(&o), host.syslog().join("\n"));
        let (pw, _) = password_askpass(&env);
        let none = env.dir.0.join("no.token");
        std::fs::write(&none, "").unwrap();
        let cmd = format!("echo {LOCAL_PASSWORD} | sudo -S -p 'SUDO-PW:' true && echo SUDO-PW-OK");
        let o = host.ssh_with("lpass", &none, &cmd, &pw);
        assert!(text(&o).contains("SUDO-PW-OK"), "{what}: lpass: {}\n{}", text(&o), host.syslog().join("\n"));
    };
    local_sudo("typo in the sudo stack");
    // An OIDC user's sudo through the mistyped stack is refused, and the operator is told.
    let tok = env.dir.0.join("alice.token");
    std::fs::write(&tok, idp.token("host-login", "alice")).unwrap();
    let o = host.ssh("alice", &tok, "sudo -S -p 'SUDO:' true </dev/null || echo ALICE-NO-SUDO");
    assert!(text(&o).contains("ALICE-NO-SUDO"), "alice: {}", text(&o));
    let line = host.wait_log("code=config-error");
    assert!(line.contains("require_groups"), "{line}");
    // A config that no longer parses: local users still log in and sudo.
    env.edit(|c| c.raw("this is not toml\n"));
    local_sudo("broken config");
    let o = host.ssh_key("lkey", "echo KEY-OK");
    assert!(text(&o).contains("KEY-OK"), "lkey: {}", text(&o));
    assert!(
        host.syslog().iter().any(|l| l.contains("config-error") && l.contains("user=ladmin")),
        "{}",
        host.syslog().join("\n")
    );
}

/// With the config broken, an OIDC account must not pass for a local one —
/// even with uids outside the default range (a site's own range): its
/// `account` line (here: sudo's group gate, which NOPASSWD does not skip)
/// must not fall through to pam_unix.
#[test]
fn a_broken_config_never_lets_an_oidc_account_skip_its_account_checks() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    env.prelogin(&["alice", "bob"], &[]);
    env.edit(|c| {
        c.accounts("uid_min", 536870912)
            .accounts("uid_max", 805306367)
            .accounts("gid_min", 805306368)
            .accounts("gid_max", 1073741823)
    });
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let sudoers = format!("{SUDOERS}bob ALL=(ALL) NOPASSWD: ALL\n");
    let host = SshHost::start_with_locals(&env, &Stacks::shipped("require_group=ops-admins"), &sudoers);
    let tok = env.dir.0.join("bob.token");
    std::fs::write(&tok, idp.token("host-login", "bob")).unwrap();
    let config = env.config.clone();
    let breaker = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let mut c = std::fs::read_to_string(&config).unwrap();
        c.push_str("\nthis is not toml\n");
        std::fs::write(&config, c).unwrap();
    });
    let o = host.ssh("bob", &tok, "id -u; sleep 4; sudo -n true && echo BOB-SUDO-BYPASS; echo END");
    breaker.join().unwrap();
    let t = text(&o);
    assert!(t.contains("END"), "bob's session: {t}\n{}", host.syslog().join("\n"));
    assert!(!t.contains("BOB-SUDO-BYPASS"), "bob (not in ops-admins) got sudo with the config broken: {t}");
    // The local NOPASSWD admin still has sudo.
    let o = host.ssh_key("ladmin", "sudo -n true && echo NOPASSWD-OK");
    assert!(text(&o).contains("NOPASSWD-OK"), "ladmin: {}\n{}", text(&o), host.syslog().join("\n"));
    drop(h);
}

#[test]
fn the_pam_auth_update_profile_leaves_local_users_as_they_were() {
    let (idp, env, _h, host) = world(Stacks::profile());
    local_and_oidc_users_each_get_what_they_should(&idp, &env, &host, false);
}

/// Issue 13 (7): refusals say what to do — the configured issuers, the token's
/// groups, human times, a cut reply, a misspelt groups claim.
#[test]
fn messages_say_what_to_do() {
    use serde_json::json;
    let idp = Idp::start();
    let env =
        Env::new(Config::new().policy("allowed_groups", ["ops-admins"]).issuer(Issuer::standard(&idp.issuer(), ALGS)));
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let line = |r: &PamRun| r.log().into_iter().find(|l| l.contains("result=deny")).unwrap_or_default().to_string();
    let mut c = idp.claims("alice", "host-login");
    c["iss"] = json!("https://other.example");
    let r = env.pam("alice", &idp.sign(json!({"alg": "RS256"}), c));
    assert!(line(&r).contains(&format!("configured: {}", idp.issuer())), "{}", line(&r));
    let r = env.pam("bob", &idp.token("host-login", "bob"));
    assert!(line(&r).contains("need one of ops-admins") && line(&r).contains("has devs"), "{}", line(&r));
    let mut c = idp.claims("alice", "host-login");
    c["exp"] = json!(now() - 900);
    let r = env.pam("alice", &idp.sign(json!({"alg": "RS256"}), c));
    assert!(line(&r).contains("expired 15 min ago at 20"), "{}", line(&r));
    let r = env.pam("alice", &format!("eyJ{}", "A".repeat(1020)));
    assert!(line(&r).contains("the client probably cut a longer token"), "{}", line(&r));
    let mut c = idp.claims("alice", "host-login");
    c.as_object_mut().unwrap().remove("groups");
    c["roles"] = json!(["ops-admins"]);
    let (_, out) = env.check_token(&idp.sign(json!({"alg": "RS256"}), c), &[]);
    assert!(out.contains("groups claim `groups` absent; token has `roles`"), "{out}");
}
