//! A test environment: config, cache, state, socket and PAM service dir in one
//! temp dir. Starting helperd and running PAM on it: helperd.rs, pam.rs.

use crate::{Config, TempDir};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The test fleet's id key (hex).
pub const TEST_ID_KEY: &str = "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c";

/// A test environment: config, cache, socket and PAM service dir in a temp dir.
pub struct Env {
    pub dir: TempDir,
    pub config: PathBuf,
    /// What `config` was rendered from (the test's parts and this dir's defaults).
    cfg: RefCell<Config>,
}

impl Env {
    /// An environment running `cfg` (issuers, policy, ...) on top of its own paths
    /// and the tests' defaults (fetch timeout 10 s, JWKS refresh window 1 s, IPC
    /// timeout 1.5 s, the test id key); a key `cfg` sets replaces the default.
    pub fn new(cfg: Config) -> Env {
        let dir = TempDir::new("env");
        let d = &dir.0;
        let config = d.join("config.toml");
        // The fleet id key (root-only, as `helperd id-key generate` writes it).
        Env::write_id_key(&d.join("id.key"), TEST_ID_KEY);
        let base = Config::new()
            .helperd("socket", d.join("helperd.sock"))
            .helperd("cache_dir", d.join("cache"))
            .helperd("state_dir", d.join("state"))
            .helperd("nss_snapshot", d.join("nss.snapshot"))
            .helperd("fetch_timeout_secs", 10)
            .helperd("jwks_refresh_min_interval_secs", 1)
            .pam("ipc_timeout_ms", 1500)
            .accounts("id_key_file", d.join("id.key"));
        let env = Env { dir, config, cfg: RefCell::new(base.merge(&cfg)) };
        env.write();
        env
    }

    /// The config as it is now.
    pub fn cfg(&self) -> Config {
        self.cfg.borrow().clone()
    }

    /// Change the config and rewrite the file (helperd reads it at start, the module at each run).
    pub fn edit(&self, f: impl FnOnce(Config) -> Config) {
        let cfg = f(self.cfg());
        *self.cfg.borrow_mut() = cfg;
        self.write();
    }

    /// Write a changed copy of the config to `name` in this env's dir (the env's own
    /// config stays as it is); returns its path.
    pub fn variant(&self, name: &str, f: impl FnOnce(Config) -> Config) -> PathBuf {
        let p = self.dir.0.join(name);
        std::fs::write(&p, f(self.cfg()).render()).unwrap();
        p
    }

    fn write(&self) {
        std::fs::write(&self.config, self.cfg.borrow().render()).unwrap();
    }

    /// Names that resolve before their first login: a roster (exact names) and
    /// namespaced patterns (`dev-*`). Sets the `[accounts]` keys.
    pub fn prelogin(&self, names: &[&str], patterns: &[&str]) {
        let roster = self.dir.0.join("roster");
        std::fs::write(&roster, names.iter().map(|n| format!("{n}\n")).collect::<String>()).unwrap();
        self.edit(|c| c.accounts("roster_file", roster).accounts("prelogin_patterns", patterns));
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
}
