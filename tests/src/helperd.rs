//! A real helperd: started on an [`Env`]'s config, killed by PID on drop; and
//! requests for driving it directly.

use crate::{die_with_parent, helperd_bin, kill, now, nss, wait_for, Env};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One helperd process.
pub struct Helperd {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Helperd {
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for Helperd {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A test may have stopped it with SIGSTOP: continue it so it can die.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
        }
        self.stop();
    }
}

impl Env {
    pub fn start_helperd(&self) -> Helperd {
        let mut c = Command::new(helperd_bin());
        c.args(["--config".as_ref(), self.config.as_os_str(), "run".as_ref()]);
        self.spawn_helperd(c)
    }

    /// helperd with the packaged unit's capabilities only
    /// (`CapabilityBoundingSet=CAP_KILL`): root that cannot override file
    /// permissions, trace, or change ids — what it can do there, it can do here.
    pub fn start_helperd_as_packaged(&self) -> Helperd {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set=-all,+kill", "--inh-caps=-all", "--no-new-privs", "--"]).arg(helperd_bin()).args([
            "--config".as_ref(),
            self.config.as_os_str(),
            "run".as_ref(),
        ]);
        self.spawn_helperd(c)
    }

    /// Start `c` (helperd, perhaps wrapped) and wait until it answers.
    fn spawn_helperd(&self, mut c: Command) -> Helperd {
        let log = self.dir.0.join(format!("helperd-{}.log", now()));
        let child =
            die_with_parent(&mut c).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
        let sock = self.socket();
        wait_for("helperd socket", Duration::from_secs(10), || {
            oidc_core::ipc_call(&sock, &oidc_core::Request::Ping, Duration::from_secs(1)).is_ok()
        });
        Helperd { child: Some(child), log }
    }

    /// helperd in a private mount namespace whose glibc sees `ns`'s nsswitch.conf
    /// (and its snapshot as another NSS source), as a host with sss/ldap would.
    pub fn start_helperd_in(&self, ns: &nss::NssNs) -> Helperd {
        let script = format!(
            "mount -n --bind {0}/nsswitch.conf /etc/nsswitch.conf && mount -n --bind {0}/ld.so.cache /etc/ld.so.cache && exec \"$@\"",
            ns.dir.0.display()
        );
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(helperd_bin())
            .args(["--config".as_ref(), self.config.as_os_str(), "run".as_ref()])
            .env("NSS_OIDC_SNAPSHOT", &ns.snapshot);
        self.spawn_helperd(c)
    }

    /// Wait until helperd's first fetch has written the issuer's cache.
    pub fn wait_cached(&self, issuer: &str) {
        let p = oidc_core::jwks_cache_path(&self.cache_dir(), issuer);
        wait_for("JWKS cache file", Duration::from_secs(15), || p.exists());
    }
    /// `helperd check-token` with `token` on stdin: (exit code, stdout).
    pub fn check_token(&self, token: &str, extra: &[&str]) -> (i32, String) {
        let mut child = Command::new(helperd_bin())
            .args(["--config".as_ref(), self.config.as_os_str(), "check-token".as_ref()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(token.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A Login request as pam_oidc sends it after verifying a token (for driving helperd directly).
pub fn login_request(issuer: &str, sub: &str, name: &str, groups: &[String], gecos: &str) -> oidc_core::Request {
    let event = oidc_core::LoginEvent {
        issuer: issuer.into(),
        sub: sub.into(),
        name: name.into(),
        groups: groups.to_vec(),
        uid_claim: None,
        gecos: gecos.into(),
    };
    let claims = oidc_core::SessionClaims {
        issuer: issuer.into(),
        sub: sub.into(),
        account: name.into(),
        identity: name.into(),
        groups: groups.to_vec(),
        idp_groups: groups.to_vec(),
        jti: None,
        sid: None,
        exp: now() + 60,
        iat: now(),
        auth_time: None,
        acr: None,
        verified_at: 0,
        identity_id: String::new(),
    };
    oidc_core::Request::Login { event: Some(event), claims, web_token: None, role_groups: vec![], replay_id: None }
}
