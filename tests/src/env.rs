//! A test environment: config, cache, state, socket and PAM service dir in one
//! temp dir. Starting helperd and running PAM on it: helperd.rs, pam.rs.

use crate::TempDir;
use std::path::{Path, PathBuf};

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

    pub fn store(&self) -> oidc_core::accounts::Store {
        oidc_core::accounts::Store::load(&self.dir.0.join("state/accounts.json")).unwrap()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.0.join("helperd.sock")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.0.join("cache")
    }
}
