//! Shared by the in-process hook tests: a fake PAM handle, a scripted
//! helperd ([`Script`]), fixed edges (clock, host, pid), and a config with a
//! cached test key.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod script;
#[allow(unused_imports)] // not every test file uses both
pub use script::{Script, TestEdges};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oidc_core::Secret;
use pam::constants::PamResultCode;
use pam_oidc::handle::{Pam, Prio};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// Answers a prompt (the reply, or none).
pub type Answerer = Box<dyn FnMut(&str) -> Option<String>>;

pub const NOW: i64 = 1_800_000_000;

#[derive(Default)]
pub struct Fake {
    pub user: String,
    pub authtok: Option<String>,
    pub reply: Option<String>,
    pub prompts: Vec<String>,
    pub errors: Vec<String>,
    pub infos: Vec<String>,
    pub env: HashMap<String, String>,
    pub log: std::cell::RefCell<Vec<String>>,
    pub verified: Option<oidc_core::SessionClaims>,
    /// Answers prompts when set (instead of `reply`).
    pub answer: Option<Answerer>,
}

impl Pam for Fake {
    fn user(&mut self) -> Result<String, PamResultCode> {
        Ok(self.user.clone())
    }
    fn service(&self) -> String {
        "svc".into()
    }
    fn rhost(&self) -> String {
        "192.0.2.1".into()
    }
    fn tty(&self) -> String {
        String::new()
    }
    fn authtok(&self) -> Option<Secret> {
        self.authtok.clone().map(Secret::new)
    }
    fn prompt_secret(&mut self, msg: &str) -> Result<Option<Secret>, PamResultCode> {
        self.prompts.push(msg.into());
        if let Some(f) = &mut self.answer {
            return Ok(f(msg).map(Secret::new));
        }
        Ok(self.reply.clone().map(Secret::new))
    }
    fn error(&mut self, msg: &str) {
        self.errors.push(msg.into());
    }
    fn info(&mut self, msg: &str) {
        self.infos.push(msg.into());
    }
    fn putenv(&mut self, name: &str, value: &str) -> Result<(), PamResultCode> {
        self.env.insert(name.into(), value.into());
        Ok(())
    }
    fn getenv(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn log(&self, _prio: Prio, msg: &str) {
        self.log.borrow_mut().push(msg.into());
    }
    fn verified(&self) -> Option<oidc_core::SessionClaims> {
        self.verified.clone()
    }
    fn keep_verified(&mut self, c: &oidc_core::SessionClaims) {
        self.verified = Some(c.clone());
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        // "lbob" is a local account here; OIDC names resolve in the OIDC range.
        match name {
            "lbob" => Some(1000),
            "alice" => Some(1_073_742_300),
            "carol" => Some(1_073_742_301),
            _ => None,
        }
    }
}

pub struct Setup {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub token: String,
}

impl Setup {
    /// Forget the token's recorded use (these tests present one token many
    /// times; each token logs in once per host).
    pub fn forget_uses(&self) {
        let d = self.dir.join("replay.d");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A config, a JWKS cache file with the test RSA key, and a token for alice.
pub fn setup(tag: &str) -> Setup {
    setup_with(tag, "", "")
}

/// [`setup`] with more keys for the issuer (`issuer_toml`) and more tables
/// after it (`tail_toml`).
pub fn setup_with(tag: &str, issuer_toml: &str, tail_toml: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("pam-oidc-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[helperd]\nsocket = \"{0}/no.sock\"\ncache_dir = \"{0}\"\nstate_dir = \"{0}\"\n[policy]\ndenied_groups = [\"contractors\"]\n\
             [[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"host\"]\n{issuer_toml}\n{tail_toml}\n",
            dir.display()
        ),
    )
    .unwrap();
    let cache = oidc_core::CacheFile {
        v: 1,
        issuer: "https://idp.test".into(),
        jwks_uri: "https://idp.test/jwks".into(),
        fetched_at: NOW,
        expires_at: NOW + 3600,
        jwks: json!({"keys": [keys()["rsa"]["jwk"]]}),
    };
    // alice is a known identity in the account store (helperd is not running in these tests).
    // With helperd down only the groups the host already serves for her count.
    let store = json!({"v": 1, "groups": [{"name": "devs", "gid": 1_610_612_800u32, "local": false},
            {"name": "ops", "gid": 1_610_612_801u32, "local": false}],
        "users": [{"issuer": "https://idp.test", "sub": "s-1", "name": "alice",
        "uid": 1_073_742_300u32, "gecos": "", "groups": ["devs", "ops"], "first_login": 1, "last_login": 1}]});
    std::fs::write(dir.join("accounts.json"), store.to_string()).unwrap();
    // helperd makes this at start; the module records token uses here while helperd is down.
    std::fs::create_dir_all(dir.join("replay.d")).unwrap();
    let path = oidc_core::jwks_cache_path(&dir, "https://idp.test");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec(&cache).unwrap()).unwrap();
    let token = sign(&alice());
    Setup { dir, config, token }
}

fn keys() -> Value {
    serde_json::from_str(include_str!("../../../oidc_core/tests/fixtures/test-keys.json")).unwrap()
}

/// alice's claims: issuer https://idp.test, sub s-1, groups devs and ops, valid for a minute.
pub fn alice() -> Value {
    json!({"iss":"https://idp.test","sub":"s-1","aud":"host","exp":NOW+60,"iat":NOW,
           "preferred_username":"alice","groups":["devs","ops"]})
}

/// A token with these claims, signed with the cached test key.
pub fn sign(claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rsa1"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pem = keys()["rsa"]["pem"].as_str().unwrap().to_string();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let sig = oidc_core::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

pub fn args(s: &Setup, extra: &[&str]) -> Vec<String> {
    let mut v = vec![format!("config={}", s.config.display())];
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}
