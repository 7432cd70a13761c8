//! Real glibc NSS in a private mount namespace (TESTING.md layer 2): a
//! modified nsswitch.conf and an ld.so.cache that knows our library are
//! bind-mounted (`mount -n`) over the host's, for the child only.

use crate::TempDir;
use std::path::PathBuf;
use std::process::{Command, Output};

pub struct NssNs {
    pub dir: TempDir,
    pub snapshot: PathBuf,
}

impl NssNs {
    /// `passwd`/`group` lines, e.g. "files oidc".
    pub fn new(passwd: &str, group: &str) -> NssNs {
        let mut ns = NssNs::setup(passwd, group);
        ns.snapshot = ns.dir.0.join("nss.snapshot");
        ns
    }

    /// Serve the snapshot at `snapshot` (e.g. the one a test's helperd writes).
    pub fn at(snapshot: &std::path::Path, passwd: &str, group: &str) -> NssNs {
        let mut ns = NssNs::setup(passwd, group);
        ns.snapshot = snapshot.to_path_buf();
        ns
    }

    fn setup(passwd: &str, group: &str) -> NssNs {
        let dir = TempDir::new("nss");
        let d = &dir.0;
        let lib = d.join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::copy(crate::nss_so(), lib.join("libnss_oidc.so.2")).unwrap();
        let host = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
        let mut conf: String = host
            .lines()
            .filter(|l| !l.starts_with("passwd:") && !l.starts_with("group:"))
            .map(|l| format!("{l}\n"))
            .collect();
        conf.push_str(&format!("passwd: {passwd}\ngroup: {group}\n"));
        std::fs::write(d.join("nsswitch.conf"), conf).unwrap();
        let ldconf = format!("{}\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n/lib\n/usr/lib\n", lib.display());
        std::fs::write(d.join("ld.so.conf"), ldconf).unwrap();
        let st = Command::new("ldconfig")
            .arg("-X")
            .arg("-C")
            .arg(d.join("ld.so.cache"))
            .arg("-f")
            .arg(d.join("ld.so.conf"))
            .status()
            .unwrap();
        assert!(st.success(), "ldconfig");
        NssNs { dir, snapshot: PathBuf::new() }
    }

    pub fn write(&self, users: &[nss_snapshot::format::User], groups: &[nss_snapshot::format::Group]) {
        let b = nss_snapshot::format::build(users, groups, 1).unwrap();
        let tmp = self.snapshot.with_extension("tmp");
        std::fs::write(&tmp, b).unwrap();
        std::fs::rename(tmp, &self.snapshot).unwrap();
    }

    /// Run `argv` with real glibc seeing our nsswitch.conf, in a private mount namespace.
    pub fn run(&self, argv: &[&str]) -> Output {
        let d = &self.dir.0;
        let script = format!(
            "mount -n --bind {0}/nsswitch.conf /etc/nsswitch.conf && mount -n --bind {0}/ld.so.cache /etc/ld.so.cache && exec \"$@\"",
            d.display()
        );
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .args(argv)
            .env("NSS_OIDC_SNAPSHOT", &self.snapshot)
            .output()
            .unwrap()
    }

    pub fn stdout(&self, argv: &[&str]) -> (bool, String) {
        let o = self.run(argv);
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
    }
}
