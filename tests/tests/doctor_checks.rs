//! Issue 6: `helperd doctor` — each check passes on a good setup and fails with
//! the right explanation on a broken one.

use integration::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

struct Setup {
    /// Kept running for the checks that reach it.
    _idp: Idp,
    env: Env,
    h: Helperd,
    sshd: PathBuf,
    nss: PathBuf,
    pam: PathBuf,
    /// Run doctor as if the NSS module read another path than the config's.
    nss_elsewhere: std::cell::Cell<bool>,
}

fn setup() -> Setup {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), &["RS256"])));
    env.prelogin(&["alice"], &["*-oidc"]);
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let d = &env.dir.0;
    let sshd = d.join("sshd_config");
    std::fs::write(&sshd, "# test\nUsePAM yes\nKbdInteractiveAuthentication yes\nInclude /nonexistent/*.conf\n")
        .unwrap();
    let nss = d.join("nsswitch.conf");
    std::fs::write(&nss, "passwd: files systemd oidc\ngroup:  files [SUCCESS=merge] oidc\nhosts: files dns\n").unwrap();
    let pam = d.join("pam.d");
    std::fs::create_dir_all(&pam).unwrap();
    std::fs::write(pam.join("sshd"), "auth required pam_oidc.so\naccount required pam_oidc.so\n").unwrap();
    std::fs::write(
        pam.join("common-oidc"),
        "auth [success=done ignore=ignore default=die] pam_oidc.so require_group=ops max_age=900\nauth required pam_unix.so\n",
    )
    .unwrap();
    std::fs::write(d.join("sudoers"), "Defaults env_reset\n%sudo ALL=(ALL:ALL) ALL\n").unwrap();
    std::fs::create_dir_all(d.join("polkit")).unwrap();
    std::fs::write(pam.join("sudo"), "@include common-oidc\n").unwrap();
    Setup { _idp: idp, env, h, sshd, nss, pam, nss_elsewhere: std::cell::Cell::new(false) }
}

impl Setup {
    fn doctor_with(&self, config: &Path) -> (i32, String) {
        let snapshot = std::fs::read_to_string(config)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("nss_snapshot = \"").map(|v| v.trim_end_matches('"').to_string()))
            .unwrap();
        let out = std::process::Command::new(helperd_bin())
            .env(
                "NSS_OIDC_SNAPSHOT",
                if self.nss_elsewhere.get() { "/var/cache/pam-oidc/nss.snapshot".into() } else { snapshot },
            )
            .args(["--config", &config.display().to_string(), "doctor"])
            .args(["--sshd-config", &self.sshd.display().to_string()])
            .args(["--nsswitch", &self.nss.display().to_string()])
            .args(["--pam-dir", &self.pam.display().to_string()])
            .args(["--sudoers", &self.env.dir.0.join("sudoers").display().to_string()])
            .args(["--polkit-rules", &self.env.dir.0.join("polkit").display().to_string()])
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn doctor(&self) -> (i32, String) {
        self.doctor_with(&self.env.config)
    }

    /// Doctor fails, with `check` failing and its explanation containing `why`.
    fn fails(&self, check: &str, why: &str) {
        let (code, out) = self.doctor();
        assert_eq!(code, 1, "{out}");
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("[FAIL] {check}")))
            .unwrap_or_else(|| panic!("no FAIL {check}:\n{out}"));
        assert!(line.contains(why), "{line}");
        let fix = out.lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
        assert!(fix.trim_start().starts_with("fix: "), "a fix is given: {out}");
    }

    fn passes(&self) {
        let (code, out) = self.doctor();
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("all checks passed") && !out.contains("[FAIL]"), "{out}");
    }

    fn edit(&self, p: &Path, from: &str, to: &str) {
        let t = std::fs::read_to_string(p).unwrap();
        std::fs::write(p, t.replace(from, to)).unwrap();
    }
}

#[test]
fn good_setup_passes_every_check() {
    let s = setup();
    let (_, out) = s.doctor();
    for check in [
        "config",
        "issuer",
        "id key",
        "pre-login",
        "sshd",
        "nsswitch",
        "pam.d/sshd",
        "pam.d/sudo",
        "helperd",
        "socket",
        "snapshot",
    ] {
        assert!(out.lines().any(|l| l.starts_with(&format!("[PASS] {check}"))), "{check}:\n{out}");
    }
    assert!(out.contains("jwks: 3 usable key(s)") && out.contains("clock: skew"), "{out}");
    s.passes();
}

#[test]
fn config_errors_name_the_line() {
    let s = setup();
    let bad = s.env.variant("bad.toml", |c| c.edit_issuer(0, |i| i.unset("leeway_secs").set("leeway", 5)));
    let (code, out) = s.doctor_with(&bad);
    assert_eq!(code, 1);
    assert!(out.contains("[FAIL] config") && out.contains("key issuer.leeway: unknown field"), "{out}");
}

#[test]
fn sshd_settings_that_block_oidc() {
    let s = setup();
    s.passes();
    for (from, to, why) in [
        ("UsePAM yes", "UsePAM no", "UsePAM is not yes"),
        ("KbdInteractiveAuthentication yes", "KbdInteractiveAuthentication no", "KbdInteractiveAuthentication no"),
        ("# test", "AuthenticationMethods publickey", "has no keyboard-interactive"),
        ("# test", "AllowUsers admin", "allowusers admin is set"),
        ("# test", "AllowGroups wheel", "allowgroups wheel is set"),
    ] {
        s.edit(&s.sshd, from, to);
        s.fails("sshd", why);
        s.edit(&s.sshd, to, from);
    }
    // First value wins and Match blocks do not count, as in sshd.
    s.edit(&s.sshd, "# test", "UsePAM yes\nMatch User x\n  AllowUsers x");
    s.passes();
}

#[test]
fn nsswitch_and_pam_stacks() {
    let s = setup();
    s.edit(&s.nss, "passwd: files systemd oidc", "passwd: files oidc systemd");
    s.fails("nsswitch", "systemd comes after oidc");
    s.edit(&s.nss, "passwd: files oidc systemd", "passwd: files systemd");
    s.fails("nsswitch", "passwd: has no oidc");
    s.edit(&s.nss, "passwd: files systemd", "passwd: oidc files");
    s.fails("nsswitch", "oidc comes before files");
    s.edit(&s.nss, "passwd: oidc files", "passwd: files oidc");
    s.passes();
    std::fs::write(s.pam.join("common-oidc"), "auth required pam_unix.so\n# pam_oidc.so (commented out)\n").unwrap();
    s.fails("pam.d/sudo", "does not use pam_oidc.so");
}

#[test]
fn helperd_socket_and_snapshot() {
    let mut s = setup();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.env.socket(), std::fs::Permissions::from_mode(0o600)).unwrap();
    s.fails("socket", "mode 600, want 666");
    std::fs::set_permissions(s.env.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let snap = s.env.snapshot();
    let good = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &good[..good.len() / 2]).unwrap();
    s.fails("snapshot", "is corrupt");
    std::fs::remove_file(&snap).unwrap();
    s.fails("snapshot", "No such file");
    std::fs::write(&snap, &good).unwrap();
    s.passes();
    // The config names a snapshot path the NSS module does not read.
    s.nss_elsewhere.set(true);
    s.fails("snapshot", "libnss_oidc.so.2 reads /var/cache/pam-oidc/nss.snapshot");
    s.nss_elsewhere.set(false);
    s.h.stop();
    s.fails("helperd", "helperd unreachable");
}

/// An IdP stand-in whose discovery issuer, JWKS and Date header are chosen by the test.
fn fake_idp(issuer_in_doc: &str, date: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let keys: serde_json::Value =
        serde_json::from_str(include_str!("../../oidc_core/tests/fixtures/test-keys.json")).unwrap();
    let jwks = serde_json::json!({"keys": [keys["rsa"]["jwk"]]}).to_string();
    let doc = serde_json::json!({"issuer": issuer_in_doc.replace("{url}", &url), "jwks_uri": format!("{url}/jwks")})
        .to_string();
    let date = date.to_string();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let body = if String::from_utf8_lossy(&buf[..n]).starts_with("GET /jwks") { &jwks } else { &doc };
            let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: {date}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    url
}

#[test]
fn issuer_mismatch_unreachable_and_clock_skew() {
    let s = setup();
    let with_issuer = |url: &str| {
        let p = s.env.variant("other.toml", |c| c.edit_issuer(0, |i| i.set("url", url)));
        s.doctor_with(&p).1
    };
    let out = with_issuer("http://127.0.0.1:9");
    assert!(out.contains("[FAIL] issuer http://127.0.0.1:9: discovery unreachable"), "{out}");
    let url = fake_idp("{url}/", &httpdate_now(0));
    let out = with_issuer(&url);
    assert!(out.contains("discovery says issuer") && out.contains("trailing slash"), "{out}");
    let url = fake_idp("{url}", &httpdate_now(-3600));
    let out = with_issuer(&url);
    assert!(out.contains(&format!("[PASS] issuer {url} jwks: 1 usable key(s)")), "{out}");
    assert!(out.contains(&format!("[FAIL] issuer {url} clock: this host's clock is 3600s off")), "{out}");
    let url = fake_idp("{url}", &httpdate_now(0));
    let out = with_issuer(&url);
    assert!(out.contains(&format!("[PASS] issuer {url} clock: skew")), "{out}");
}

/// An HTTP date `offset` seconds from now.
fn httpdate_now(offset: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", now() + offset), "+%a, %d %b %Y %H:%M:%S GMT"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Issue 11: no id key (or one others can read) fails doctor, with the fix.
#[test]
fn id_key_is_required_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let key = s.env.dir.0.join("id.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    s.fails("id key", "group or others may access it");
    std::fs::remove_file(&key).unwrap();
    s.fails("id key", "id.key");
    let out = std::process::Command::new(helperd_bin())
        .args(["--config", &s.env.config.display().to_string(), "id-key", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    s.passes();
    let again = std::process::Command::new(helperd_bin())
        .args(["--config", &s.env.config.display().to_string(), "id-key", "generate"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "an existing key is never replaced without --force");
}

/// Issue 13 (2): without pre-login names the first ssh login of a never-seen
/// user fails; doctor says so and how to fix it.
#[test]
fn pre_login_names_are_required() {
    let s = setup();
    let cfg = std::fs::read_to_string(&s.env.config).unwrap();
    let stripped: String = cfg
        .lines()
        .filter(|l| !l.starts_with("roster_file") && !l.starts_with("prelogin_patterns"))
        .map(|l| format!("{l}\n"))
        .collect();
    let bare = s.env.dir.0.join("bare.toml");
    std::fs::write(&bare, stripped).unwrap();
    let (code, out) = s.doctor_with(&bare);
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.starts_with("[FAIL] pre-login")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("sshd treats the user as invalid"), "{line}");
}

/// Issue 13 (6): `helperd doctor | head` ends quietly (no panic on a closed pipe).
#[test]
fn doctor_into_a_closed_pipe_does_not_panic() {
    let s = setup();
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "({} --config {} doctor) 2>{}/doctor.err | true; sleep 0.2; cat {}/doctor.err",
                helperd_bin().display(),
                s.env.config.display(),
                s.env.dir.0.display(),
                s.env.dir.0.display()
            ),
        ])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(!t.contains("panicked") && !t.contains("Broken pipe"), "{t}");
}

/// Issue 13 (6): stacks with unknown arguments or that lock local users out,
/// and sudoers/polkit grants an IdP group could take, fail doctor.
#[test]
fn stacks_and_privileged_groups() {
    let s = setup();
    std::fs::write(s.pam.join("sudo"), "auth required pam_oidc.so require_groups=ops\n").unwrap();
    s.fails("pam.d/sudo", "unknown pam_oidc argument \"require_groups=ops\"");
    std::fs::write(s.pam.join("sudo"), "auth required pam_oidc.so require_group=ops\naccount required pam_oidc.so\n")
        .unwrap();
    s.fails("pam.d/sudo", "local users");
    std::fs::write(s.pam.join("sudo"), "@include common-oidc\n").unwrap();
    s.passes();
    let sudoers = s.env.dir.0.join("sudoers");
    std::fs::write(&sudoers, "%ops-admins ALL=(ALL:ALL) ALL\n").unwrap();
    s.fails("privileged groups", "ops-admins");
    std::fs::write(&sudoers, "%sudo ALL=(ALL:ALL) ALL\n").unwrap();
    std::fs::write(
        s.env.dir.0.join("polkit/50-x.rules"),
        "if (subject.isInGroup(\"netadmins\")) { return polkit.Result.YES; }\n",
    )
    .unwrap();
    s.fails("privileged groups", "netadmins");
    // An explicit map onto it (a stable id) is fine.
    s.env.edit(|c| c.edit_issuer(0, |i| i.map_group("00000000-aaaa", "netadmins")));
    s.passes();
}

/// Issue 13 (6): with `[aws]` on the instance role, helperd scopes credentials
/// per session — unless any local user can read the instance role from IMDS
/// directly. Doctor probes IMDS as an unprivileged uid and fails if it answers.
#[test]
fn imds_reachable_by_any_user_fails_when_aws_uses_the_instance_role() {
    let s = setup();
    let with_aws = |endpoint: &str, source: &str| {
        let p = s.env.variant(&format!("aws-{source}.toml"), |c| {
            c.aws("imds_endpoint", endpoint).aws_role(
                Table::new()
                    .set("group", "devs")
                    .set("role_arn", "arn:aws:iam::123456789012:role/devs")
                    .set("source", source),
            )
        });
        s.doctor_with(&p)
    };
    // An IMDS that answers anyone (here: a listener on 127.0.0.1).
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (code, out) = with_aws(&format!("http://{}", open.local_addr().unwrap()), "instance");
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.starts_with("[FAIL] imds")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("uid 65534") && line.contains("instance role"), "{line}");
    let fix = out.lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
    assert!(fix.contains("systemctl enable --now pam-oidc-imds-lockdown") && fix.contains("169.254.169.254"), "{fix}");
    // Only root may reach it (here: nothing listens for anyone): passes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (_, out) = with_aws(&format!("http://{closed}"), "instance");
    assert!(out.lines().any(|l| l.starts_with("[PASS] imds") && l.contains("uid 65534")), "{out}");
    // Web identity only: the instance role is not used, nothing to check.
    let (_, out) = with_aws(&format!("http://{}", open.local_addr().unwrap()), "web_identity");
    assert!(out.lines().any(|l| l.starts_with("[PASS] imds") && l.contains("no [[aws.role]]")), "{out}");
    drop(open);
}
