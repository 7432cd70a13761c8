//! Harness for the integration tests: a real OpenID Provider (tests/idp, npm
//! oidc-provider) on 127.0.0.1, a real helperd, and the real pam_oidc.so run
//! by pamtester under pam_wrapper (no host PAM config touched). Every process
//! started here is killed by PID on drop; every file lives in a temp dir.
//!
//! Artifacts are built by `scripts/test` (or `cargo build --workspace` and
//! `scripts/build-fault-module`) before the tests run.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

fn artifact(rel: &str) -> PathBuf {
    let p = target().join(rel);
    assert!(p.exists(), "{} is missing: run scripts/test (or cargo build --workspace) first", p.display());
    p
}

pub fn module_so() -> PathBuf {
    artifact("debug/libpam_oidc.so")
}

/// pam_oidc.so built with `--features fault-injection` (scripts/build-fault-module).
pub fn fault_module_so() -> PathBuf {
    artifact("fault-injection/libpam_oidc.so")
}

pub fn nss_so() -> PathBuf {
    artifact("debug/libnss_oidc.so")
}

pub mod aws;
pub mod nss;
pub mod sshd;

pub fn helperd_bin() -> PathBuf {
    artifact("debug/helperd")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

/// Children die with the test process, even if it is killed (no orphans).
pub fn die_with_parent(c: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; called between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A unique temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pam-oidc-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test OpenID Provider (tests/idp/idp.mjs).
pub struct Idp {
    pub port: u16,
    child: Option<Child>,
}

impl Idp {
    pub fn start() -> Idp {
        let mut idp = Idp { port: free_port(), child: None };
        idp.spawn();
        idp
    }

    fn spawn(&mut self) {
        let dir = root().join("tests/idp");
        assert!(dir.join("node_modules/oidc-provider").exists(), "run `npm ci` in tests/idp (scripts/test does)");
        let child = die_with_parent(&mut Command::new("node"))
            .arg(dir.join("idp.mjs"))
            .args(["--port", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node idp.mjs");
        self.child = Some(child);
        let url = format!("{}/.well-known/openid-configuration", self.issuer());
        wait_for("the test IdP", Duration::from_secs(20), || ureq::get(&url).call().is_ok());
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stop the IdP (kill by PID).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Restart on the same port: new keys, new kids.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn get_json(&self, path: &str) -> Value {
        let body = ureq::get(&format!("{}{path}", self.issuer())).call().unwrap().body_mut().read_to_string().unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// An ID token from a real CIBA grant for `user` via `client`.
    pub fn token(&self, client: &str, user: &str) -> String {
        let v = self.get_json(&format!("/test/token?client={client}&user={user}"));
        v["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {v}")).to_string()
    }

    /// An ID token of about `bytes` bytes (a padding claim stands in for many groups).
    pub fn token_of_size(&self, client: &str, user: &str, bytes: usize) -> String {
        let base = self.token(client, user).len();
        let pad = (bytes.saturating_sub(base) * 3 / 4).max(1);
        let v = self.get_json(&format!("/test/token?client={client}&user={user}&pad={pad}"));
        v["id_token"].as_str().unwrap().to_string()
    }

    /// A token with arbitrary header/claims, signed with this IdP's key for `header.alg`.
    pub fn sign(&self, header: Value, payload: Value) -> String {
        let body = serde_json::json!({"header": header, "payload": payload}).to_string();
        let resp = ureq::post(&format!("{}/test/sign", self.issuer()))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: Value = serde_json::from_str(&resp).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    pub fn jwks_hits(&self) -> u64 {
        self.get_json("/test/stats")["jwks_hits"].as_u64().unwrap()
    }

    pub fn jwks(&self) -> Value {
        self.get_json("/jwks")
    }

    /// Standard claims for `user` from this issuer, valid now, with a unique
    /// `jti` (each token logs in once per host).
    pub fn claims(&self, user: &str, aud: &str) -> Value {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = now();
        let jti = format!("t-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        serde_json::json!({"iss": self.issuer(), "sub": format!("u-{user}"), "aud": aud, "jti": jti,
            "exp": n + 300, "iat": n - 5, "preferred_username": user, "groups": ["devs"]})
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A token assembled by hand (any header, claims and signature bytes).
pub fn raw_token(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!("{}.{}.{}", b64(&header.to_string()), b64(&claims.to_string()), URL_SAFE_NO_PAD.encode(sig))
}

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

/// The test fleet's id key (hex).
pub const TEST_ID_KEY: &str = "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c";

/// A test environment: config, cache, socket and PAM service dir in a temp dir.
pub struct Env {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Env {
    /// `issuers_toml` is the `[[issuer]]` part; `extra` goes before it (e.g. `[policy]`).
    pub fn new(extra: &str, issuers_toml: &str) -> Env {
        let dir = TempDir::new("env");
        let d = &dir.0;
        let config = d.join("config.toml");
        // The fleet id key (root-only, as `helperd id-key generate` writes it).
        Env::write_id_key(&d.join("id.key"), TEST_ID_KEY);
        let text = format!(
            "version = 1\n[helperd]\nsocket = \"{0}/helperd.sock\"\ncache_dir = \"{0}/cache\"\nstate_dir = \"{0}/state\"\nnss_snapshot = \"{0}/nss.snapshot\"\n\
             fetch_timeout_secs = 10\njwks_refresh_min_interval_secs = 1\n\n[pam]\nipc_timeout_ms = 1500\n\n\
             [accounts]\nid_key_file = \"{0}/id.key\"\n\n{extra}\n{issuers_toml}\n",
            d.display()
        );
        std::fs::write(&config, text).unwrap();
        Env { dir, config }
    }

    /// A standard issuer table for `idp` accepting the test clients.
    pub fn issuer_toml(url: &str, algs: &str) -> String {
        format!(
            "[[issuer]]\nurl = \"{url}\"\naudiences = [\"host-login\", \"host-login-es\", \"host-login-ed\"]\nalgorithms = [{algs}]\nleeway_secs = 5\n"
        )
    }

    /// Append TOML (new tables) to the config; helperd reads it at start.
    /// An `[accounts]` table merges into the one the environment already has.
    pub fn append(&self, toml: &str) {
        let mut c = std::fs::read_to_string(&self.config).unwrap();
        let mut rest = toml.to_string();
        if let Some(body) = rest.strip_prefix("[accounts]\n") {
            let (accounts, after) = match body.find("\n[") {
                Some(i) => (body[..i + 1].to_string(), body[i + 1..].to_string()),
                None => (body.to_string(), String::new()),
            };
            c = c.replacen("[accounts]\n", &format!("[accounts]\n{accounts}"), 1);
            rest = after;
        }
        c.push('\n');
        c.push_str(&rest);
        std::fs::write(&self.config, c).unwrap();
    }

    /// Names that resolve before their first login: a roster (exact names) and
    /// namespaced patterns (`dev-*`). Appends the `[accounts]` keys.
    pub fn prelogin(&self, names: &[&str], patterns: &[&str]) {
        let roster = self.dir.0.join("roster");
        std::fs::write(&roster, names.iter().map(|n| format!("{n}\n")).collect::<String>()).unwrap();
        let pats: Vec<String> = patterns.iter().map(|p| format!("{p:?}")).collect();
        self.append(&format!(
            "[accounts]\nroster_file = \"{}\"\nprelogin_patterns = [{}]\n",
            roster.display(),
            pats.join(", ")
        ));
    }

    /// The id key every test environment uses (tests may compute uids with it).
    pub fn id_key() -> nss_snapshot::format::IdKey {
        nss_snapshot::format::IdKey::parse(TEST_ID_KEY.as_bytes()).unwrap()
    }

    pub fn write_id_key(path: &Path, hex: &str) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
        f.write_all(format!("{hex}\n").as_bytes()).unwrap();
    }

    pub fn snapshot(&self) -> PathBuf {
        self.dir.0.join("nss.snapshot")
    }

    pub fn store(&self) -> oidc_core::Store {
        oidc_core::Store::load(&self.dir.0.join("state/accounts.json")).unwrap()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.0.join("helperd.sock")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.0.join("cache")
    }

    pub fn start_helperd(&self) -> Helperd {
        let mut c = Command::new(helperd_bin());
        c.args(["--config".as_ref(), self.config.as_os_str(), "run".as_ref()]);
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

    /// Run pamtester for `user` with `reply` on stdin through a stack of
    /// `auth` + `account` lines using `module` with `args`.
    pub fn pam_with(&self, module: &Path, args: &str, user: &str, reply: &str) -> PamRun {
        let svc = self.service_dir(module, args);
        loop {
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
        }
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
        exp: now() + 60,
        iat: now(),
        auth_time: None,
        acr: None,
        verified_at: 0,
    };
    oidc_core::Request::Login { event: Some(event), claims, web_token: None, role_groups: vec![], replay_id: None }
}
