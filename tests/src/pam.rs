//! The real pam_oidc.so run by pamtester under pam_wrapper with a private
//! service directory (no host PAM config touched).

use crate::{module_so, root, target, Env};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The result of one pamtester run.
#[derive(Debug)]
pub struct PamRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl PamRun {
    /// The module's syslog lines (pam_wrapper prints them on stderr).
    pub fn log(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains("SYSLOG(")).collect()
    }

    pub fn assert_denied(&self, code: &str) {
        assert!(!self.ok, "expected refusal {code}, got success:\n{}", self.stderr);
        let needle = format!("result=deny code={code} ");
        assert!(self.log().iter().any(|l| l.contains(&needle)), "no audit line with {needle:?} in:\n{}", self.stderr);
    }

    pub fn assert_allowed(&self) {
        assert!(self.ok, "expected success:\n{}\n{}", self.stdout, self.stderr);
        assert!(
            self.log().iter().any(|l| l.contains("auth result=allow code=ok")),
            "no allow audit line:\n{}",
            self.stderr
        );
    }
}

/// pamtester (authenticate + acct_mgmt) under pam_wrapper with `svc` as /etc/pam.d,
/// its reply read from stdin. With `private_tmp` (the paths it needs) it runs in its
/// own mount namespace with a private /tmp: pam_wrapper gives each process a config
/// dir /tmp/pam.X with a one-character X, so without it at most ~40 can run at
/// once. Needed paths under /tmp are bound back in from the old /tmp (parked on
/// /mnt inside the namespace; nothing on the host changes).
pub fn pamtester_cmd(svc: &Path, user: &str, private_tmp: &[&Path]) -> Command {
    let mut c = if private_tmp.is_empty() {
        Command::new("pamtester")
    } else {
        let mut script = String::from("set -e; mount -n --bind /tmp /mnt; mount -n -t tmpfs tmpfs /tmp");
        for p in private_tmp {
            if let Ok(rel) = p.strip_prefix("/tmp") {
                script.push_str(&format!(
                    "; mkdir -p '{0}'; mount -n --bind '/mnt/{1}' '{0}'",
                    p.display(),
                    rel.display()
                ));
            }
        }
        // Only pamtester gets pam_wrapper: preloaded into unshare/sh/mount it would
        // clean other processes' /tmp/pam.X dirs on the host as "stale".
        script.push_str("; exec env LD_PRELOAD=libpam_wrapper.so pamtester \"$@\"");
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"]);
        c
    };
    if private_tmp.is_empty() {
        c.env("LD_PRELOAD", "libpam_wrapper.so");
    }
    c.args(["-v", "oidc-test", user, "authenticate", "acct_mgmt"])
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", svc)
        .env("PAM_WRAPPER_DEBUGLEVEL", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Wait for a pamtester started by [`pamtester_cmd`] whose reply was written.
pub fn pam_finish(child: Child, started: Instant) -> PamRun {
    let out = child.wait_with_output().unwrap();
    PamRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// One pamtester run under pam_wrapper with `svc` as /etc/pam.d.
/// Each run gets a private /tmp (pam_wrapper's one-character config dirs
/// cannot collide between parallel tests; a collision after the module ran
/// could not be retried: the token was used).
fn pamtester(svc: &Path, user: &str, reply: &str) -> PamRun {
    let t = Instant::now();
    let env_dir = svc.parent().unwrap_or(svc);
    let repo = root();
    let mut child = pamtester_cmd(svc, user, &[env_dir, repo.as_path(), &target()])
        .spawn()
        .expect("pamtester (apt-get install pamtester libpam-wrapper)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(format!("{reply}\n").as_bytes());
    }
    pam_finish(child, t)
}

/// How many times [`Env::pam_with`] runs pamtester when pam_wrapper's config dir collides.
const PAM_WRAPPER_ATTEMPTS: usize = 10;

impl Env {
    /// Run pamtester for `user` with `reply` on stdin through a stack of
    /// `auth` + `account` lines using `module` with `args`.
    pub fn pam_with(&self, module: &Path, args: &str, user: &str, reply: &str) -> PamRun {
        let svc = self.service_dir(module, args);
        let mut last = None;
        for _ in 0..PAM_WRAPPER_ATTEMPTS {
            let run = pamtester(&svc, user, reply);
            // pam_wrapper names its per-process config dir /tmp/pam.X with one character;
            // under heavy parallelism two processes can get the same one and one of them
            // loses its config (before pam_start even loads the module). That is the
            // harness, not the module: run it again.
            // Only when the module never ran (no audit line): a token that reached
            // helperd was used, and each token logs in once.
            let collided = (run.stderr.contains("Failed to create pam_wrapper config dir")
                || run.stderr.contains("pam_start: failed to initialize handlers"))
                && !run.stderr.contains("SYSLOG(");
            if !collided {
                return run;
            }
            last = Some(run);
        }
        panic!(
            "pamtester for {user}: pam_wrapper could not set up its config dir in {PAM_WRAPPER_ATTEMPTS} attempts; last run:\n{last:#?}"
        )
    }

    /// The PAM service dir (`oidc-test`: auth + account lines using `module` with `args`).
    pub fn service_dir(&self, module: &Path, args: &str) -> PathBuf {
        let svc = self.dir.0.join("pam.d");
        std::fs::create_dir_all(&svc).unwrap();
        let line =
            |kind: &str| format!("{kind} required {} config={} {args}\n", module.display(), self.config.display());
        // Replace by rename: concurrent runs must never see a half-written stack.
        let put = |name: &str, text: String| {
            let p = svc.join(name);
            if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
                let tmp = svc.join(format!(".{name}.{}.{:?}", std::process::id(), std::thread::current().id()));
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(tmp, p).unwrap();
            }
        };
        put("oidc-test", format!("{}{}", line("auth"), line("account")));
        put("other", "auth required pam_deny.so\naccount required pam_deny.so\n".into());
        svc
    }

    /// pamtester through a stack of our own: `{M}` in `lines` is the module
    /// with this env's config.
    pub fn pam_lines(&self, lines: &str, user: &str, reply: &str) -> PamRun {
        let svc = self.service_dir(&module_so(), "");
        let m = format!("{} config={}", module_so().display(), self.config.display());
        let p = svc.join("oidc-test-lines");
        std::fs::write(&p, lines.replace("{M}", &m)).unwrap();
        let stack = std::fs::read_to_string(&p).unwrap();
        std::fs::write(svc.join("oidc-test"), stack).unwrap();
        pamtester(&svc, user, reply)
    }

    pub fn pam(&self, user: &str, token: &str) -> PamRun {
        self.pam_with(&module_so(), "", user, token)
    }
}
