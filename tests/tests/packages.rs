//! Issue 6: the .deb installs cleanly into a Debian bookworm root (debootstrap
//! minbase, cached under target/debootstrap) via chroot + dpkg; the .rpm's file
//! list, modes and scriptlets. Packages come from `scripts/package`.

use integration::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn package(ext: &str) -> PathBuf {
    let dir = root().join("target/packages");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/package", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == ext))
        .unwrap_or_else(|| panic!("no .{ext} in {}: run scripts/package", dir.display()))
}

fn sh(cmd: &str) -> (bool, String) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// A fresh copy of the cached bookworm minbase root (made once with debootstrap).
fn bookworm() -> TempDir {
    let cache = root().join("target/debootstrap/bookworm");
    if !cache.exists() {
        let tmp = cache.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let (ok, out) =
            sh(&format!("debootstrap --variant=minbase bookworm {} http://deb.debian.org/debian", tmp.display()));
        assert!(ok, "debootstrap: {out}");
        std::fs::rename(&tmp, &cache).unwrap();
    }
    let dir = TempDir::new("chroot");
    let (ok, out) = sh(&format!("cp -a {}/. {}/", cache.display(), dir.0.display()));
    assert!(ok, "{out}");
    dir
}

fn chroot(root: &Path, cmd: &str) -> (bool, String) {
    sh(&format!("chroot {} /bin/sh -c '{cmd}'", root.display()))
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

#[test]
fn deb_installs_serves_an_oidc_user_and_purges_cleanly() {
    let r = bookworm();
    let root = &r.0;
    let nss_before = std::fs::read_to_string(root.join("etc/nsswitch.conf")).unwrap();
    std::fs::copy(package("deb"), root.join("tmp/pam-oidc.deb")).unwrap();
    for round in 0..2 {
        let (ok, out) = chroot(root, "dpkg -i /tmp/pam-oidc.deb");
        assert!(ok, "dpkg -i: {out}");
        if round == 0 {
            // The operator edits the config and helperd has state: a reinstall/upgrade keeps both.
            let cfg = root.join("etc/pam-oidc/config.toml");
            let edited = format!("{}\n# local edit\n", std::fs::read_to_string(&cfg).unwrap());
            std::fs::write(&cfg, edited).unwrap();
            std::fs::create_dir_all(root.join("var/lib/pam-oidc")).unwrap();
            std::fs::write(root.join("var/lib/pam-oidc/accounts.json"), "{\"v\":1,\"users\":[],\"groups\":[]}")
                .unwrap();
        }
    }
    assert!(std::fs::read_to_string(root.join("etc/pam-oidc/config.toml")).unwrap().contains("# local edit"));
    assert!(root.join("var/lib/pam-oidc/accounts.json").exists());
    // The install made this host's id key (0600 root, 128 bits); a reinstall kept it.
    let key = std::fs::read_to_string(root.join("etc/pam-oidc/id.key")).unwrap();
    assert!(nss_snapshot::format::IdKey::parse(key.as_bytes()).is_ok(), "{key:?}");
    assert_eq!(mode(&root.join("etc/pam-oidc/id.key")), 0o600);
    let (ok, out) = chroot(root, "/usr/lib/pam-oidc/id-key-init");
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(root.join("etc/pam-oidc/id.key")).unwrap(), key, "never replaced");
    // Files, paths and modes.
    for (p, m) in [
        ("usr/sbin/helperd", 0o755),
        ("usr/lib/x86_64-linux-gnu/security/pam_oidc.so", 0o644),
        ("usr/lib/x86_64-linux-gnu/libnss_oidc.so.2", 0o644),
        ("etc/pam-oidc/config.toml", 0o644),
        ("usr/bin/pam-oidc-askpass", 0o755),
        ("lib/systemd/system/pam-oidc-helperd.service", 0o644),
        ("usr/share/pam-configs/oidc", 0o644),
    ] {
        assert_eq!(mode(&root.join(p)), m, "{p}");
    }
    let (_, conffiles) = chroot(root, "cat /var/lib/dpkg/info/pam-oidc.conffiles");
    assert!(conffiles.contains("/etc/pam-oidc/config.toml"), "{conffiles}");
    // nsswitch: oidc once, after files, even after installing twice.
    let nss = std::fs::read_to_string(root.join("etc/nsswitch.conf")).unwrap();
    for db in ["passwd", "group"] {
        let line = nss.lines().find(|l| l.starts_with(&format!("{db}:"))).unwrap();
        assert_eq!(line.matches("oidc").count(), 1, "{line}");
        assert!(line.find("files").unwrap() < line.find("oidc").unwrap(), "{line}");
    }
    // The profile is off by default: common-auth does not use pam_oidc yet.
    let common = std::fs::read_to_string(root.join("etc/pam.d/common-auth")).unwrap();
    assert!(!common.contains("pam_oidc"), "{common}");

    // The installed helperd serves an OIDC (roster) user to the chroot's glibc.
    let idp = Idp::start();
    std::fs::write(root.join("etc/pam-oidc/roster"), "zoe\n").unwrap();
    std::fs::write(
        root.join("etc/pam-oidc/test.toml"),
        format!(
            "version = 1\n[[issuer]]\nurl = \"{}\"\naudiences = [\"host-login\"]\n[accounts]\nroster_file = \"/etc/pam-oidc/roster\"\n",
            idp.issuer()
        ),
    )
    .unwrap();
    let mut helperd = die_with_parent(&mut Command::new("chroot"))
        .arg(root)
        .args(["/usr/sbin/helperd", "--config", "/etc/pam-oidc/test.toml", "run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !root.join("var/cache/pam-oidc/nss.snapshot").exists() && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (ok, out) = chroot(root, "getent passwd zoe");
    let _ = helperd.kill();
    let _ = helperd.wait();
    assert!(ok && out.starts_with("zoe:*:") && out.contains(":/home/zoe:/bin/bash"), "getent in the chroot: {out}");
    assert_eq!(mode(&root.join("var/lib/pam-oidc")), 0o700);

    // The profile, enabled by pam-auth-update, puts the module before pam_unix
    // with the fall-through control fields (local users untouched).
    let (ok, out) = chroot(root, "pam-auth-update --package --enable oidc");
    assert!(ok, "pam-auth-update: {out}");
    let common = std::fs::read_to_string(root.join("etc/pam.d/common-auth")).unwrap();
    let ours = common.lines().position(|l| l.contains("pam_oidc.so")).expect("pam_oidc in common-auth");
    let unix = common.lines().position(|l| l.contains("pam_unix.so")).unwrap();
    assert!(ours < unix && common.contains("ignore=ignore") && common.contains("default=die"), "{common}");
    // A hand-edited stack still naming the module: removal says so, loudly.
    std::fs::write(root.join("etc/pam.d/sudo-test"), "auth required pam_oidc.so\n").unwrap();
    // Purge: everything gone, nsswitch as it was.
    let (ok, out) = chroot(root, "dpkg --purge pam-oidc 2>&1");
    assert!(ok, "dpkg --purge: {out}");
    assert!(out.contains("WARNING: /etc/pam.d/sudo-test still uses pam_oidc.so"), "{out}");
    assert!(!std::fs::read_to_string(root.join("etc/pam.d/common-auth")).unwrap().contains("pam_oidc"));
    for p in [
        "usr/sbin/helperd",
        "usr/lib/x86_64-linux-gnu/libnss_oidc.so.2",
        "etc/pam-oidc/config.toml",
        "etc/pam-oidc/id.key",
        "var/lib/pam-oidc",
        "var/cache/pam-oidc",
    ] {
        assert!(!root.join(p).exists(), "{p} left behind");
    }
    assert_eq!(std::fs::read_to_string(root.join("etc/nsswitch.conf")).unwrap(), nss_before);
}

#[test]
fn rpm_file_list_modes_and_scriptlets() {
    let rpm = package("rpm");
    let (ok, list) = sh(&format!("rpm -qlvp {} 2>/dev/null", rpm.display()));
    assert!(ok, "{list}");
    for (path, perms) in [
        ("/usr/sbin/helperd", "-rwxr-xr-x"),
        ("/usr/lib64/security/pam_oidc.so", "-rwxr-xr-x"),
        ("/usr/lib64/libnss_oidc.so.2", "-rwxr-xr-x"),
        ("/etc/pam-oidc/config.toml", "-rw-r--r--"),
        ("/usr/lib/systemd/system/pam-oidc-helperd.service", "-rw-r--r--"),
        ("/usr/lib/pam-oidc/nsswitch", "-rwxr-xr-x"),
        ("/usr/lib/pam-oidc/id-key-init", "-rwxr-xr-x"),
    ] {
        let line = list.lines().find(|l| l.ends_with(path)).unwrap_or_else(|| panic!("{path} not in\n{list}"));
        assert!(line.starts_with(perms), "{line}");
    }
    let (_, cfg) = sh(&format!("rpm -qpc {} 2>/dev/null", rpm.display()));
    assert!(cfg.contains("/etc/pam-oidc/config.toml"), "config file: {cfg}");
    let (_, scripts) = sh(&format!("rpm -qp --scripts {} 2>/dev/null", rpm.display()));
    assert!(
        scripts.contains("postinstall scriptlet")
            && scripts.contains("/usr/lib/pam-oidc/nsswitch add")
            && scripts.contains("/usr/lib/pam-oidc/id-key-init"),
        "{scripts}"
    );
    assert!(
        scripts.contains("preuninstall scriptlet") && scripts.contains("/usr/lib/pam-oidc/nsswitch remove"),
        "{scripts}"
    );
    assert!(scripts.contains("ldconfig"), "{scripts}");
}

#[test]
fn nsswitch_helper_is_idempotent_and_reversible() {
    let d = TempDir::new("nsswitch");
    let f = d.0.join("nsswitch.conf");
    let original = "passwd:         files systemd\ngroup:          files [SUCCESS=merge] systemd\nshadow:         files\nhosts: files dns\n";
    std::fs::write(&f, original).unwrap();
    let helper = root().join("packaging/nsswitch");
    for _ in 0..3 {
        assert!(sh(&format!("{} add {}", helper.display(), f.display())).0);
    }
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(
        t.contains("passwd:         files systemd oidc\n")
            && t.contains("group:          files [SUCCESS=merge] systemd oidc\n"),
        "{t}"
    );
    assert!(t.contains("shadow:         files\n"), "{t}");
    assert!(sh(&format!("{} remove {}", helper.display(), f.display())).0);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), original);
}
