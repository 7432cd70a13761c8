//! Issue 5: session credentials brokered by helperd, through real sshd, with
//! the real AWS CLI (PyPI awscli) in the session, moto as STS (signature and
//! IAM checking on for AssumeRole) and a strict IMDSv2 test server.

use integration::aws::{aws_cli, Imds, Moto};
use integration::sshd::{SshHost, Stacks};
use integration::*;
use std::path::PathBuf;

const ALGS: &[&str] = &["RS256", "ES256"];
const OPS: &str = "arn:aws:iam::123456789012:role/ops";
const DEVS: &str = "arn:aws:iam::123456789012:role/devs-web";
const POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;

struct World {
    idp: Idp,
    env: Env,
    h: Helperd,
    host: SshHost,
}

/// `aws`: the `[[aws.role]]` tables and more `[aws]` keys.
fn world(sts: &str, imds: &str, aws: Config) -> World {
    let idp = Idp::start();
    // `short-lived`: the test IdP's client whose ID tokens live 1 s.
    let [a, b, c] = TEST_AUDIENCES;
    let issuer = Issuer::standard(&idp.issuer(), ALGS).set("audiences", [a, b, c, "short-lived"]);
    let env = Env::new(Config::new().issuer(issuer));
    env.prelogin(&["alice", "bob", "carol", "zed"], &[]);
    let config_file = env.dir.0.join("aws-config");
    let credential_process = format!("{} --config {} credentials", helperd_bin().display(), env.config.display());
    env.edit(|c| {
        c.aws("region", "us-east-1")
            .aws("sts_endpoint", sts)
            .aws("imds_endpoint", imds)
            .aws("config_file", config_file)
            .aws("credential_process", credential_process)
            .aws("timeout_secs", 5)
            .merge(&aws)
    });
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::standard(""), "ALL ALL=(ALL:ALL) ALL\n");
    World { idp, env, h, host }
}

fn role(group: &str, arn: &str, source: &str) -> Table {
    Table::new().set("group", group).set("role_arn", arn).set("source", source).set("duration_secs", 900)
}

impl World {
    fn token_file(&self, user: &str) -> PathBuf {
        self.token_of(user, user, "host-login")
    }

    /// A token of `user` from `client`, in a file named `name` any uid may read.
    fn token_of(&self, name: &str, user: &str, client: &str) -> PathBuf {
        let p = self.env.dir.0.join(format!("{name}.token"));
        std::fs::write(&p, self.idp.token(client, user)).unwrap();
        p
    }

    /// ssh in as `user` and run `cmd`; `aws` there is the real AWS CLI talking to `sts`.
    fn ssh(&self, user: &str, sts: &str, cmd: &str) -> String {
        let cmd = cmd.replace("aws ", &format!("AWS_ENDPOINT_URL={sts} {} ", aws_cli().display()));
        let out = self.host.ssh(user, &self.token_file(user), &cmd);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.h.log).unwrap()
    }
}

#[test]
fn instance_role_assume_role_in_the_session_with_source_identity_tags_policy_duration() {
    let moto = Moto::start(true);
    let imds = Imds::start(&moto.instance_key, "v2");
    let w = world(
        &moto.url(),
        &imds.url(),
        Config::new().aws("refresh_before_secs", 895).aws_role(
            role("ops-admins", OPS, "instance")
                .set("policy", POLICY)
                .set("tags", Table::new().set("idp_sub", "sub").set("login", "account")),
        ),
    );
    // bob logs in first (so his uid resolves), then alice.
    let bob = w.ssh("bob", &moto.url(), "echo BOB; echo CFG=$AWS_CONFIG_FILE");
    assert!(bob.contains("BOB\nCFG=\n"), "bob has no matching role, so no AWS config: {bob}");
    let t = w.ssh(
        "alice",
        &moto.url(),
        "echo CFG=$AWS_CONFIG_FILE; aws sts get-caller-identity --query Arn --output text; sleep 6; \
         aws sts get-caller-identity --query Arn --output text; \
         sudo -u bob HOME=/tmp sh -c 'AWS_CONFIG_FILE=$0 aws sts get-caller-identity' \"$AWS_CONFIG_FILE\" 2>&1 || echo BOB-REFUSED",
    );
    assert!(t.contains(&format!("CFG={}/aws-config", w.env.dir.0.display())), "{t}\n{}", w.log());
    let arn = "arn:aws:sts::123456789012:assumed-role/ops/alice";
    assert_eq!(t.matches(arn).count(), 2, "get-caller-identity twice (the second after a renewal): {t}\n{}", w.log());
    assert!(w.log().contains("credentials renewed"), "{}", w.log());
    // Another local uid inside alice's session gets nothing.
    assert!(t.contains("BOB-REFUSED") && t.contains("no OIDC session of its uid"), "{t}");
    assert!(w.log().contains("aws credentials refused: process"), "{}", w.log());
    // What STS received.
    let reqs = moto.sts_requests();
    let first =
        reqs.iter().find(|b| b.contains("Action=AssumeRole&") || b.ends_with("Action=AssumeRole")).unwrap_or(&reqs[0]);
    for needle in [
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fops",
        "RoleSessionName=alice",
        "SourceIdentity=u-alice",
        "DurationSeconds=900",
        "Tags.member.1.Key=idp_sub",
        "Tags.member.1.Value=u-alice",
        "Tags.member.2.Key=login",
        "Tags.member.2.Value=alice",
        "Policy=%7B%22Version%22",
    ] {
        assert!(first.contains(needle), "{needle} not in {first}");
    }
    // Secrets never reach a log.
    assert!(!w.log().contains("SecretAccessKey") && !w.host.syslog().join("\n").contains("SessionToken"));
    // After logout the session and its credentials are gone.
    let t0 = std::time::Instant::now();
    while !w.log().contains("credentials dropped") && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(w.log().contains("credentials dropped"), "{}", w.log());
    let out = std::process::Command::new(helperd_bin())
        .args(["--config", &w.env.config.display().to_string(), "credentials"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no session, no credentials");
}

#[test]
fn web_identity_role_in_the_session() {
    let moto = Moto::start(false); // moto cannot check unsigned AssumeRoleWithWebIdentity with auth on
    let w = world(&moto.url(), "http://127.0.0.1:9", Config::new().aws_role(role("devs", DEVS, "web_identity")));
    let t = w.ssh("bob", &moto.url(), "aws sts get-caller-identity --query Arn --output text");
    assert!(t.contains("arn:aws:sts::123456789012:assumed-role/devs-web/bob"), "{t}\n{}", w.log());
    let reqs = moto.sts_requests();
    assert!(
        reqs.iter().any(|b| b.contains("Action=AssumeRoleWithWebIdentity") && b.contains("WebIdentityToken=eyJ")),
        "{reqs:?}"
    );
}

#[test]
fn failures_behave_as_configured_and_are_logged() {
    let moto = Moto::start(true);
    let v1 = Imds::start(&moto.instance_key, "v1only");
    let v2 = Imds::start(&moto.instance_key, "v2");
    let cases = [
        // (imds, role arn, required, expected code)
        (v1.url(), OPS, false, "imdsv2-refused"),
        ("http://127.0.0.1:9".to_string(), OPS, false, "imds-unreachable"),
        (v2.url(), "arn:aws:iam::123456789012:role/forbidden", false, "sts-access-denied"),
        (v1.url(), OPS, true, "imdsv2-refused"),
    ];
    for (imds, arn, required, code) in cases {
        let w = world(
            &moto.url(),
            &imds,
            Config::new().aws_role(role("ops-admins", arn, "instance").set("required", required)),
        );
        let t = w.ssh("alice", &moto.url(), "echo SHELL-OK");
        assert!(w.log().contains(&format!("aws: session 1 (alice): {code}")), "{code}: {}", w.log());
        // The user is told through the PAM conversation (sshd shows session messages on
        // interactive logins, not to `ssh host command`); the syslog always has it.
        if required {
            assert!(!t.contains("SHELL-OK"), "required credentials: the login fails: {t}");
        } else {
            assert!(t.contains("SHELL-OK"), "optional credentials: the login goes on: {t}");
        }
        w.host.wait_log(&format!("AWS credentials unavailable ({code})"));
    }
}

/// Issue 15: no credentials once the login's token expired (plus
/// `aws.token_grace_secs`, 0 here) — for the instance role (which IMDS would
/// go on minting) and for web identity; `helperd renew` from inside the
/// session with a fresh token of the same identity brings them back, a token
/// of another identity is refused.
#[test]
fn credentials_stop_at_the_tokens_exp_and_come_back_on_renewal_by_the_same_identity() {
    let moto = Moto::start(false); // web identity needs auth off in moto; AssumeRole works either way
    let imds = Imds::start(&moto.instance_key, "v2");
    let w = world(
        &moto.url(),
        &imds.url(),
        Config::new().aws_role(role("ops-admins", OPS, "instance")).aws_role(role("devs", DEVS, "web_identity")),
    );
    let helperd = format!("{} --config {}", helperd_bin().display(), w.env.config.display());
    let other = w.token_of("mallory-fresh", "mallory", "host-login");
    // Both sessions run at once; a renewal token must be issued ≥ 10 s after
    // the session's, so the fresh tokens are minted later and waited for.
    let mut running = vec![];
    for user in ["alice", "bob"] {
        let fresh = w.env.dir.0.join(format!("{user}-fresh.token"));
        let short = w.token_of(&format!("{user}-short"), user, "short-lived");
        let cmd = format!(
            "sleep 2; aws sts get-caller-identity --query Arn --output text || echo EXPIRED-REFUSED; \
             {helperd} renew --token-file {other} || echo OTHER-REFUSED; \
             while [ ! -s {fresh} ]; do sleep 0.2; done; \
             {helperd} renew --token-file {fresh} && aws sts get-caller-identity --query Arn --output text",
            other = other.display(),
            fresh = fresh.display()
        );
        let cmd = cmd.replace("aws ", &format!("AWS_ENDPOINT_URL={} {} ", moto.url(), aws_cli().display()));
        running.push((user, w.host.ssh_spawn(user, &short, &cmd)));
    }
    std::thread::sleep(std::time::Duration::from_secs(11));
    for user in ["alice", "bob"] {
        let p = w.env.dir.0.join(format!("{user}-fresh.token"));
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, w.idp.token("host-login", user)).unwrap();
        std::fs::rename(tmp, p).unwrap();
    }
    for ((user, child), arn) in running.into_iter().zip(["assumed-role/ops/alice", "assumed-role/devs-web/bob"]) {
        let out = child.wait_with_output().unwrap();
        let t = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(t.contains("EXPIRED-REFUSED") && t.contains("token expired at"), "{user}: {t}\n{}", w.log());
        assert!(t.contains("OTHER-REFUSED") && t.contains("renewal refused (other-identity)"), "{user}: {t}");
        assert!(t.contains("renewed until") && t.contains(arn), "{user}: renewed: {t}\n{}", w.log());
        assert_eq!(t.matches(arn).count(), 1, "{user}: one Arn, after the renewal: {t}");
    }
    assert!(w.log().contains("session renewal refused") && w.log().contains("renewed: user=bob"), "{}", w.log());
}
