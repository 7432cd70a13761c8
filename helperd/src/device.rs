//! Device-code login (RFC 8628) on behalf of pam_oidc: start the flow at the
//! IdP, poll its token endpoint in the background (honouring `interval`, 5 s
//! when absent, and `slow_down`), and hand the ID token to the module, which
//! verifies it like any presented token. Denied, expired and timed-out flows
//! end with their own reason. With the issuer's `device_refresh`, the refresh
//! token stays here, for the session that token opens (`revalidate.rs`).

use crate::client_auth::{with_auth, Client, ClientAuth};
use crate::clock::Clock;
use crate::fetch::Transport;
use crate::log::{info, warning};
use crate::revalidate::Grant;
use oidc_core::Response;
use oidc_core::Secret;
use oidc_core::{Config, Issuer};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Debug, Clone)]
enum State {
    Pending,
    /// The ID token, and the refresh token if the IdP returned one.
    Done(Secret, Option<Secret>),
    Failed(oidc_core::DeviceFailure, String),
}

struct Flow {
    state: Mutex<State>,
    cv: Condvar,
    /// On the clock's monotonic time.
    created: Duration,
    /// The remote host the login came from, IPv6 by /64 (flows are capped per host).
    rhost: String,
    /// The process that asked (sshd's per-connection process): when it is
    /// gone the login was abandoned and the flow ends.
    owner: Option<crate::server::Peer>,
    /// A push login's user, as [`ciba::hint_key`] of its `login_hint` (one
    /// waiting per user and origin); empty for device-code logins.
    hint: String,
    /// The module stopped waiting for it: polling stops (a late approval
    /// would log no one in).
    abandoned: std::sync::atomic::AtomicBool,
}

impl Flow {
    fn new(created: Duration, rhost: String, owner: Option<crate::server::Peer>, hint: String) -> Flow {
        Flow {
            state: Mutex::new(State::Pending),
            cv: Condvar::new(),
            created,
            rhost,
            owner,
            hint,
            abandoned: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The key a remote address is capped by: an IPv6 address by its /64 (one
/// client holds a whole /64), anything else as it is.
pub fn host_key(rhost: &str) -> String {
    match rhost.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>() {
        Ok(a) if a.to_ipv4_mapped().is_none() => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(a) => a.to_ipv4_mapped().map_or_else(|| rhost.to_string(), |v4| v4.to_string()),
        Err(_) => rhost.to_string(),
    }
}

/// The scope asked for: `device_scope`, plus `offline_access` with `device_refresh`.
fn device_scope(icfg: &Issuer) -> String {
    if icfg.device_refresh && !icfg.device_scope.split_whitespace().any(|s| s == "offline_access") {
        format!("{} offline_access", icfg.device_scope)
    } else {
        icfg.device_scope.clone()
    }
}

pub struct DeviceFlows {
    cfg: Config,
    http: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    flows: Mutex<HashMap<String, Arc<Flow>>>,
    /// Refresh tokens of finished flows by the replay id of the ID token
    /// handed to the module, until the login reporting that token claims one.
    grants: Mutex<HashMap<String, (Grant, Duration)>>,
    /// Push logins: when each `login_hint` may be pushed to again (monotonic).
    cooldown: Mutex<HashMap<String, Duration>>,
}

fn json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

impl DeviceFlows {
    pub fn new(cfg: Config, http: Arc<dyn Transport>, clock: Arc<dyn Clock>) -> DeviceFlows {
        DeviceFlows {
            cfg,
            http,
            clock,
            flows: Mutex::new(HashMap::new()),
            grants: Mutex::new(HashMap::new()),
            cooldown: Mutex::new(HashMap::new()),
        }
    }

    /// The transport to the IdPs (the revalidation step refreshes over it).
    pub fn http(&self) -> &dyn Transport {
        self.http.as_ref()
    }

    /// Keep `refresh_token` for the login that will report `id_token`
    /// (found by its replay id, the one the module sends with `Login`).
    fn keep_grant(&self, id_token: &Secret, issuer: &str, token_endpoint: &str, client_id: &str, refresh: Secret) {
        let Ok(parsed) = oidc_core::parse_token(id_token.expose(), self.cfg.pam.max_token_bytes) else { return };
        let jti = parsed.claims.get("jti").and_then(Value::as_str);
        let key = oidc_core::replay_id(id_token.expose(), jti);
        let sub = parsed.claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
        let grant = Grant {
            issuer: issuer.into(),
            sub,
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            refresh_token: refresh,
        };
        let now = self.clock.mono();
        let mut g = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|_, (_, at)| now.saturating_sub(*at) < crate::revalidate::UNCLAIMED_TTL);
        g.insert(key, (grant, now));
    }

    /// The refresh token kept for the device login whose ID token has
    /// `replay_id`, if `claims` (verified by the module) are that token's
    /// issuer and `sub`. Taken once: a second login never finds it.
    pub fn take_grant(&self, replay_id: &str, claims: &oidc_core::SessionClaims) -> Option<Grant> {
        let now = self.clock.mono();
        let (g, at) = self.grants.lock().unwrap_or_else(|e| e.into_inner()).remove(replay_id)?;
        let young = now.saturating_sub(at) < crate::revalidate::UNCLAIMED_TTL;
        (young && g.issuer == claims.issuer && g.sub == claims.sub).then_some(g)
    }

    fn endpoints(&self, icfg: &Issuer) -> Result<(String, String), String> {
        let d = crate::discovery::discover(self.http.as_ref(), &icfg.url).map_err(|e| e.to_string())?;
        Ok((d.endpoint("device_authorization_endpoint")?, d.endpoint("token_endpoint")?))
    }

    /// Reserve a place for a flow from `rhost` under the caps — before any
    /// call to the IdP, so concurrent starts cannot all slip past them. The
    /// placeholder is a pending flow (counted) that becomes the real one.
    fn reserve(
        &self,
        rhost: &str,
        owner: Option<crate::server::Peer>,
        hint: &str,
    ) -> Result<(String, Arc<Flow>), Response> {
        let h = &self.cfg.helperd;
        let key = host_key(rhost);
        let now = self.clock.mono();
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        // Ended flows are kept only until collected, at most two minutes.
        flows.retain(|_, f| {
            let pending = matches!(*f.state.lock().unwrap_or_else(|e| e.into_inner()), State::Pending);
            now.saturating_sub(f.created) < Duration::from_secs(if pending { 3600 } else { 120 })
        });
        let pending: Vec<&Arc<Flow>> = flows
            .values()
            .filter(|f| matches!(*f.state.lock().unwrap_or_else(|e| e.into_inner()), State::Pending))
            .collect();
        let (all, here) = (pending.len(), pending.iter().filter(|f| f.rhost == key).count());
        if all >= h.max_device_flows {
            crate::log::limited_warning!("device-cap", "device login refused: {all} flows waiting (max_device_flows)");
            return Err(Response::DeviceFailed {
                code: oidc_core::DeviceFailure::Busy,
                reason: format!("{all} device logins are waiting (helperd.max_device_flows); try again later"),
            });
        }
        if here >= h.max_device_flows_per_host {
            crate::log::limited_warning!(
                "device-cap-host",
                "device login refused: {here} flows waiting from {}",
                oidc_core::clean(&key)
            );
            return Err(Response::DeviceFailed {
                code: oidc_core::DeviceFailure::Busy,
                reason: format!(
                    "{here} device logins from {} are waiting (helperd.max_device_flows_per_host)",
                    oidc_core::clean(&key)
                ),
            });
        }
        if !hint.is_empty() {
            self.push_allowed(hint, &key, &pending, now)?;
        }
        let Some(flow_id) = crate::ids::random_id() else {
            return Err(Response::DeviceFailed {
                code: oidc_core::DeviceFailure::Error,
                reason: "no randomness".into(),
            });
        };
        let user = if hint.is_empty() { String::new() } else { ciba::user_at(hint, &key) };
        let flow = Arc::new(Flow::new(now, key, owner, user));
        flows.insert(flow_id.clone(), flow.clone());
        Ok((flow_id, flow))
    }

    fn end(&self, flow_id: &str) {
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).remove(flow_id);
    }

    /// Start a flow for a login from `rhost`, asked by `owner`. sshd runs PAM
    /// for anyone who reaches port 22, so flows are capped in all and per
    /// remote host, and a flow whose owner is gone ends.
    pub fn start(self: &Arc<Self>, issuer: &str, rhost: &str, owner: Option<crate::server::Peer>) -> Response {
        let (flow_id, flow) = match self.reserve(rhost, owner, "") {
            Ok(x) => x,
            Err(r) => return r,
        };
        let r = self.start_reserved(issuer, rhost, flow_id.clone(), flow);
        if !matches!(r, Response::DeviceStarted { .. }) {
            self.end(&flow_id);
        }
        r
    }

    fn start_reserved(self: &Arc<Self>, issuer: &str, rhost: &str, flow_id: String, flow: Arc<Flow>) -> Response {
        let fail = |reason: String| Response::DeviceFailed { code: oidc_core::DeviceFailure::Error, reason };
        let Some(icfg) = self.cfg.issuer(issuer) else { return fail(format!("issuer not configured: {issuer}")) };
        let Some(client_id) = icfg.device_client_id.clone() else {
            return fail(format!("{issuer} has no device_client_id"));
        };
        let (dev_ep, tok_ep) = match self.endpoints(icfg) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let scope = device_scope(icfg);
        let auth = match ClientAuth::load(&self.cfg, issuer, Client::Device) {
            Ok(a) => a,
            Err(e) => return fail(e),
        };
        let fields = match auth.fields(&client_id, &dev_ep, self.clock.now()) {
            Ok(f) => f,
            Err(e) => return fail(e),
        };
        let form = with_auth(&[("client_id", client_id.as_str()), ("scope", scope.as_str())], &fields);
        let resp = match self.http.post_form(&dev_ep, &form) {
            Ok((200, body)) => match json(&body) {
                Ok(v) => v,
                Err(e) => return fail(format!("{dev_ep}: {e}")),
            },
            Ok((status, body)) => return fail(format!("{dev_ep}: HTTP {status}: {}", String::from_utf8_lossy(&body))),
            Err(e) => return fail(e),
        };
        let (Some(device_code), Some(user_code), Some(uri)) =
            (str_field(&resp, "device_code"), str_field(&resp, "user_code"), str_field(&resp, "verification_uri"))
        else {
            return fail("device authorization response lacks device_code, user_code or verification_uri".into());
        };
        let expires_in = resp.get("expires_in").and_then(Value::as_u64).unwrap_or(300).min(3600);
        let interval = resp.get("interval").and_then(Value::as_u64).unwrap_or(5).clamp(1, 60);
        // Poll no longer than the code lives, nor much past the module's wait.
        let limit = Duration::from_secs(expires_in.min(self.cfg.pam.device_timeout_secs.saturating_add(30)));
        let me = Arc::clone(self);
        let id = flow_id.clone();
        let (tok_ep2, client_id2) = (tok_ep.clone(), client_id.clone());
        let (refresh, iss_url) = (icfg.device_refresh, icfg.url.clone());
        let spawned = std::thread::Builder::new().name("helperd-device".into()).spawn(move || {
            let grant = [("grant_type", GRANT), ("device_code", device_code.as_str())];
            let end = match me.poll(&tok_ep2, &client_id2, &auth, &grant, interval, limit, Some(&flow)) {
                State::Done(id_token, Some(r)) if refresh => {
                    me.keep_grant(&id_token, &iss_url, &tok_ep2, &client_id2, r);
                    State::Done(id_token, None)
                }
                // Not asked for (device_refresh is off): dropped, wiped.
                State::Done(id_token, _) => State::Done(id_token, None),
                other => other,
            };
            finish(&flow, end, "device flow", &id);
        });
        if let Err(e) = spawned {
            return fail(format!("cannot start the poller: {e}"));
        }
        info!(
            "device flow {} started issuer={} rhost={} user_code={}",
            &flow_id[..8],
            oidc_core::clean(issuer),
            oidc_core::clean(rhost),
            oidc_core::clean(&user_code)
        );
        Response::DeviceStarted {
            flow_id,
            verification_uri: uri,
            verification_uri_complete: str_field(&resp, "verification_uri_complete"),
            user_code,
            expires_in,
        }
    }

    #[allow(clippy::too_many_arguments)] // the flow's state, passed once from start
    fn poll(
        &self,
        token_ep: &str,
        client_id: &str,
        auth: &ClientAuth,
        grant: &[(&str, &str)],
        mut interval: u64,
        limit: Duration,
        flow: Option<&Flow>,
    ) -> State {
        let start = self.clock.mono();
        loop {
            self.clock.sleep(Duration::from_secs(interval));
            if self.clock.mono().saturating_sub(start) >= limit {
                return State::Failed(
                    oidc_core::DeviceFailure::Timeout,
                    format!("not completed within {}s", limit.as_secs()),
                );
            }
            if flow.is_some_and(|f| f.abandoned.load(std::sync::atomic::Ordering::Relaxed)) {
                return State::Failed(oidc_core::DeviceFailure::Abandoned, "the login stopped waiting".into());
            }
            if let Some(p) = flow.and_then(|f| f.owner) {
                if !crate::procfs::same_process(&p) {
                    return State::Failed(
                        oidc_core::DeviceFailure::Abandoned,
                        format!("the login (process {}) is gone", p.pid),
                    );
                }
            }
            // Each request gets its own client authentication (an assertion's jti is used once).
            let send = || -> Result<Result<(u16, Vec<u8>), String>, String> {
                let fields = auth.fields(client_id, token_ep, self.clock.now())?;
                let mut form = grant.to_vec();
                form.push(("client_id", client_id));
                Ok(self.http.post_form(token_ep, &with_auth(&form, &fields)))
            };
            // A transport error (often a pooled connection the IdP or a load
            // balancer closed while idle) is retried once at once: waiting an
            // interval could outlast the user's login.
            let sent = match send() {
                Ok(Err(e)) => {
                    warning!("device flow poll: {e}; retrying at once");
                    send()
                }
                other => other,
            };
            let sent = match sent {
                Ok(r) => r,
                Err(e) => return State::Failed(oidc_core::DeviceFailure::Error, e),
            };
            let (status, body) = match sent {
                Ok(x) => x,
                Err(e) => {
                    warning!("device flow poll: {e}");
                    continue;
                }
            };
            let v = match json(&body) {
                Ok(v) => v,
                // A proxy's or a restarting IdP's error page is not the IdP's
                // answer: poll again at the next interval, until the deadline.
                Err(e) if status >= 500 || status == 429 => {
                    warning!("device flow poll: {token_ep}: HTTP {status}: {e}");
                    continue;
                }
                Err(e) => {
                    return State::Failed(oidc_core::DeviceFailure::Error, format!("{token_ep}: HTTP {status}: {e}"))
                }
            };
            if status == 200 {
                return match str_field(&v, "id_token") {
                    Some(t) => State::Done(Secret::new(t), str_field(&v, "refresh_token").map(Secret::new)),
                    None => State::Failed(
                        oidc_core::DeviceFailure::Error,
                        "token response has no id_token (is `openid` in the scope?)".into(),
                    ),
                };
            }
            let desc = str_field(&v, "error_description").unwrap_or_default();
            match str_field(&v, "error").as_deref() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += 5,
                Some("access_denied") => {
                    return State::Failed(oidc_core::DeviceFailure::Denied, format!("the user denied the login {desc}"))
                }
                Some("expired_token") => {
                    return State::Failed(oidc_core::DeviceFailure::Expired, format!("the request expired {desc}"))
                }
                Some(e) => return State::Failed(oidc_core::DeviceFailure::Error, format!("{e} {desc}")),
                None => {
                    return State::Failed(
                        oidc_core::DeviceFailure::Error,
                        format!("HTTP {status} without an error code"),
                    )
                }
            }
        }
    }

    /// Wait for a flow to end, at most `timeout`.
    pub fn wait(&self, flow_id: &str, timeout: Duration) -> Response {
        let Some(flow) = self.flows.lock().unwrap_or_else(|e| e.into_inner()).get(flow_id).cloned() else {
            return Response::DeviceFailed {
                code: oidc_core::DeviceFailure::Error,
                reason: "unknown device flow".into(),
            };
        };
        let guard = flow.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, _) = flow
            .cv
            .wait_timeout_while(guard, timeout, |s| matches!(s, State::Pending))
            .unwrap_or_else(|e| e.into_inner());
        match state.clone() {
            State::Done(t, _) => {
                drop(state);
                self.flows.lock().unwrap_or_else(|e| e.into_inner()).remove(flow_id);
                Response::DeviceToken { id_token: t }
            }
            State::Failed(code, reason) => Response::DeviceFailed { code, reason },
            State::Pending => {
                flow.abandoned.store(true, std::sync::atomic::Ordering::Relaxed);
                Response::DeviceFailed {
                    code: oidc_core::DeviceFailure::Timeout,
                    reason: format!("the user did not complete the login within {}s", timeout.as_secs()),
                }
            }
        }
    }
}

/// Log how flow `id` ended, record it and wake its waiter.
fn finish(flow: &Flow, end: State, what: &str, id: &str) {
    let how = match &end {
        State::Done(..) => "token received".to_string(),
        State::Failed(c, r) => format!("{c}: {}", oidc_core::clean(r)),
        State::Pending => "pending".into(),
    };
    info!("{what} {} ended: {how}", id.get(..8).unwrap_or(id));
    *flow.state.lock().unwrap_or_else(|e| e.into_inner()) = end;
    flow.cv.notify_all();
}

mod ciba;

#[cfg(test)]
mod tests;
