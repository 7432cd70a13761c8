//! Issue 6: the .deb installs cleanly into a Debian bookworm root (debootstrap
//! minbase, cached under target/debootstrap) via chroot + dpkg; the .rpm's file
//! list, modes and scriptlets. Packages come from `scripts/package`. The man
//! pages both packages install (packaging/man/): installed, compressed, clean
//! roff, and in step with the code (every module argument, command and key).

use integration::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package `name` (`pam-oidc`, `pam-oidc-client`) of type `ext` in target/packages.
fn package(name: &str, ext: &str) -> PathBuf {
    let dir = root().join("target/packages");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/package", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            // pam-oidc_0.1.0-1_amd64.deb, pam-oidc-client_0.1.0-1_amd64.deb, pam-oidc-0.1.0-1.x86_64.rpm
            f.strip_prefix(name).is_some_and(|r| {
                r.starts_with('_') || r.starts_with('-') && r[1..].starts_with(|c: char| c.is_ascii_digit())
            })
        })
        .unwrap_or_else(|| panic!("no {name} .{ext} in {}: run scripts/package", dir.display()))
}

fn sh(cmd: &str) -> (bool, String) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// A fresh copy of the cached bookworm minbase root (made once with debootstrap).
fn bookworm() -> TempDir {
    // The tests of this file run side by side: one debootstrap at a time
    // (two into one directory corrupt each other: "Invalid Release signature").
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
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

/// The man pages: (source in packaging/man/, installed path in both packages, `.TH` line start).
const MAN_PAGES: [(&str, &str, &str); 4] = [
    ("pam_oidc.8", "/usr/share/man/man8/pam_oidc.8.gz", ".TH PAM_OIDC 8 "),
    ("helperd.8", "/usr/share/man/man8/helperd.8.gz", ".TH HELPERD 8 "),
    ("pam-oidc.toml.5", "/usr/share/man/man5/pam-oidc.toml.5.gz", ".TH PAM\\-OIDC.TOML 5 "),
    ("pam-oidc.1", "/usr/share/man/man1/pam-oidc.1.gz", ".TH PAM\\-OIDC 1 "),
];

/// A man page's source with roff's escaped hyphens (`\-`) made plain.
fn man_source(name: &str) -> String {
    std::fs::read_to_string(root().join("packaging/man").join(name)).unwrap().replace("\\-", "-")
}

#[test]
fn deb_installs_serves_an_oidc_user_and_purges_cleanly() {
    let r = bookworm();
    let root = &r.0;
    let nss_before = std::fs::read_to_string(root.join("etc/nsswitch.conf")).unwrap();
    std::fs::copy(package("pam-oidc", "deb"), root.join("tmp/pam-oidc.deb")).unwrap();
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
        ("usr/bin/pam-oidc", 0o755),
        ("lib/systemd/system/pam-oidc-helperd.service", 0o644),
        ("lib/systemd/system/pam-oidc-imds-lockdown.service", 0o644),
        ("usr/lib/pam-oidc/pam-oidc-imds.nft", 0o644),
        ("usr/share/pam-configs/oidc", 0o644),
    ] {
        assert_eq!(mode(&root.join(p)), m, "{p}");
    }
    // The IMDS lock-down ships off: nothing wants it until the admin enables it.
    let (_, wants) = chroot(root, "ls /etc/systemd/system/*.wants/ 2>/dev/null");
    assert!(!wants.contains("pam-oidc-imds-lockdown"), "{wants}");
    // Docs by reader, next to a DEP-5 copyright that names the package and its licence.
    for d in ["README.md", "ARCHITECTURE.md", "LICENSE", "docs/install.md", "docs/configuration.md", "docs/tokens.md"] {
        assert_eq!(mode(&root.join("usr/share/doc/pam-oidc").join(d)), 0o644, "{d}");
    }
    let copyright = std::fs::read_to_string(root.join("usr/share/doc/pam-oidc/copyright")).unwrap();
    assert!(
        copyright.starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
            && copyright.contains("Upstream-Name: pam-oidc")
            && copyright.contains("Files: *")
            && copyright.contains("License: Apache-2.0"),
        "{copyright}"
    );
    // The man pages: gzip (-9n, no name or timestamp in the header), the page itself.
    for (src, path, th) in MAN_PAGES {
        let p = root.join(path.trim_start_matches('/'));
        assert_eq!(mode(&p), 0o644, "{path}");
        let gz = std::fs::read(&p).unwrap();
        assert!(gz.starts_with(&[0x1f, 0x8b, 8]), "{path} is not gzip");
        assert_eq!((gz[3], &gz[4..8], gz[8]), (0, &[0u8; 4][..], 2), "{path}: not gzip -9n (name, mtime or level)");
        let (ok, page) = chroot(root, &format!("zcat {path}"));
        assert!(ok && page.lines().any(|l| l.starts_with(th)), "{path}: {page:.200}");
        let source = std::fs::read_to_string(integration::root().join("packaging/man").join(src)).unwrap();
        assert!(page == source, "{path} is not packaging/man/{src}: run scripts/package");
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
    client_runs_and_resolves_names(root, &idp);
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
        "usr/lib/pam-oidc/pam-oidc-imds.nft",
        "lib/systemd/system/pam-oidc-imds-lockdown.service",
        "usr/share/man/man8/pam_oidc.8.gz",
        "usr/share/man/man8/helperd.8.gz",
        "usr/share/man/man5/pam-oidc.toml.5.gz",
        "usr/share/man/man1/pam-oidc.1.gz",
        "usr/bin/pam-oidc",
    ] {
        assert!(!root.join(p).exists(), "{p} left behind");
    }
    assert_eq!(std::fs::read_to_string(root.join("etc/nsswitch.conf")).unwrap(), nss_before);
}

/// The installed client command runs in `root` and reaches a server by name
/// (`localhost`: the static executable's resolver) — here the IdP's discovery
/// document stands in for a CI token service, which answers without a token.
fn client_runs_and_resolves_names(root: &Path, idp: &Idp) {
    let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap_or_default();
    if !hosts.lines().any(|l| l.starts_with("127.0.0.1") && l.split_whitespace().any(|n| n == "localhost")) {
        std::fs::write(root.join("etc/hosts"), format!("{hosts}127.0.0.1 localhost\n")).unwrap();
    }
    let (ok, out) = chroot(root, "/usr/bin/pam-oidc --version");
    assert!(ok && out.starts_with("pam-oidc 0."), "{out}");
    let (ok, out) = chroot(
        root,
        &format!(
            "HOME=/root ACTIONS_ID_TOKEN_REQUEST_URL=http://localhost:{}/.well-known/openid-configuration \\
             ACTIONS_ID_TOKEN_REQUEST_TOKEN=x /usr/bin/pam-oidc token --from github --audience a 2>&1",
            idp.port
        ),
    );
    assert!(!ok && out.contains("no value in the answer"), "{out}");
}

/// The client package alone (laptops, CI images): the static command, the
/// askpass script and the man page, no dependency; the host package, which
/// contains the same command, replaces it.
#[test]
fn client_deb_installs_alone_and_the_host_package_replaces_it() {
    let r = bookworm();
    let root = &r.0;
    std::fs::copy(package("pam-oidc-client", "deb"), root.join("tmp/client.deb")).unwrap();
    std::fs::copy(package("pam-oidc", "deb"), root.join("tmp/pam-oidc.deb")).unwrap();
    let (ok, out) = chroot(root, "dpkg -i /tmp/client.deb 2>&1");
    assert!(ok, "dpkg -i client: {out}");
    for (p, m) in
        [("usr/bin/pam-oidc", 0o755), ("usr/bin/pam-oidc-askpass", 0o755), ("usr/share/man/man1/pam-oidc.1.gz", 0o644)]
    {
        assert_eq!(mode(&root.join(p)), m, "{p}");
    }
    let (_, files) = chroot(root, "dpkg -L pam-oidc-client");
    assert!(!files.contains("helperd") && !files.contains("pam_oidc.so") && !files.contains("/etc/"), "{files}");
    let (_, status) = chroot(root, "dpkg -s pam-oidc-client");
    let depends = status.lines().find_map(|l| l.strip_prefix("Depends:")).unwrap_or("").trim().to_string();
    assert_eq!(depends, "", "a static executable depends on nothing: {status}");
    let idp = Idp::start();
    client_runs_and_resolves_names(root, &idp);
    let (ok, out) = chroot(root, "pam-oidc ssh-config web-1");
    assert!(ok && out.contains("Host web-1"), "{out}");
    // The host package replaces the client package (same /usr/bin/pam-oidc).
    let (ok, out) = chroot(root, "dpkg -i /tmp/pam-oidc.deb 2>&1");
    assert!(ok, "dpkg -i pam-oidc over pam-oidc-client: {out}");
    let (_, status) = chroot(root, "dpkg-query -W -f='${Status}' pam-oidc-client 2>&1");
    assert!(!status.contains("install ok installed"), "{status}");
    assert_eq!(mode(&root.join("usr/bin/pam-oidc")), 0o755);
    let (ok, out) = chroot(root, "dpkg -S /usr/bin/pam-oidc");
    assert!(ok && out.starts_with("pam-oidc:"), "{out}");
}

#[test]
fn rpm_file_list_modes_and_scriptlets() {
    let rpm = package("pam-oidc", "rpm");
    let (ok, list) = sh(&format!("rpm -qlvp {} 2>/dev/null", rpm.display()));
    assert!(ok, "{list}");
    for (path, perms) in [
        ("/usr/sbin/helperd", "-rwxr-xr-x"),
        ("/usr/lib64/security/pam_oidc.so", "-rwxr-xr-x"),
        ("/usr/lib64/libnss_oidc.so.2", "-rwxr-xr-x"),
        ("/etc/pam-oidc/config.toml", "-rw-r--r--"),
        ("/usr/lib/systemd/system/pam-oidc-helperd.service", "-rw-r--r--"),
        ("/usr/lib/systemd/system/pam-oidc-imds-lockdown.service", "-rw-r--r--"),
        ("/usr/lib/pam-oidc/pam-oidc-imds.nft", "-rw-r--r--"),
        ("/usr/lib/pam-oidc/nsswitch", "-rwxr-xr-x"),
        ("/usr/lib/pam-oidc/id-key-init", "-rwxr-xr-x"),
        ("/usr/bin/pam-oidc", "-rwxr-xr-x"),
        (MAN_PAGES[0].1, "-rw-r--r--"),
        (MAN_PAGES[1].1, "-rw-r--r--"),
        (MAN_PAGES[2].1, "-rw-r--r--"),
        (MAN_PAGES[3].1, "-rw-r--r--"),
    ] {
        let line = list.lines().find(|l| l.ends_with(path)).unwrap_or_else(|| panic!("{path} not in\n{list}"));
        assert!(line.starts_with(perms), "{line}");
    }
    // The man pages are documentation (%doc: `rpm --excludedocs` leaves them out).
    let (_, docs) = sh(&format!("rpm -qdp {} 2>/dev/null", rpm.display()));
    for (_, path, _) in MAN_PAGES {
        assert!(docs.lines().any(|l| l == path), "{path} not %doc: {docs}");
    }
    // A real description (not the summary repeated), the licence as %license.
    let (_, info) = sh(&format!("rpm -qip {} 2>/dev/null", rpm.display()));
    let desc = info.split("Description :").nth(1).unwrap_or("");
    assert!(desc.contains("libnss_oidc.so.2") && desc.contains("helperd doctor") && desc.lines().count() > 5, "{info}");
    let (_, lic) = sh(&format!("rpm -qLp {} 2>/dev/null", rpm.display()));
    assert!(lic.contains("/usr/share/licenses/pam-oidc/LICENSE"), "{lic}");
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

#[test]
fn man_pages_are_clean_roff() {
    for (src, _, th) in MAN_PAGES {
        let page = root().join("packaging/man").join(src);
        assert!(std::fs::read_to_string(&page).unwrap().lines().any(|l| l.starts_with(th)), "{src}: no {th}");
        let o = Command::new("groff").args(["-man", "-ww", "-z"]).arg(&page).output().expect("groff (groff-base)");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.is_empty(), "groff -man -ww {src}: {err}");
    }
}

/// The pages document what the code accepts: every pam_oidc argument
/// (`PAM_ARGUMENTS`), every helperd command and option (its usage text), and
/// every config key (the key lists of the config's own unknown-field errors).
#[test]
fn man_pages_cover_every_argument_command_and_key() {
    let pam = man_source("pam_oidc.8");
    for arg in oidc_core::PAM_ARGUMENTS {
        let documented = match arg.strip_suffix('=') {
            Some(_) => pam.contains(&format!("\n.BI {arg} ")),
            None => pam.contains(&format!("\n.B {arg}\n")),
        };
        assert!(documented, "pam_oidc.8 OPTIONS: no entry for {arg}");
    }

    let helperd = man_source("helperd.8");
    let o = Command::new(helperd_bin()).arg("--help").output().unwrap();
    let usage = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut commands = 0;
    for line in usage.lines().skip(2) {
        let indent = line.len() - line.trim_start().len();
        let Some(cmd) =
            line.split_whitespace().next().filter(|w| indent < 8 && w.starts_with(|c: char| c.is_ascii_lowercase()))
        else {
            continue;
        };
        commands += 1;
        assert!(helperd.contains(&format!("\\fB{cmd}")), "helperd.8: no command {cmd}");
    }
    assert!(commands >= 12, "{usage}");
    for opt in usage.split(|c: char| c.is_whitespace() || c == '[' || c == ']').filter(|w| w.starts_with("--")) {
        let opt = opt.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        assert!(helperd.contains(&format!("\\fB{opt}\\fR")), "helperd.8: no option {opt}");
    }

    // pam-oidc(1): every command and option of `pam-oidc --help`.
    let client = man_source("pam-oidc.1");
    let o = Command::new(client_bin()).arg("--help").output().unwrap();
    let usage = String::from_utf8_lossy(&o.stdout).into_owned();
    let cmds: Vec<&str> = usage
        .split("commands:")
        .nth(1)
        .unwrap()
        .split("options")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(cmds.len() >= 8, "{usage}");
    for cmd in cmds {
        assert!(client.contains(&format!("\n.B {cmd}\n")), "pam-oidc.1: no command {cmd}");
    }
    for opt in
        usage.split(|c: char| c.is_whitespace() || c == '[' || c == ']').filter(|w| w.starts_with("--") && w.len() > 2)
    {
        let opt = opt.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        assert!(
            client.contains(&format!("\n.B {opt}\n")) || client.contains(&format!("\n.BI {opt} ")),
            "pam-oidc.1: no option {opt}"
        );
    }

    let toml = man_source("pam-oidc.toml.5");
    for (table, probe) in [
        ("", "zzz = 1"),
        ("helperd", "[helperd]\nzzz = 1"),
        ("pam", "[pam]\nzzz = 1"),
        ("policy", "[policy]\nzzz = 1"),
        ("issuer", "[[issuer]]\nzzz = 1"),
        ("issuer.groups", "[[issuer]]\n[issuer.groups]\nzzz = 1"),
        ("accounts", "[accounts]\nzzz = 1"),
        ("role_account", "[[role_account]]\nzzz = 1"),
        ("aws", "[aws]\nzzz = 1"),
        ("aws.role", "[[aws.role]]\nzzz = 1"),
        ("locks", "[locks]\nzzz = 1"),
        ("locks.ssf", "[[locks.ssf]]\nzzz = 1"),
    ] {
        let text = format!("version = 1\n{probe}\n");
        let e = oidc_core::Config::parse(&text, Path::new("probe.toml")).unwrap_err();
        // serde: "unknown field `zzz`, expected `a`", "... expected `a` or `b`", "... expected one of `a`, `b`, ..."
        let expected = e.message.split_once(", expected ").unwrap_or_else(|| panic!("{table}: {e}")).1;
        let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!keys.is_empty(), "{e}");
        for key in keys {
            let documented = toml.contains(&format!("\\fB{key}\\fR"))
                || toml.contains(&format!("[{key}]"))
                || toml.contains(&format!("{table}.{key}"));
            assert!(documented, "pam-oidc.toml.5: no entry for key {key} of [{table}]");
        }
    }
}
