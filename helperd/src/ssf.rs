//! RFC 8936 poll-based Security Event Token delivery from an IdP's Shared
//! Signals transmitter (`[[locks.ssf]]`), one thread per stream. Each poll
//! POSTs `{"maxEvents", "returnImmediately": true, "ack", "setErrs"}` with
//! the stream's bearer token; each SET is verified (`oidc_core::verify_set_with`:
//! the issuer's keys, `typ: secevent+jwt`, `iss`, `aud`, `iat`, `jti`) and
//! applied:
//!
//! * CAEP session-revoked — the subject's live sessions end;
//! * RISC account-disabled — the identity is locked (source `ssf`), its
//!   sessions end; account-enabled lifts that lock (never root's or the fleet's).
//!
//! Subjects: `iss_sub` only (also a `complex` subject's `user`). `email` is
//! refused: a login name is not an email address in general (templates,
//! `username_claim`, `name_prefix`, domain stripping), so an email subject
//! cannot be matched to a host account without guessing.
//!
//! A processed SET (applied, or of an event type we ignore) is acknowledged in
//! the next request; one that fails verification or names a subject we
//! cannot match is reported in `setErrs`; one that could not be applied now
//! (keys unavailable, the locks file not writable) is neither, so the
//! transmitter delivers it again. Re-applying a SET is harmless.

#[cfg(test)]
mod tests;

use crate::fetch::Transport;
use crate::log::{error, info, warning};
use oidc_core::{
    clean, Rejection, SecEvent, SetSubject, SsfSettings, ACCOUNT_DISABLED, ACCOUNT_ENABLED, SESSION_REVOKED,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// `source` of the locks an account-disabled event sets.
pub const SOURCE: &str = "ssf";
/// Largest poll response read.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;
/// Requests per poll while the transmitter has more, or acks are owed.
const MAX_ROUNDS: usize = 10;

/// What a verified SET asks of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// End the identity's live sessions.
    EndSessions { issuer: String, sub: String, why: String },
    /// Lock the identity (source `ssf`) and end its sessions.
    Lock { issuer: String, sub: String, why: String },
    /// Lift the `ssf` lock of the identity.
    Unlock { issuer: String, sub: String },
}

/// Where the stream's work lands (helperd's services; a recorder in tests).
pub trait Edges {
    /// Verify one SET of the stream's issuer.
    fn verify(&mut self, set: &str) -> Result<SecEvent, Rejection>;
    /// The stream's bearer token.
    fn bearer(&self) -> Result<String, String>;
    /// Do it: a description for the log, or why it could not be done now.
    fn act(&self, a: &Action) -> Result<String, String>;
}

pub struct Stream {
    cfg: SsfSettings,
    /// The issuer's URL and aliases: whose `iss_sub` subjects are ours.
    issuer: oidc_core::Issuer,
    http: Arc<dyn Transport>,
    acks: Vec<String>,
    errs: serde_json::Map<String, Value>,
    failures: u32,
}

/// RFC 8935 §2.3 error codes for `setErrs`.
fn err_code(r: &Rejection) -> &'static str {
    match r {
        Rejection::UntrustedIssuer(_) => "invalid_issuer",
        Rejection::AudienceMismatch { .. } => "invalid_audience",
        Rejection::BadSignature | Rejection::UnknownKid(_) | Rejection::NoUsableKey(_) => "invalid_key",
        _ => "invalid_request",
    }
}

impl Stream {
    pub fn new(cfg: SsfSettings, issuer: oidc_core::Issuer, http: Arc<dyn Transport>) -> Stream {
        Stream { cfg, issuer, http, acks: vec![], errs: serde_json::Map::new(), failures: 0 }
    }

    /// How long to wait before the next poll (doubling after failures, up to 8×, at most 15 minutes).
    pub fn next_in(&self) -> Duration {
        let base = self.cfg.poll_secs;
        Duration::from_secs(base.saturating_mul(1 << self.failures.min(3)).min(900).max(base))
    }

    /// The actions one verified SET asks for (none for event types we do not act on).
    fn actions(&self, s: &SecEvent) -> Result<Vec<Action>, String> {
        let mut out = vec![];
        for (uri, ev) in &s.events {
            let kind = match uri.as_str() {
                SESSION_REVOKED | ACCOUNT_DISABLED | ACCOUNT_ENABLED => uri.as_str(),
                other => {
                    info!("ssf {}: SET {}: event {} ignored", self.cfg.poll_url, clean(&s.jti), clean(other));
                    continue;
                }
            };
            let (iss, sub) = match s.subject(ev) {
                SetSubject::IssSub { iss, sub } if self.issuer.is(&iss) => (self.issuer.url.clone(), sub),
                SetSubject::IssSub { iss, .. } => {
                    return Err(format!("subject of another issuer ({}): not this stream's", clean(&iss)))
                }
                SetSubject::Unsupported(f) => return Err(format!("{f}: only iss_sub subjects are matched")),
            };
            let reason = ["reason_admin", "reason"]
                .iter()
                .find_map(|k| match ev.get(*k) {
                    Some(Value::String(r)) => Some(r.clone()),
                    Some(Value::Object(m)) => m.get("en").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .map(|r| format!(": {}", clean(&r.chars().take(200).collect::<String>())))
                .unwrap_or_default();
            let why = format!("{} SET {}{reason}", uri.rsplit('/').next().unwrap_or(uri), clean(&s.jti));
            out.push(match kind {
                SESSION_REVOKED => Action::EndSessions { issuer: iss, sub, why },
                ACCOUNT_DISABLED => Action::Lock { issuer: iss, sub, why },
                _ => Action::Unlock { issuer: iss, sub },
            });
        }
        Ok(out)
    }

    /// One SET from the response: acknowledged, reported as an error, or left for redelivery.
    fn handle(&mut self, key: &str, set: &Value, edges: &mut dyn Edges) {
        let refuse = |this: &mut Stream, code: &str, why: String| {
            warning!("ssf {}: SET {} refused ({code}): {why}", this.cfg.poll_url, clean(key));
            this.errs.insert(key.to_string(), json!({"err": code, "description": why}));
        };
        let Some(text) = set.as_str() else { return refuse(self, "invalid_request", "not a string".into()) };
        let s = match edges.verify(text) {
            Ok(s) => s,
            Err(e @ Rejection::KeysUnavailable(_)) => {
                // Not the SET's fault: neither acked nor refused, delivered again.
                return warning!("ssf {}: SET {}: {e}; left for the next poll", self.cfg.poll_url, clean(key));
            }
            Err(e) => return refuse(self, err_code(&e), e.to_string()),
        };
        if s.jti != key {
            return refuse(self, "invalid_request", format!("its jti {} is not its key", clean(&s.jti)));
        }
        let actions = match self.actions(&s) {
            Ok(a) => a,
            Err(why) => return refuse(self, "invalid_request", why),
        };
        for a in &actions {
            match edges.act(a) {
                Ok(done) => warning!("ssf {}: SET {}: {done}", self.cfg.poll_url, clean(key)),
                Err(e) => {
                    return error!("ssf {}: SET {}: {e}; left for the next poll", self.cfg.poll_url, clean(key));
                }
            }
        }
        self.acks.push(key.to_string());
    }

    /// One poll: requests until the transmitter has nothing more and every
    /// ack is delivered (at most `MAX_ROUNDS`). How many SETs were received.
    pub fn poll(&mut self, edges: &mut dyn Edges) -> Result<usize, String> {
        let r = self.poll_rounds(edges);
        match &r {
            Ok(_) => self.failures = 0,
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                warning!("ssf {}: poll failed: {e}; next try in {}s", self.cfg.poll_url, self.next_in().as_secs());
            }
        }
        r
    }

    fn poll_rounds(&mut self, edges: &mut dyn Edges) -> Result<usize, String> {
        let bearer = edges.bearer()?;
        let auth = format!("Bearer {bearer}");
        let mut received = 0;
        for _ in 0..MAX_ROUNDS {
            let mut body = json!({"maxEvents": self.cfg.max_events, "returnImmediately": true, "ack": self.acks});
            if !self.errs.is_empty() {
                body["setErrs"] = Value::Object(self.errs.clone());
            }
            let headers = [
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("authorization", auth.as_str()),
            ];
            let url = &self.cfg.poll_url;
            let resp = self.http.request("POST", url, &headers, body.to_string().as_bytes(), MAX_RESPONSE)?;
            if resp.status != 200 {
                return Err(format!(
                    "HTTP {}: {}",
                    resp.status,
                    oidc_core::clean_n(&String::from_utf8_lossy(&resp.body), 200)
                ));
            }
            // Delivered: the transmitter has our acks and errors.
            self.acks.clear();
            self.errs.clear();
            let v: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("poll response: {e}"))?;
            let sets = match v.get("sets") {
                Some(Value::Object(m)) if m.len() <= self.cfg.max_events as usize => m.clone(),
                Some(Value::Object(m)) => return Err(format!("{} SETs, more than maxEvents", m.len())),
                _ => return Err("poll response without a sets object".into()),
            };
            let more = v.get("moreAvailable").and_then(Value::as_bool).unwrap_or(false);
            received += sets.len();
            for (key, set) in &sets {
                self.handle(key, set, edges);
            }
            if !more && self.acks.is_empty() && self.errs.is_empty() {
                break;
            }
        }
        Ok(received)
    }
}

/// helperd's edges: the key cache, the locks, the sessions.
struct Live {
    svc: Arc<crate::dispatch::Services>,
    cfg: SsfSettings,
}

impl Edges for Live {
    fn verify(&mut self, set: &str) -> Result<SecEvent, Rejection> {
        let cfg = self.svc.keys.config();
        let keys = &self.svc.keys;
        let mut refresh = |iss: &str| match keys.refresh_on_demand(iss, false) {
            oidc_core::Response::Refreshed { ok: true, detail, .. } => Ok(detail),
            oidc_core::Response::Refreshed { detail, .. } => Err(detail),
            other => Err(format!("unexpected {other:?}")),
        };
        let mut store = oidc_core::CacheDir { dir: &cfg.helperd.cache_dir, refresh: &mut refresh };
        let now = self.svc.clock.now();
        oidc_core::verify_set_with(cfg, set, &self.cfg.issuer, &self.cfg.audience, now, &mut store)
    }

    fn bearer(&self) -> Result<String, String> {
        read_token(&self.cfg.token_file)
    }

    fn act(&self, a: &Action) -> Result<String, String> {
        let svc = &self.svc;
        match a {
            Action::EndSessions { issuer, sub, why } => {
                let ended = svc.sessions.end(
                    |s| s.claims.issuer == *issuer && s.claims.sub == *sub,
                    |_| format!("session revoked by the IdP ({why})"),
                );
                if !ended.is_empty() {
                    svc.aws.forget(&svc.sessions.ids());
                }
                Ok(format!(
                    "issuer {} sub {}: {} live session(s) ended ({why})",
                    clean(issuer),
                    clean(sub),
                    ended.len()
                ))
            }
            Action::Lock { issuer, sub, why } => {
                let lock = oidc_core::Lock {
                    target: oidc_core::LockTarget::Identity { issuer: issuer.clone(), sub: sub.clone() },
                    by: format!("ssf {}", self.cfg.poll_url),
                    at: svc.clock.now(),
                    reason: why.clone(),
                    source: SOURCE.into(),
                    via: None,
                };
                svc.locks.lock(lock.clone())?;
                let ended = crate::dispatch::end_locked(svc, &lock);
                Ok(format!("{} locked ({why}); {} live session(s) ended", lock.target, ended.len()))
            }
            Action::Unlock { issuer, sub } => {
                let target = oidc_core::LockTarget::Identity { issuer: issuer.clone(), sub: sub.clone() };
                let n = svc.locks.unlock_from(&target, SOURCE)?;
                Ok(format!("{target}: {n} ssf lock(s) lifted (account-enabled)"))
            }
        }
    }
}

/// The bearer token: a root-only file (owner root, mode 0600 or stricter),
/// trailing newline dropped.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let b = zeroize::Zeroizing::new(nss_snapshot::format::read_private_file(path, 8192)?);
    let t =
        std::str::from_utf8(&b).map_err(|_| format!("{}: not text", path.display()))?.trim_end_matches(['\n', '\r']);
    if t.is_empty() || t.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("{}: not a bearer token (empty, spaces or control characters)", path.display()));
    }
    Ok(t.to_string())
}

/// Check every stream's token file (helperd refuses to start otherwise) and
/// start one thread per stream.
pub fn start(svc: &Arc<crate::dispatch::Services>, http: &Arc<dyn Transport>) -> Result<(), String> {
    let cfg = svc.keys.config();
    for s in &cfg.locks.ssf {
        read_token(&s.token_file).map_err(|e| format!("locks.ssf {}: token_file {e}", s.poll_url))?;
    }
    for s in cfg.locks.ssf.clone() {
        let issuer = cfg.issuer(&s.issuer).cloned().ok_or_else(|| format!("locks.ssf: no issuer {}", s.issuer))?;
        let mut stream = Stream::new(s.clone(), issuer, Arc::clone(http));
        let mut live = Live { svc: Arc::clone(svc), cfg: s };
        std::thread::Builder::new()
            .name("helperd-ssf".into())
            .spawn(move || loop {
                let _ = stream.poll(&mut live);
                live.svc.clock.sleep(stream.next_in());
            })
            .map_err(|e| format!("starting the ssf poller: {e}"))?;
    }
    Ok(())
}
