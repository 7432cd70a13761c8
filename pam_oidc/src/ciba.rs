//! Push login (OpenID Connect CIBA) at the PAM prompt: helperd asks the IdP
//! to have the user approve this login on their own device and polls for
//! the ID token; the module shows one line (PAM_TEXT_INFO: no reply needed,
//! so a client that drops keyboard-interactive text still logs in once the
//! user approves) and waits — at most `pam.device_timeout_secs` — then
//! verifies the token like any other: it must name this PAM user.

use crate::handle::Pam;
use oidc_core::{Config, Issuer};
use oidc_core::{DeviceFailure, Helper, Request, Response};
use oidc_core::{Rejection, Secret};
use std::time::Duration;

pub fn login(
    pam: &mut dyn Pam,
    cfg: &Config,
    client: &dyn Helper,
    issuer: &Issuer,
    host: &str,
) -> Result<Secret, Rejection> {
    let user = pam.user().unwrap_or_default();
    let req = Request::CibaStart {
        issuer: issuer.url.clone(),
        user: user.clone(),
        service: pam.service(),
        rhost: pam.rhost(),
    };
    let (flow_id, code) = match client.call(&req) {
        Ok(Response::CibaStarted { flow_id, code, .. }) => (flow_id, code),
        Ok(Response::DeviceFailed { code: DeviceFailure::Denied, reason }) => {
            return Err(Rejection::CibaDenied(reason))
        }
        Ok(Response::DeviceFailed { reason, .. }) => return Err(Rejection::CibaError(reason)),
        Ok(other) => return Err(Rejection::CibaError(format!("helperd: {other:?}"))),
        Err(e) => return Err(Rejection::CibaError(e.to_string())),
    };
    pam.info(&format!(
        "Approve the login to {} as {} on your phone or authenticator — code {code}",
        oidc_core::clean(host),
        oidc_core::clean(&user)
    ));
    let wait = cfg.pam.device_timeout_secs;
    let req = Request::DeviceWait { flow_id, timeout_secs: wait };
    match client.call_within(&req, Duration::from_secs(wait + 5)) {
        Ok(Response::DeviceToken { id_token }) => Ok(id_token),
        Ok(Response::DeviceFailed { code, reason }) => Err(match code {
            DeviceFailure::Denied => Rejection::CibaDenied(reason),
            DeviceFailure::Expired | DeviceFailure::Timeout | DeviceFailure::Abandoned => {
                Rejection::CibaTimeout(reason)
            }
            DeviceFailure::Busy | DeviceFailure::Error => Rejection::CibaError(reason),
        }),
        Ok(other) => Err(Rejection::CibaError(format!("helperd: {other:?}"))),
        Err(e) => Err(Rejection::CibaTimeout(e.to_string())),
    }
}
