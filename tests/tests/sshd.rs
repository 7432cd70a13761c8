//! Issue 4: real sshd (and sudo, /bin/login) in a private mount namespace.

use integration::sshd::{SshHost, Stacks};
use integration::*;

const ALGS: &str = "\"RS256\", \"ES256\"";

fn setup(policy: &str) -> (Idp, Env, Helperd, SshHost) {
    let idp = Idp::start();
    let env = Env::new(policy, &Env::issuer_toml(&idp.issuer(), ALGS));
    env.append("[accounts]\nprelogin_patterns = [\"*\"]\n");
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::standard(""), "%ops-admins ALL=(ALL:ALL) ALL\n");
    (idp, env, h, host)
}

fn token_file(env: &Env, name: &str, token: &str) -> std::path::PathBuf {
    let p = env.dir.0.join(format!("{name}.token"));
    std::fs::write(&p, token).unwrap();
    p
}

#[test]
fn first_login_of_a_never_seen_user_gets_claim_groups() {
    let (idp, env, _h, host) = setup("");
    let t = token_file(&env, "alice", &idp.token("host-login", "alice"));
    let out = host.ssh("alice", &t, "id; echo HOME=$HOME; echo USER=$OIDC_USER SUB=$OIDC_SUB");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        host.sshd_log(),
        host.syslog().join("\n")
    );
    assert!(
        stdout.contains("(alice) gid=") && stdout.contains("(devs)") && stdout.contains("(ops-admins)"),
        "{stdout}"
    );
    assert!(stdout.contains("HOME=/home/alice"), "{stdout}");
    host.wait_log("auth result=allow code=ok service=sshd user=alice");
    eprintln!("{stdout}");
}
