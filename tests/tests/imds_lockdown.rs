//! Issue 15 (4): the package's opt-in IMDS lock-down — the nftables table in
//! packaging/nftables/pam-oidc-imds.nft, loaded and removed by the commands of
//! packaging/systemd/pam-oidc-imds-lockdown.service — in a private network
//! namespace (the host's network and ruleset are never touched), with the
//! strict IMDSv2 stand-in listening on 169.254.169.254:80 and [fd00:ec2::254]:80:
//! uid 65534 is refused, root reads the instance role, `helperd doctor` passes
//! only with it loaded, and helperd (root) still brokers instance-role
//! credentials into an sshd session whose user cannot reach IMDS itself.

use integration::aws::{aws_cli, Imds, Moto};
use integration::sshd::{SshHost, Stacks};
use integration::*;
use std::net::SocketAddr;
use std::process::{Command, Output};

const UNIT: &str = "packaging/systemd/pam-oidc-imds-lockdown.service";
/// Where the packages install the rule file (what the unit names).
const INSTALLED_NFT: &str = "/usr/lib/pam-oidc/pam-oidc-imds.nft";
const V4: &str = "169.254.169.254:80";
const V6: &str = "[fd00:ec2::254]:80";

/// Run `f` on a thread of its own in a new network namespace: only that thread
/// and the processes it starts are in it (lo up, the IMDS addresses on lo), and
/// the namespace is gone with them.
fn in_private_net<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let host = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
            // SAFETY: unshare has no memory preconditions; CLONE_NEWNET moves only this thread.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare -n: {}", std::io::Error::last_os_error());
            // Never configure the host's network: this thread must be elsewhere now.
            assert_ne!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), host);
            for cmd in [
                "ip link set lo up",
                "ip addr add 169.254.169.254/32 dev lo",
                "ip -6 addr add fd00:ec2::254/128 dev lo",
            ] {
                run_ok(cmd);
            }
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().unwrap()
}

fn run_ok(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The unit's `Exec{Start,Stop}=` command, run as systemd would (a leading `-`
/// ignores failure), with the rule file taken from the source tree.
fn unit_exec(key: &str) -> Output {
    let unit = std::fs::read_to_string(root().join(UNIT)).unwrap();
    let line = unit.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key}"));
    let nft = root().join("packaging/nftables/pam-oidc-imds.nft");
    let cmd = line.trim_start_matches('-').replace(INSTALLED_NFT, &nft.display().to_string());
    let out = sh(&cmd);
    assert!(out.status.success() || line.starts_with('-'), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// An IMDSv2 session token from `addr`, as `uid` (0 or 65534): Ok(token) or
/// Err(curl's complaint).
fn imds_token(addr: &str, uid: u32) -> Result<String, String> {
    let as_uid = if uid == 0 { String::new() } else { format!("setpriv --reuid {uid} --regid {uid} --clear-groups ") };
    let out = sh(&format!(
        "{as_uid}curl -sS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://{addr}/latest/api/token"
    ));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Root's read of the instance role's credentials (IMDSv2), the body.
fn root_reads_instance_role(addr: &str) -> String {
    let token = imds_token(addr, 0).unwrap_or_else(|e| panic!("root, {addr}: {e}"));
    run_ok(&format!(
        "curl -sS --max-time 5 -H 'X-aws-ec2-metadata-token: {token}' \
         http://{addr}/latest/meta-data/iam/security-credentials/instance-role"
    ))
}

fn tables() -> String {
    run_ok("nft list tables")
}

#[test]
fn only_root_reaches_imds_with_the_lockdown_loaded() {
    let moto_key = serde_json::json!({"AccessKeyId": "AKIAINSTANCEROLE0001", "SecretAccessKey": "s3cr3t"});
    in_private_net(|| {
        let _v4 = Imds::start_at(&moto_key, "v2", V4.parse::<SocketAddr>().unwrap());
        let _v6 = Imds::start_at(&moto_key, "v2", V6.parse::<SocketAddr>().unwrap());
        // A table of the host's own, which the lock-down must leave alone.
        run_ok("nft add table inet host_fw && nft add chain inet host_fw out '{ type filter hook output priority 10; }' && nft add rule inet host_fw out counter");
        // Without the lock-down any user reads the instance role (what the rule is for).
        for addr in [V4, V6] {
            assert!(imds_token(addr, 65534).is_ok(), "uid 65534 reaches {addr} with no rule loaded");
        }

        unit_exec("ExecStart");
        // Loading again (ExecReload, an upgrade) replaces the table: still one, same rules.
        unit_exec("ExecReload");
        let t = tables();
        assert_eq!(t.matches("table inet pam_oidc_imds").count(), 1, "{t}");
        assert!(t.contains("table inet host_fw"), "the host's table is untouched: {t}");
        for addr in [V4, V6] {
            // (a) uid 65534 is refused at once (a TCP reset, not a timeout).
            let t0 = std::time::Instant::now();
            let err = imds_token(addr, 65534).expect_err(&format!("uid 65534 must not reach {addr}"));
            assert!(err.contains("Couldn't connect") || err.contains("refused"), "{addr}: {err}");
            assert!(t0.elapsed().as_secs() < 2, "rejected, not dropped: {:?}", t0.elapsed());
            // (b) root still reads the instance role.
            let body = root_reads_instance_role(addr);
            assert!(body.contains("AKIAINSTANCEROLE0001"), "{addr}: {body}");
        }
        let rules = run_ok("nft list table inet pam_oidc_imds");
        assert!(rules.contains("skuid != 0") && rules.contains("reject with tcp reset"), "{rules}");

        // ExecStop removes only its own table; IMDS is open again; stopping twice is fine.
        unit_exec("ExecStop");
        let t = tables();
        assert!(!t.contains("pam_oidc_imds") && t.contains("table inet host_fw"), "{t}");
        assert!(imds_token(V4, 65534).is_ok(), "open again after ExecStop");
        unit_exec("ExecStop");
    });
}

#[test]
fn the_lockdown_ships_but_is_not_enabled_by_the_packages() {
    let deb = std::fs::read_to_string(root().join("helperd/Cargo.toml")).unwrap();
    assert!(deb.contains(&format!("\"{}\"", INSTALLED_NFT.trim_start_matches('/'))), "deb asset");
    assert!(deb.contains("\"lib/systemd/system/pam-oidc-imds-lockdown.service\""), "deb asset");
    let spec = std::fs::read_to_string(root().join("packaging/rpm/pam-oidc.spec")).unwrap();
    assert!(spec.contains(INSTALLED_NFT) && spec.contains("/usr/lib/systemd/system/pam-oidc-imds-lockdown.service"));
    let postinst = std::fs::read_to_string(root().join("packaging/debian/postinst")).unwrap();
    for (what, script) in [("postinst", &postinst), ("%post", &spec)] {
        assert!(!script.contains("enable pam-oidc-imds-lockdown"), "{what} must not enable the lock-down");
    }
    let unit = std::fs::read_to_string(root().join(UNIT)).unwrap();
    for line in ["Type=oneshot", "RemainAfterExit=yes", "CapabilityBoundingSet=CAP_NET_ADMIN", "NoNewPrivileges=yes"] {
        assert!(unit.lines().any(|l| l == line), "{line} not in {UNIT}");
    }
}

#[test]
fn doctor_passes_with_the_lockdown_and_fails_without() {
    let key = serde_json::json!({"AccessKeyId": "AKIAINSTANCEROLE0001", "SecretAccessKey": "s3cr3t"});
    in_private_net(|| {
        let _imds = Imds::start_at(&key, "v2", V4.parse::<SocketAddr>().unwrap());
        // The default imds_endpoint (http://169.254.169.254), an instance role.
        let env = Env::new(
            Config::new().issuer(Issuer::standard("http://127.0.0.1:9", &["RS256"])).aws_role(
                Table::new()
                    .set("group", "ops")
                    .set("role_arn", "arn:aws:iam::123456789012:role/ops")
                    .set("source", "instance"),
            ),
        );
        let imds_line = || {
            let out = Command::new(helperd_bin())
                .args(["--config", &env.config.display().to_string(), "doctor"])
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = out.lines().find(|l| l.contains("] imds")).unwrap_or_else(|| panic!("{out}")).to_string();
            let next = out.lines().skip_while(|l| *l != line).nth(1).unwrap_or("").to_string();
            (line, next)
        };
        let (line, fix) = imds_line();
        assert!(line.starts_with("[FAIL] imds") && line.contains("uid 65534"), "{line}");
        assert!(fix.contains("systemctl enable --now pam-oidc-imds-lockdown"), "{fix}");
        unit_exec("ExecStart");
        let (line, _) = imds_line();
        assert!(line.starts_with("[PASS] imds") && line.contains("refuses uid 65534"), "{line}");
        unit_exec("ExecStop");
        assert!(imds_line().0.starts_with("[FAIL] imds"));
    });
}

const OPS: &str = "arn:aws:iam::123456789012:role/ops";

/// (c) With the lock-down loaded, helperd (root) still reads the instance role
/// and AssumeRoles for the session (moto as STS, signatures and IAM checked);
/// the session's user reaches IMDS neither directly nor as another uid.
#[test]
fn helperd_still_brokers_instance_role_credentials_under_the_lockdown() {
    in_private_net(|| {
        let moto = Moto::start(true);
        let imds = Imds::start_at(&moto.instance_key, "v2", V4.parse::<SocketAddr>().unwrap());
        unit_exec("ExecStart");
        let idp = Idp::start();
        let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), &["RS256"])));
        env.prelogin(&["alice"], &[]);
        let credential_process = format!("{} --config {} credentials", helperd_bin().display(), env.config.display());
        env.edit(|c| {
            c.aws("region", "us-east-1")
                .aws("sts_endpoint", moto.url())
                .aws("imds_endpoint", imds.url())
                .aws("config_file", env.dir.0.join("aws-config"))
                .aws("credential_process", credential_process)
                .aws("timeout_secs", 5)
                .aws_role(
                    Table::new()
                        .set("group", "ops-admins")
                        .set("role_arn", OPS)
                        .set("source", "instance")
                        .set("duration_secs", 900)
                        .set("required", true),
                )
        });
        let h = env.start_helperd();
        env.wait_cached(&idp.issuer());
        let host = SshHost::start(&env, &Stacks::standard(""), "");
        let token = env.dir.0.join("alice.token");
        std::fs::write(&token, idp.token("host-login", "alice")).unwrap();
        let cmd = format!(
            "AWS_ENDPOINT_URL={} {} sts get-caller-identity --query Arn --output text; \
             curl -sS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' {}/latest/api/token \
             && echo IMDS-REACHED || echo IMDS-REFUSED",
            moto.url(),
            aws_cli().display(),
            imds.url()
        );
        let out = host.ssh("alice", &token, &cmd);
        let t = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let log = std::fs::read_to_string(&h.log).unwrap();
        assert!(t.contains("arn:aws:sts::123456789012:assumed-role/ops/alice"), "{t}\n{log}");
        assert!(t.contains("IMDS-REFUSED") && !t.contains("IMDS-REACHED"), "alice reads no instance role: {t}");
        let reqs = moto.sts_requests();
        assert!(reqs.iter().any(|b| b.contains("SourceIdentity=u-alice")), "{reqs:?}");
        unit_exec("ExecStop");
    });
}
