//! Push login (OpenID Connect CIBA 1.0, poll mode) on behalf of pam_oidc:
//! ask the IdP's backchannel authentication endpoint to have the user
//! approve the login on their own device (`login_hint` from the PAM user,
//! a `binding_message` naming a short code, the service, the account, this
//! host and the remote address), then poll the token endpoint exactly like
//! a device-code flow (`interval`, `slow_down`, `expired_token`,
//! `access_denied`) under the same caps. One push waits per user at a time,
//! and after a push that was not approved the user gets none for
//! `helperd.ciba_user_cooldown_secs` (push fatigue).

use super::{json, str_field, DeviceFlows, State};
use crate::client_auth::{with_auth, Client, ClientAuth};
use crate::log::info;
use oidc_core::{DeviceFailure, Response};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const GRANT: &str = "urn:openid:params:grant-type:ciba";

/// The code alphabet: no 0/O, 1/I/L, so it reads back over the phone.
const CODE_CHARS: &[u8; 32] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ9";

/// Longest binding message sent (IdPs cap it; the host name is cut first).
pub const MAX_BINDING: usize = 64;

/// A 4-character code from `b` (the last char of the alphabet repeats: 31 distinct).
fn code_of(b: [u8; 4]) -> String {
    b.iter().map(|x| CODE_CHARS[usize::from(x % 32)] as char).collect()
}

/// Only characters every IdP's binding message takes (letters, digits, space, `.:_+-#,`).
fn plain(s: &str, max: usize) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || ".:_+-#,".contains(c) { c } else { '_' }).take(max).collect()
}

/// `s` in at most `max` characters; a cut one is marked `~`. DNS names keep
/// their rightmost labels (the registered domain is what tells a real host
/// from a look-alike), anything else its start (an IPv6 address its prefix).
fn fit(s: &str, max: usize) -> String {
    let p = plain(s, usize::MAX);
    if p.len() <= max {
        return p;
    }
    let keep = max.saturating_sub(1);
    let dns = s.parse::<std::net::IpAddr>().is_err() && s.contains('.');
    if dns {
        format!("~{}", &p[p.len() - keep..])
    } else {
        format!("{}~", &p[..keep])
    }
}

/// "X7Q2 sshd alice on web1 from 203.0.113.9", at most [`MAX_BINDING`] bytes:
/// the code, the service and the host always fit; the remote address and
/// the user share what is left, each cut visibly (`~`).
pub fn binding_message(code: &str, service: &str, user: &str, host: &str, origin: &str) -> String {
    let (service, host) = (fit(service, 8), fit(host, 20));
    let rest = MAX_BINDING.saturating_sub(code.len() + 1 + service.len() + 1 + 4 + host.len());
    let from = match origin {
        "" => String::new(),
        o => format!(" from {}", fit(o, rest.saturating_sub(6 + 4).min(24))),
    };
    let user = fit(user, rest.saturating_sub(from.len()).max(1));
    format!("{code} {service} {user} on {host}{from}").chars().take(MAX_BINDING).collect()
}

/// Who a hint pushes to, for the one-per-user and cooldown rules: IdPs match
/// login hints without case and around spaces, so `Alice ` is `alice`.
pub fn hint_key(hint: &str) -> String {
    hint.trim().to_lowercase()
}

/// A login hint sent to the IdP: printable ASCII, no spaces, bounded (no
/// control or invisible Unicode characters that could address someone else).
fn hint_ok(h: &str) -> bool {
    !h.is_empty() && h.len() <= 256 && h.chars().all(|c| c.is_ascii_graphic())
}

/// The one-per-user and cooldown key: the user at this origin (a remote
/// address by its /64, or a local uid), so no one elsewhere can hold a
/// user's pushes back.
pub(super) fn user_at(hint: &str, origin_key: &str) -> String {
    format!("{}\n{origin_key}", hint_key(hint))
}

impl DeviceFlows {
    /// Under the flows lock: may `hint` get a push now?
    pub(super) fn push_allowed(
        &self,
        hint: &str,
        origin_key: &str,
        pending: &[&Arc<super::Flow>],
        now: Duration,
    ) -> Result<(), Response> {
        let busy = |reason: String| Err(Response::DeviceFailed { code: DeviceFailure::Busy, reason });
        let key = user_at(hint, origin_key);
        if pending.iter().any(|f| f.hint == key) {
            crate::log::limited_warning!(
                "ciba-user",
                "push login refused: one is waiting for {}",
                oidc_core::clean(hint)
            );
            return busy(format!("a push login for {} is already waiting", oidc_core::clean(hint)));
        }
        let mut cd = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        cd.retain(|_, until| *until > now);
        if let Some(until) = cd.get(&key) {
            let left = until.saturating_sub(now).as_secs() + 1;
            crate::log::limited_warning!(
                "ciba-cooldown",
                "push login refused: {} is cooling down",
                oidc_core::clean(hint)
            );
            return busy(format!(
                "the last push login for {} was not approved: no new one for {left}s (helperd.ciba_user_cooldown_secs)",
                oidc_core::clean(hint)
            ));
        }
        Ok(())
    }

    /// Start a push login for PAM user `user` at `service` from `origin` (the
    /// remote address, or `uid:N` for a local caller), asked by `owner`. Wait
    /// for it with [`DeviceFlows::wait`].
    pub fn start_ciba(
        self: &Arc<Self>,
        issuer: &str,
        user: &str,
        service: &str,
        rhost: &str,
        acr: &[String],
        owner: Option<crate::server::Peer>,
    ) -> Response {
        let fail = |reason: String| Response::DeviceFailed { code: DeviceFailure::Error, reason };
        let Some(icfg) = self.cfg.issuer(issuer) else { return fail(format!("issuer not configured: {issuer}")) };
        if icfg.ciba_client_id.is_none() {
            return fail(format!("{issuer} has no ciba_client_id"));
        }
        let hint = icfg.ciba_hint(user);
        if !hint_ok(&hint) {
            return fail(format!(
                "login hint {:?} is empty, too long or has control characters",
                oidc_core::clean(&hint)
            ));
        }
        let (flow_id, flow) = match self.reserve(rhost, owner, &hint) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let r = self.start_ciba_reserved(issuer, (user, service, rhost), &hint, acr, flow_id.clone(), flow);
        if !matches!(r, Response::CibaStarted { .. }) {
            self.end(&flow_id);
        }
        r
    }

    #[allow(clippy::too_many_arguments)] // the request's parts, passed once from start_ciba
    fn start_ciba_reserved(
        self: &Arc<Self>,
        issuer: &str,
        (user, service, rhost): (&str, &str, &str),
        hint: &str,
        acr: &[String],
        flow_id: String,
        flow: Arc<super::Flow>,
    ) -> Response {
        let fail = |reason: String| Response::DeviceFailed { code: DeviceFailure::Error, reason };
        let Some(icfg) = self.cfg.issuer(issuer) else { return fail(format!("issuer not configured: {issuer}")) };
        let Some(client_id) = icfg.ciba_client_id.clone() else {
            return fail(format!("{issuer} has no ciba_client_id"));
        };
        let (bc_ep, tok_ep) = match crate::discovery::discover(self.http.as_ref(), &icfg.url)
            .map_err(|e| e.to_string())
            .and_then(|d| Ok((d.endpoint("backchannel_authentication_endpoint")?, d.endpoint("token_endpoint")?)))
        {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let auth = match ClientAuth::load(&self.cfg, issuer, Client::Ciba) {
            Ok(a) => a,
            Err(e) => return fail(e),
        };
        let fields = match auth.fields(&client_id, &bc_ep, self.clock.now()) {
            Ok(f) => f,
            Err(e) => return fail(e),
        };
        let Some(b) = crate::ids::random_bytes::<4>() else { return fail("no randomness".into()) };
        let code = code_of(b);
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let message = binding_message(&code, service, user, &host, rhost);
        let wait = self.cfg.pam.device_timeout_secs;
        let expiry = wait.to_string();
        // The cooldown holds from the moment the push may have gone out; only
        // a token lifts it (a timeout or a garbled answer after the IdP
        // accepted the request must not allow another push at once).
        let cool_key = flow.hint.clone();
        let cool = Duration::from_secs(self.cfg.helperd.ciba_user_cooldown_secs);
        self.cooldown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cool_key.clone(), self.clock.mono().saturating_add(cool));
        let acr_values = acr.join(" ");
        let mut form = vec![
            ("client_id", client_id.as_str()),
            ("scope", icfg.ciba_scope.as_str()),
            ("login_hint", hint),
            ("binding_message", message.as_str()),
            ("requested_expiry", expiry.as_str()),
        ];
        if !acr_values.is_empty() {
            form.push(("acr_values", acr_values.as_str()));
        }
        let resp = match self.http.post_form(&bc_ep, &with_auth(&form, &fields)) {
            Ok((200, body)) => match json(&body) {
                Ok(v) => v,
                Err(e) => return fail(format!("{bc_ep}: {e}")),
            },
            Ok((status, body)) => {
                let v = json(&body).unwrap_or(Value::Null);
                let err = str_field(&v, "error").unwrap_or_else(|| format!("HTTP {status}"));
                let desc = str_field(&v, "error_description").unwrap_or_default();
                // An IdP that does not know the user says so here.
                let code = if err == "unknown_user_id" || err == "access_denied" {
                    DeviceFailure::Denied
                } else {
                    DeviceFailure::Error
                };
                return Response::DeviceFailed { code, reason: format!("{bc_ep}: {err} {desc}") };
            }
            Err(e) => return fail(e),
        };
        let Some(auth_req_id) = str_field(&resp, "auth_req_id") else {
            return fail("backchannel authentication response lacks auth_req_id".into());
        };
        let expires_in = resp.get("expires_in").and_then(Value::as_u64).unwrap_or(120).min(3600);
        let interval = resp.get("interval").and_then(Value::as_u64).unwrap_or(5).clamp(1, 60);
        let limit = Duration::from_secs(expires_in.min(wait.saturating_add(5)));
        let me = Arc::clone(self);
        let id = flow_id.clone();
        let spawned = std::thread::Builder::new().name("helperd-ciba".into()).spawn(move || {
            let grant = [("grant_type", GRANT), ("auth_req_id", auth_req_id.as_str())];
            // The refresh token of a push login is not kept (no revalidation).
            let end = match me.poll(&tok_ep, &client_id, &auth, &grant, interval, limit, Some(&flow)) {
                State::Done(t, _) => State::Done(t, None),
                other => other,
            };
            let mut cd = me.cooldown.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(end, State::Done(..)) {
                cd.remove(&cool_key);
            } else {
                cd.insert(cool_key, me.clock.mono().saturating_add(cool));
            }
            drop(cd);
            super::finish(&flow, end, "push login", &id);
        });
        if let Err(e) = spawned {
            return fail(format!("cannot start the poller: {e}"));
        }
        info!(
            "push login {} started issuer={} user={} hint={} service={} rhost={} binding_message=\"{}\"",
            &flow_id[..8],
            oidc_core::clean(issuer),
            oidc_core::clean(user),
            oidc_core::clean(hint),
            oidc_core::clean(service),
            oidc_core::clean(rhost),
            oidc_core::clean(&message)
        );
        Response::CibaStarted { flow_id, code, expires_in }
    }
}

#[cfg(test)]
mod tests;
