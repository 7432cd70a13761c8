//! Test doubles for helperd's edges (tests only): a scripted HTTP transport
//! in the manner of kanidm's TestHandler — every expected call is listed in
//! order with its reply; a call out of order or not in the script fails the
//! test, and so does an expected call never made (checked by `done`, and on
//! drop) — and the fake clock lives in `clock.rs`.

use crate::fetch::{Fetched, Resp, Transport};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One request as the code under test made it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The raw body, or the form as `k=v&...` (unencoded) for `post_form`.
    pub body: String,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What a scripted call answers.
#[derive(Clone)]
pub enum Reply {
    /// An HTTP status and body.
    Http(u16, String),
    /// A body with a `Date` header (GET only).
    Dated(String, String),
    /// The transport failed (connection refused, timeout, ...).
    Fail(String),
    /// A status, response headers and a body (`request` only).
    Headers(u16, Vec<(String, String)>, String),
}

/// Status, body, `Date` header, response headers.
type Answer = (u16, String, Option<String>, Vec<(String, String)>);

type Check = Box<dyn Fn(&Call) -> Result<(), String> + Send + Sync>;

struct Expected {
    method: &'static str,
    url: String,
    check: Option<Check>,
    reply: Reply,
}

#[derive(Default)]
pub struct ScriptedTransport {
    script: Mutex<VecDeque<Expected>>,
    calls: Mutex<Vec<Call>>,
    errors: Mutex<Vec<String>>,
}

impl ScriptedTransport {
    pub fn new() -> Arc<ScriptedTransport> {
        Arc::new(ScriptedTransport::default())
    }

    /// Expect `method url` next (after those already expected); answer `reply`.
    pub fn expect(&self, method: &'static str, url: &str, reply: Reply) -> &Self {
        self.push(method, url, None, reply)
    }

    /// As `expect`, and the request must pass `check` (headers, body).
    pub fn expect_with(
        &self,
        method: &'static str,
        url: &str,
        check: impl Fn(&Call) -> Result<(), String> + Send + Sync + 'static,
        reply: Reply,
    ) -> &Self {
        self.push(method, url, Some(Box::new(check)), reply)
    }

    fn push(&self, method: &'static str, url: &str, check: Option<Check>, reply: Reply) -> &Self {
        self.script.lock().unwrap().push_back(Expected { method, url: url.into(), check, reply });
        self
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Every expected call was made, in order, and nothing else.
    pub fn done(&self) {
        let errors = self.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "unexpected calls: {errors:#?}");
        let left: Vec<String> = self.script.lock().unwrap().iter().map(|e| format!("{} {}", e.method, e.url)).collect();
        assert!(left.is_empty(), "expected calls never made: {left:#?}");
    }

    fn answer(&self, call: Call) -> Result<(u16, String, Option<String>), String> {
        self.answer_full(call).map(|(s, b, d, _)| (s, b, d))
    }

    fn answer_full(&self, call: Call) -> Result<Answer, String> {
        self.calls.lock().unwrap().push(call.clone());
        let next = self.script.lock().unwrap().pop_front();
        let fail = |why: String| {
            self.errors.lock().unwrap().push(why.clone());
            Err(why)
        };
        let Some(e) = next else { return fail(format!("{} {}: not in the script", call.method, call.url)) };
        if e.method != call.method || e.url != call.url {
            return fail(format!("{} {}: expected {} {}", call.method, call.url, e.method, e.url));
        }
        if let Some(Err(why)) = e.check.as_ref().map(|c| c(&call)) {
            return fail(format!("{} {}: {why}", call.method, call.url));
        }
        match e.reply {
            Reply::Http(status, body) => Ok((status, body, None, vec![])),
            Reply::Dated(body, date) => Ok((200, body, Some(date), vec![])),
            Reply::Headers(status, headers, body) => Ok((status, body, None, headers)),
            Reply::Fail(why) => Err(why),
        }
    }
}

impl Drop for ScriptedTransport {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.done();
        }
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Transport for ScriptedTransport {
    fn get(&self, url: &str) -> Result<Fetched, String> {
        let call = Call { method: "GET".into(), url: url.into(), headers: vec![], body: String::new() };
        let (status, body, date) = self.answer(call)?;
        if status != 200 {
            return Err(format!("GET {url}: http status: {status}"));
        }
        Ok(Fetched { body: body.into_bytes(), max_age: None, date })
    }

    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Vec<u8>), String> {
        let body = form.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let call = Call { method: "POST".into(), url: url.into(), headers: vec![], body };
        self.answer(call).map(|(s, b, _)| (s, b.into_bytes()))
    }

    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.request(method, url, headers, body, u64::MAX).map(|r| (r.status, r.body))
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        limit: u64,
    ) -> Result<Resp, String> {
        let call = Call {
            method: method.into(),
            url: url.into(),
            headers: owned(headers),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        let (status, body, _, headers) = self.answer_full(call)?;
        if body.len() as u64 > limit {
            return Err(format!("{method} {url}: body larger than {limit} bytes"));
        }
        Ok(Resp { status, headers, body: body.into_bytes() })
    }
}

/// A shared script, for owners that want a `Box<dyn Transport>` (the key cache).
impl Transport for Arc<ScriptedTransport> {
    fn get(&self, url: &str) -> Result<Fetched, String> {
        self.as_ref().get(url)
    }
    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Vec<u8>), String> {
        self.as_ref().post_form(url, form)
    }
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.as_ref().send(method, url, headers, body)
    }
    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        limit: u64,
    ) -> Result<Resp, String> {
        self.as_ref().request(method, url, headers, body, limit)
    }
}

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("helperd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 2048-bit RSA modulus (base64url) for test keys.
pub const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

/// A JWK set with one usable RSA signing key `kid`.
pub fn jwks(kid: &str) -> String {
    serde_json::json!({"keys": [{"kty": "RSA", "kid": kid, "n": RSA_N, "e": "AQAB"}]}).to_string()
}

/// JSON text.
pub fn json(v: serde_json::Value) -> String {
    v.to_string()
}

/// `argv` as a session's process: with SIGHUP at its default action even
/// when the tests run under `nohup` (an ignored signal is inherited), so a
/// session's end (SIGHUP first) ends it as it would a login's shell.
pub fn spawn(argv: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    let mut c = std::process::Command::new(argv[0]);
    c.args(&argv[1..]);
    // SAFETY: between fork and exec only async-signal-safe calls: signal(2).
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    c.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// `sleep SECS` as a session's process (see [`spawn`]).
pub fn sleeper(secs: u32) -> std::process::Child {
    spawn(&["sleep", &secs.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_checked_in_order_and_in_full() {
        let t = ScriptedTransport::new();
        t.expect("GET", "https://a/1", Reply::Http(200, "one".into())).expect(
            "POST",
            "https://a/2",
            Reply::Http(400, "{}".into()),
        );
        assert_eq!(t.get("https://a/1").unwrap().body, b"one");
        assert_eq!(t.post_form("https://a/2", &[("k", "v")]).unwrap().0, 400);
        assert_eq!(t.calls()[1].body, "k=v");
        t.done();
        assert!(t.get("https://a/3").is_err(), "not in the script");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.done()));
        assert!(r.is_err(), "an unexpected call fails the test");
        t.errors.lock().unwrap().clear();

        let t = ScriptedTransport::new();
        t.expect("GET", "https://a/1", Reply::Http(200, String::new()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.done()));
        assert!(r.is_err(), "an expected call never made fails the test");
        t.script.lock().unwrap().clear();
    }
}
