//! TESTING.md layer 3: real sshd, real sudo, real /bin/login, real glibc NSS
//! and real libpam in a private mount namespace; the host is untouched.
//!
//! Inside the namespace: tmpfs on /run, /var/log, /var/lib/sudo, /home and
//! /var/cache (with the test env bound at /var/cache/pam-oidc, so the default
//! NSS snapshot path works for setuid sudo too); a rebuilt /dev whose /dev/log
//! is a datagram socket this harness reads (the captured syslog); copies of
//! /etc/pam.d, nsswitch.conf, ld.so.cache and sudoers bound over the host's.
//! sshd runs with `-D` and is killed by PID.

use crate::{free_port, Env, TempDir};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SshHost {
    pub dir: TempDir,
    pub port: u16,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _log_sock: Arc<UnixDatagram>,
}

/// PAM stacks for the namespace (file name → content); `{MODULE}` and
/// `{CONFIG}` are replaced.
pub struct Stacks(pub Vec<(&'static str, String)>);

impl Stacks {
    /// sshd with a device-code login, sudo and login as in `standard`.
    pub fn device() -> Stacks {
        let mut s = Stacks::standard("");
        s.0[0].1 = s.0[0].1.replacen(
            "auth required {MODULE} config={CONFIG}",
            "auth required {MODULE} config={CONFIG} device_code",
            1,
        );
        s
    }

    /// sshd with a push login (CIBA), sudo stepping up by push, login as in `standard`.
    pub fn ciba() -> Stacks {
        let mut s = Stacks::standard("ciba step_up");
        s.0[0].1 = s.0[0].1.replacen(
            "auth required {MODULE} config={CONFIG}",
            "auth required {MODULE} config={CONFIG} ciba",
            1,
        );
        s
    }

    /// The stacks docs/pam-stacks.md ships: our lines with explicit control fields
    /// before the host's common stacks, so local users fall through to pam_unix.
    pub fn shipped(sudo_args: &str) -> Stacks {
        let m = "{MODULE} config={CONFIG}";
        let auth = "[success=done ignore=ignore default=die]";
        let acct = "[success=ok ignore=ignore default=bad]";
        Stacks(vec![
            (
                "sshd",
                format!(
                    "auth {auth} {m}\n@include common-auth\naccount {acct} {m}\n@include common-account\n\
                     session required pam_mkhomedir.so skel=/etc/skel umask=0077\n@include common-session\nsession optional {m}\n"
                ),
            ),
            (
                "sudo",
                format!(
                    "auth {auth} {m} {sudo_args}\n@include common-auth\naccount {acct} {m} {sudo_args}\n@include common-account\n\
                     @include common-session-noninteractive\n"
                ),
            ),
            ("login", format!("auth {auth} {m}\n@include common-auth\naccount {acct} {m}\n@include common-account\n")),
        ])
    }

    /// No stack of ours: the host's stacks as they are, with the pam-auth-update
    /// profile (packaging/pam-configs/oidc) enabled by pam-auth-update itself.
    pub fn profile() -> Stacks {
        Stacks(vec![])
    }

    pub fn standard(extra_sudo_args: &str) -> Stacks {
        let m = "{MODULE} config={CONFIG}";
        Stacks(vec![
            (
                "sshd",
                format!(
                    "auth required {m}\naccount required {m}\nsession required pam_mkhomedir.so skel=/etc/skel umask=0077\nsession required {m}\n"
                ),
            ),
            ("sudo", format!("auth required {m} {extra_sudo_args}\naccount required {m} {extra_sudo_args}\n")),
            ("login", format!("auth required {m}\naccount required {m}\nsession required {m}\n")),
        ])
    }
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// Local accounts for [`SshHost::start_with_locals`]: `lkey` (key login
/// only), `lpass` (password [`LOCAL_PASSWORD`]), `ladmin` (key login, a
/// NOPASSWD sudoer, as on EC2), and `deploy` (no password, no key: the
/// account a `[[role_account]]` rule lets CI jobs log in as).
pub const LOCAL_PASSWORD: &str = "Local-Pass-123";

impl SshHost {
    pub fn start(env: &Env, stacks: &Stacks, sudoers: &str) -> SshHost {
        SshHost::start_inner(env, stacks, sudoers, false)
    }

    /// [`SshHost::start`] with local accounts (passwd/shadow/group copies with
    /// `lkey`, `lpass`, `ladmin` bound over the host's in the namespace), and
    /// publickey allowed beside keyboard-interactive. With [`Stacks::profile`]
    /// the pam-auth-update profile is enabled with pam-auth-update.
    pub fn start_with_locals(env: &Env, stacks: &Stacks, sudoers: &str) -> SshHost {
        SshHost::start_inner(env, stacks, sudoers, true)
    }

    /// The client key of the local key users.
    pub fn client_key(&self) -> PathBuf {
        self.dir.0.join("client_key")
    }

    fn start_inner(env: &Env, stacks: &Stacks, sudoers: &str, locals: bool) -> SshHost {
        let dir = TempDir::new("sshd");
        let d = dir.0.clone();
        let port = free_port();
        // Config files for the namespace.
        sh(&format!("cp -a /etc/pam.d {0}/pam.d && ssh-keygen -q -t ed25519 -N '' -f {0}/hostkey", d.display()));
        let module = crate::module_so();
        for (name, text) in &stacks.0 {
            let t = text
                .replace("{MODULE}", &module.display().to_string())
                .replace("{CONFIG}", &env.config.display().to_string());
            std::fs::write(d.join("pam.d").join(name), t).unwrap();
        }
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/hostkey\nPidFile none\nUsePAM yes\nKbdInteractiveAuthentication yes\n\
                 PasswordAuthentication no\nPubkeyAuthentication {pk}\nPermitRootLogin no\nAuthenticationMethods {methods}\n\
                 LogLevel VERBOSE\nSyslogFacility AUTH\nStrictModes no\nUseDNS no\nPrintMotd no\nLoginGraceTime 60\nMaxStartups 100\n",
                d.display(),
                pk = if locals { "yes" } else { "no" },
                methods = if locals { "publickey keyboard-interactive" } else { "keyboard-interactive" },
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("sudoers"),
            format!("Defaults !lecture\nDefaults !fqdn\nDefaults timestamp_timeout=0\n{sudoers}\n"),
        )
        .unwrap();
        let nss = crate::nss::NssNs::new("files oidc", "files [SUCCESS=merge] oidc");
        for f in ["nsswitch.conf", "ld.so.cache"] {
            std::fs::copy(nss.dir.0.join(f), d.join(f)).unwrap();
        }
        std::fs::create_dir_all(d.join("lib")).unwrap();
        // The snapshot library path inside ld.so.cache points into `nss.dir`; keep a copy alive.
        sh(&format!("cp -a {}/lib/. {}/lib/", nss.dir.0.display(), d.display()));
        let cache = d.join("ld.so.conf");
        std::fs::write(
            &cache,
            format!("{}/lib\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n/lib\n/usr/lib\n", d.display()),
        )
        .unwrap();
        sh(&format!("ldconfig -X -C {0}/ld.so.cache -f {0}/ld.so.conf", d.display()));
        let mut extra = String::new();
        if locals {
            sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}/client_key", d.display()));
            let hash = Command::new("openssl").args(["passwd", "-6", LOCAL_PASSWORD]).output().unwrap();
            let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
            let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
            let mut shadow = std::fs::read_to_string("/etc/shadow").unwrap();
            let mut group = std::fs::read_to_string("/etc/group").unwrap();
            for (name, id, pw) in
                [("lkey", 2901, "*"), ("lpass", 2902, hash.as_str()), ("ladmin", 2903, "*"), ("deploy", 2904, "*")]
            {
                passwd.push_str(&format!("{name}:x:{id}:{id}::/home/{name}:/bin/sh\n"));
                shadow.push_str(&format!("{name}:{pw}:19000:0:99999:7:::\n"));
                group.push_str(&format!("{name}:x:{id}:\n"));
            }
            std::fs::write(d.join("passwd"), passwd).unwrap();
            std::fs::write(d.join("shadow"), shadow).unwrap();
            std::fs::write(d.join("group"), group).unwrap();
            sh(&format!("chmod 640 {}/shadow", d.display()));
            extra.push_str(
                "mount -n --bind $D/passwd /etc/passwd\nmount -n --bind $D/shadow /etc/shadow\nmount -n --bind $D/group /etc/group\n",
            );
            for (name, id) in [("lkey", 2901), ("lpass", 2902), ("ladmin", 2903)] {
                extra.push_str(&format!(
                    "mkdir -p /home/{name}/.ssh && cp $D/client_key.pub /home/{name}/.ssh/authorized_keys && chown -R {id}:{id} /home/{name}\n"
                ));
            }
            extra.push_str("mkdir -p /home/deploy && chown 2904:2904 /home/deploy\n");
        }
        if stacks.0.is_empty() {
            // The packaged profile, with this build's module and config, enabled by pam-auth-update.
            let profile = std::fs::read_to_string(crate::root().join("packaging/pam-configs/oidc"))
                .unwrap()
                .replace("pam_oidc.so", &format!("{} config={}", module.display(), env.config.display()));
            sh(&format!(
                "cp -a /usr/share/pam-configs {0}/pam-configs && cp -a /var/lib/pam {0}/var-lib-pam",
                d.display()
            ));
            std::fs::write(d.join("pam-configs/oidc"), profile).unwrap();
            extra.push_str(
                "mount -n --bind $D/pam-configs /usr/share/pam-configs\nmount -n --bind $D/var-lib-pam /var/lib/pam\n\
                 DEBIAN_FRONTEND=noninteractive pam-auth-update --package --enable oidc\n",
            );
        }
        // The captured syslog.
        let log_path = d.join("log.sock");
        let sock = Arc::new(UnixDatagram::bind(&log_path).unwrap());
        let logs = Arc::new(Mutex::new(vec![]));
        {
            let (sock, logs) = (sock.clone(), logs.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = sock.recv(&mut buf) {
                    logs.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            });
        }
        let script = format!(
            r#"set -e
D={d}
mkdir -p $D/olddev && mount -n --bind /dev $D/olddev
mount -n -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount -n --bind $D/olddev/$n /dev/$n; done
mkdir /dev/pts /dev/shm && mount -n -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts && ln -s pts/ptmx /dev/ptmx
mount -n -t tmpfs tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd && ln -s /proc/self/fd/0 /dev/stdin && ln -s /proc/self/fd/1 /dev/stdout && ln -s /proc/self/fd/2 /dev/stderr
touch /dev/log && mount -n --bind $D/log.sock /dev/log
mount -n -t tmpfs tmpfs /run && mkdir -p /run/sshd && chmod 755 /run/sshd
mount -n -t tmpfs tmpfs /var/log
mkdir -p /var/lib/sudo && mount -n -t tmpfs -o mode=711 tmpfs /var/lib/sudo
mount -n -t tmpfs tmpfs /home
mount -n -t tmpfs tmpfs /var/cache && mkdir -p /var/cache/pam-oidc && mount -n --bind {env} /var/cache/pam-oidc
mount -n --bind $D/pam.d /etc/pam.d
mount -n --bind $D/nsswitch.conf /etc/nsswitch.conf
mount -n --bind $D/ld.so.cache /etc/ld.so.cache
mount -n --bind $D/sudoers /etc/sudoers
{extra}exec /usr/sbin/sshd -D -f $D/sshd_config
"#,
            d = d.display(),
            env = env.dir.0.display()
        );
        let child = crate::die_with_parent(&mut Command::new("unshare"))
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "sshd did not start: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        drop(nss);
        SshHost { dir, port, child, logs, _log_sock: sock }
    }

    /// Everything logged to syslog inside the namespace so far.
    pub fn syslog(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("sshd.log")).unwrap_or_default()
    }

    /// Wait until a syslog line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let t = Instant::now();
        loop {
            if let Some(l) = self.syslog().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no syslog line with {needle:?} in:\n{}",
                self.syslog().join("\n")
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Run a command inside the namespace (nsenter into sshd's mount namespace).
    pub fn exec(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.child.id().to_string(), "-m", "--"]).args(argv);
        c
    }

    /// /bin/login on a pseudo-terminal inside the namespace, answering the
    /// token prompts with the askpass helper's parts; returns the terminal text.
    pub fn console_login(&self, user: &str, token_file: &Path) -> String {
        let driver = crate::root().join("tests/fixtures/login_pty.py");
        let out = self
            .exec(&[
                "timeout",
                "60",
                "/usr/bin/python3",
                &driver.display().to_string(),
                user,
                &askpass().display().to_string(),
            ])
            .env("OIDC_TOKEN_FILE", token_file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ssh user@host -- command`, answering keyboard-interactive prompts with
    /// the askpass helper (SSH_ASKPASS) reading the token from `token_file`.
    pub fn ssh(&self, user: &str, token_file: &Path, command: &str) -> Output {
        self.ssh_with(user, token_file, command, &askpass())
    }

    /// ssh as a local key user (publickey only); runs `command`.
    pub fn ssh_key(&self, user: &str, command: &str) -> Output {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &self.port.to_string(), "-i"])
            .arg(self.client_key())
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .args(["-o", "PreferredAuthentications=publickey", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
            .arg(format!("{user}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// [`SshHost::ssh`] with another askpass program.
    pub fn ssh_with(&self, user: &str, token_file: &Path, command: &str, askpass: &Path) -> Output {
        self.ssh_client(user, token_file, command, askpass, "ERROR")
    }

    /// [`SshHost::ssh`] as a user's client shows it (ssh's default log level,
    /// at which keyboard-interactive instructions, e.g. a refusal, are printed).
    pub fn ssh_as_user_sees_it(&self, user: &str, token_file: &Path, command: &str) -> Output {
        self.ssh_client(user, token_file, command, &askpass(), "INFO")
    }

    /// [`SshHost::ssh`] left running: the client's stdout is piped (kill it by PID).
    pub fn ssh_spawn(&self, user: &str, token_file: &Path, command: &str) -> std::process::Child {
        let mut c = self.ssh_command(user, token_file, command, &askpass(), "ERROR");
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    }

    fn ssh_client(&self, user: &str, token_file: &Path, command: &str, askpass: &Path, level: &str) -> Output {
        self.ssh_command(user, token_file, command, askpass, level).output().unwrap()
    }

    fn ssh_command(&self, user: &str, token_file: &Path, command: &str, askpass: &Path, level: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .arg("-o")
            .arg(format!("LogLevel={level}"))
            .args(["-o", "PreferredAuthentications=keyboard-interactive", "-o", "NumberOfPasswordPrompts=1"])
            .args(["-o", "ConnectTimeout=10", "-o", "BatchMode=no"])
            .arg(format!("{user}@127.0.0.1"))
            .arg(command)
            .env("SSH_ASKPASS", askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .env("OIDC_TOKEN_FILE", token_file)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client-side helper shipped in packaging/.
pub fn askpass() -> PathBuf {
    crate::root().join("packaging/pam-oidc-askpass")
}
