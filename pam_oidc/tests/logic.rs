//! The hooks' logic driven through a fake PAM handle (no C, no libpam).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oidc_core::Secret;
use pam::constants::PamResultCode;
use pam_oidc::account::acct_mgmt;
use pam_oidc::auth::{authenticate, ENV_GROUPS, ENV_USER};
use pam_oidc::handle::{Pam, Prio};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

const NOW: i64 = 1_800_000_000;

#[derive(Default)]
struct Fake {
    user: String,
    authtok: Option<String>,
    reply: Option<String>,
    prompts: Vec<String>,
    errors: Vec<String>,
    env: HashMap<String, String>,
    log: std::cell::RefCell<Vec<String>>,
    verified: Option<oidc_core::session::SessionClaims>,
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
        Ok(self.reply.clone().map(Secret::new))
    }
    fn error(&mut self, msg: &str) {
        self.errors.push(msg.into());
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
    fn verified(&self) -> Option<oidc_core::session::SessionClaims> {
        self.verified.clone()
    }
    fn keep_verified(&mut self, c: &oidc_core::session::SessionClaims) {
        self.verified = Some(c.clone());
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        // "lbob" is a local account here; OIDC names resolve in the OIDC range.
        match name {
            "lbob" => Some(1000),
            "alice" => Some(1_073_742_300),
            _ => None,
        }
    }
}

struct Setup {
    dir: PathBuf,
    config: PathBuf,
    token: String,
}

impl Setup {
    /// Forget the token's recorded use (these tests present one token many
    /// times; each token logs in once per host).
    fn forget_uses(&self) {
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
fn setup(tag: &str) -> Setup {
    let keys: Value = serde_json::from_str(include_str!("../../oidc_core/tests/fixtures/test-keys.json")).unwrap();
    let dir = std::env::temp_dir().join(format!("pam-oidc-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[helperd]\nsocket = \"{0}/no.sock\"\ncache_dir = \"{0}\"\nstate_dir = \"{0}\"\n[policy]\ndenied_groups = [\"contractors\"]\n\
             [[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"host\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let cache = oidc_core::jwks::CacheFile {
        v: 1,
        issuer: "https://idp.test".into(),
        jwks_uri: "https://idp.test/jwks".into(),
        fetched_at: NOW,
        expires_at: NOW + 3600,
        jwks: json!({"keys": [keys["rsa"]["jwk"]]}),
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
    let path = oidc_core::jwks::cache_path(&dir, "https://idp.test");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec(&cache).unwrap()).unwrap();
    let claims = json!({"iss":"https://idp.test","sub":"s-1","aud":"host","exp":NOW+60,"iat":NOW,
                        "preferred_username":"alice","groups":["devs","ops"]});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rsa1"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(keys["rsa"]["pem"].as_str().unwrap().as_bytes()).unwrap();
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap();
    Setup { dir, config, token: format!("{input}.{sig}") }
}

fn args(s: &Setup, extra: &[&str]) -> Vec<String> {
    let mut v = vec![format!("config={}", s.config.display())];
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

#[test]
fn prompt_verify_and_hand_identity_to_account() {
    let s = setup("ok");
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts, ["OIDC token: "]);
    assert_eq!(p.env[ENV_USER], "alice");
    assert_eq!(p.env[ENV_GROUPS], "devs,ops");
    assert_eq!(acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), NOW), PamResultCode::PAM_SUCCESS);
    assert_eq!(acct_mgmt(&mut p, &args(&s, &["require_group=admins"]), NOW), PamResultCode::PAM_PERM_DENIED);
    let log = p.log.borrow().join("\n");
    assert!(log.contains("auth result=allow") && log.contains("rhost=192.0.2.1"), "{log}");
    assert!(!log.contains(&s.token), "token logged");
}

#[test]
fn first_pass_modes() {
    let s = setup("first");
    // try_first_pass: a password in PAM_AUTHTOK is not a JWT -> prompt.
    let mut p = Fake {
        user: "alice".into(),
        authtok: Some("hunter2".into()),
        reply: Some(s.token.clone()),
        ..Default::default()
    };
    assert_eq!(authenticate(&mut p, &args(&s, &["try_first_pass"]), &|| NOW), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts.len(), 1);
    s.forget_uses();
    // try_first_pass with a token in PAM_AUTHTOK: no prompt.
    let mut p = Fake { user: "alice".into(), authtok: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &["try_first_pass"]), &|| NOW), PamResultCode::PAM_SUCCESS);
    assert!(p.prompts.is_empty());
    // use_first_pass never prompts.
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &["use_first_pass"]), &|| NOW), PamResultCode::PAM_AUTH_ERR);
    assert!(p.prompts.is_empty());
}

#[test]
fn refusals_are_logged_and_shown_briefly() {
    let s = setup("deny");
    let mut p = Fake { user: "bob".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_AUTH_ERR);
    assert_eq!(p.errors, ["OIDC login refused: token is for another user"]);
    assert!(p.env.is_empty(), "nothing handed on after a refusal");
    // Expired: the clock is passed in.
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW + 3600), PamResultCode::PAM_AUTH_ERR);
    assert!(p.log.borrow()[0].contains("code=expired"));
    // No helperd and an unknown issuer key: keys unavailable => AUTHINFO_UNAVAIL.
    std::fs::remove_dir_all(s.dir.join("jwks")).unwrap();
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_AUTHINFO_UNAVAIL);
    assert_eq!(p.errors, ["OIDC login refused: issuer keys unavailable"]);
    // Account without an OIDC identity: ignored, unless a group is required.
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    assert_eq!(acct_mgmt(&mut p, &args(&s, &[]), NOW), PamResultCode::PAM_IGNORE);
    assert_eq!(acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), NOW), PamResultCode::PAM_PERM_DENIED);
    // Account: the env names another user.
    p.env.insert(ENV_USER.into(), "mallory".into());
    assert_eq!(acct_mgmt(&mut p, &args(&s, &[]), NOW), PamResultCode::PAM_PERM_DENIED);
}

/// A one-shot fake helperd on the config's socket: answers the first request
/// with the session claims given.
fn fake_helperd(s: &Setup, claims: oidc_core::session::SessionClaims) -> std::thread::JoinHandle<()> {
    use oidc_core::ipc::{read_frame, write_frame, Request, Response};
    let sock = s.dir.join("no.sock");
    let _ = std::fs::remove_file(&sock);
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let d = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let req: Request = read_frame(&mut c, d).unwrap();
        assert!(matches!(req, Request::SessionClaims), "{req:?}");
        let resp = Response::Claims { claims: Some(Box::new(claims)), detail: "session 7 (sshd pid 42)".into() };
        write_frame(&mut c, &resp, d).unwrap();
    })
}

/// Issue 12 (13): sudo inside a session (even a background process with no
/// tty) reuses the session's claims only within pam.reuse_max_age_secs
/// (default 900 s) of the authentication, never for the token's whole life.
#[test]
fn session_claims_are_reused_only_while_fresh() {
    let s = setup("reuse");
    let claims = |auth_age: i64| oidc_core::session::SessionClaims {
        issuer: "https://idp.test".into(),
        sub: "s-1".into(),
        account: "alice".into(),
        identity: "alice".into(),
        groups: vec!["ops".into()],
        idp_groups: vec![],
        jti: None,
        exp: NOW + 20_000,
        iat: NOW - auth_age,
        auth_time: Some(NOW - auth_age),
        acr: None,
        verified_at: 0,
    };
    for (age, ok) in [(100, true), (1000, false)] {
        let t = fake_helperd(&s, claims(age));
        let mut p = Fake { user: "alice".into(), ..Default::default() };
        let rc = acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), NOW);
        t.join().unwrap();
        let log = p.log.borrow().join("\n");
        if ok {
            assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{log}");
        } else {
            assert_eq!(rc, PamResultCode::PAM_PERM_DENIED, "{log}");
            assert!(log.contains("beyond pam.reuse_max_age_secs=900"), "{log}");
        }
    }
    // An IdP session hours old, but the login here was a minute ago: reusable.
    let mut c = claims(5000);
    c.verified_at = NOW - 60;
    let t = fake_helperd(&s, c);
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), NOW);
    t.join().unwrap();
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{}", p.log.borrow().join("\n"));
    {
        {}
    }
}

/// Issue 13: a local account is not the module's: no prompt, no audit line,
/// PAM_IGNORE from every hook, whatever the stack's arguments.
#[test]
fn local_accounts_are_left_to_the_other_modules() {
    let s = setup("local");
    let mut p = Fake { user: "lbob".into(), reply: Some("password\n".into()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &["require_group=ops"]), &|| NOW), PamResultCode::PAM_IGNORE);
    assert_eq!(acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), NOW), PamResultCode::PAM_IGNORE);
    // Closing a local user's session (cron, su) asks helperd nothing and logs nothing,
    // even with helperd down.
    assert_eq!(pam_oidc::session::close_session(&mut p, &args(&s, &[])), PamResultCode::PAM_IGNORE);
    assert!(p.prompts.is_empty(), "{:?}", p.prompts);
    assert!(p.log.borrow().is_empty(), "{:?}", p.log.borrow());
    // A second run in one transaction reuses the first (no second prompt).
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_SUCCESS);
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts.len(), 1, "{:?}", p.prompts);
    // The PAM environment is no proof: OIDC_* set there by anything else never skip the token.
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    p.env.insert(ENV_USER.into(), "alice".into());
    p.env.insert("OIDC_ISSUER".into(), "https://idp.example".into());
    assert_ne!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts.len(), 1, "{:?}", p.prompts);
}

/// Issue 12 (6, review): with helperd not running, a token still logs in once
/// (a marker in state_dir/replay.d, taken in by helperd when it starts).
#[test]
fn a_token_logs_in_once_even_with_helperd_down() {
    let s = setup("once");
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_SUCCESS);
    // The use is kept as long as the token is valid: exp plus the issuer's leeway (as helperd keeps it).
    let marker = std::fs::read_dir(s.dir.join("replay.d")).unwrap().flatten().next().unwrap().path();
    let text = std::fs::read_to_string(marker).unwrap();
    assert_eq!(text.split('\t').nth(1), Some((NOW + 60 + 60).to_string().as_str()), "{text}");
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_AUTH_ERR);
    assert_eq!(p.errors, ["OIDC login refused: this token was already used; get a new one"]);
    // No place to record the use: refused rather than unchecked.
    std::fs::remove_dir_all(s.dir.join("replay.d")).unwrap();
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &|| NOW), PamResultCode::PAM_AUTHINFO_UNAVAIL);
}
