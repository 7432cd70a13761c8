//! The test OpenID Provider (tests/idp, npm oidc-provider, run with node) and
//! hand-made tokens.

use crate::{die_with_parent, free_port, kill, now, root, wait_for};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The test OpenID Provider (tests/idp/idp.mjs).
pub struct Idp {
    pub port: u16,
    child: Option<Child>,
    /// The `backchannel_logout_uri` registered on `host-login`, if any.
    logout_uri: Option<String>,
    /// Seconds the `host-device` client's ID tokens live (the IdP's default: 600).
    device_ttl: Option<u64>,
}

impl Idp {
    pub fn start() -> Idp {
        let mut idp = Idp { port: free_port(), child: None, logout_uri: None, device_ttl: None };
        idp.spawn();
        idp
    }

    /// An IdP whose `host-login` client has `uri` as its `backchannel_logout_uri`.
    pub fn start_with_logout_uri(uri: &str) -> Idp {
        let mut idp = Idp { port: free_port(), child: None, logout_uri: Some(uri.into()), device_ttl: None };
        idp.spawn();
        idp
    }

    /// An IdP whose device-code client's ID tokens live `secs` (refresh tests).
    pub fn start_with_device_ttl(secs: u64) -> Idp {
        let mut idp = Idp { port: free_port(), child: None, logout_uri: None, device_ttl: Some(secs) };
        idp.spawn();
        idp
    }

    /// The provider's own back-channel logout of `user` (all their sessions,
    /// by sub) to `host-login`'s `backchannel_logout_uri`: Ok once it got 200.
    pub fn logout(&self, user: &str) -> Result<(), String> {
        let url = format!("{}/test/logout?user={user}&client=host-login", self.issuer());
        let mut r = ureq::post(&url).send_empty().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if v["ok"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(v.to_string())
        }
    }

    /// Destroy `user`'s grants at the IdP (their refresh tokens then get
    /// `invalid_grant`); how many there were.
    pub fn revoke(&self, user: &str) -> u64 {
        self.get_json(&format!("/test/revoke?user={user}"))["revoked"].as_u64().unwrap()
    }

    /// What `user`'s "phone" does with the next push logins (CIBA):
    /// `action=approve|deny|none[&as=OTHER][&delay_ms=N][&slow=1]`.
    pub fn phone(&self, user: &str, query: &str) {
        assert_eq!(self.get_json(&format!("/test/ciba?user={user}&{query}"))["ok"], Value::Bool(true));
    }

    /// The push logins the IdP was asked for `user`: client_id, login_hint,
    /// binding_message, scope, polls (ms since the request), slow_downs.
    pub fn ciba_requests(&self, user: &str) -> Vec<Value> {
        self.get_json(&format!("/test/ciba/requests?user={user}")).as_array().cloned().unwrap_or_default()
    }

    /// The private key (PKCS#8 PEM) of the IdP's private_key_jwt clients.
    pub fn client_key_pem(&self) -> String {
        self.get_json("/test/client-key")["pem"].as_str().unwrap().to_string()
    }

    fn spawn(&mut self) {
        let dir = root().join("tests/idp");
        assert!(dir.join("node_modules/oidc-provider").exists(), "run `npm ci` in tests/idp (scripts/test does)");
        let mut node = Command::new("node");
        if let Some(t) = self.device_ttl {
            node.env("DEVICE_ID_TOKEN_TTL", t.to_string());
        }
        let child = die_with_parent(&mut node)
            .arg(dir.join("idp.mjs"))
            .args(["--port", &self.port.to_string()])
            .args(self.logout_uri.iter().flat_map(|u| ["--backchannel-logout-uri", u.as_str()]))
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
