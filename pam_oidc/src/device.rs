//! Device-code login at the PAM prompt: helperd starts the flow and polls the
//! IdP; the verification URL and user code are in the prompt text itself
//! (sshd shows text-info messages only with the next prompt, and sudo's
//! default PAM_SILENT hides them from modules that honour it); after the user presses Enter the module waits — at most
//! `pam.device_timeout_secs` — for the ID token, then verifies it like any other.

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
    let rhost = pam.rhost();
    let started = client.call(&Request::DeviceStart { issuer: issuer.url.clone(), rhost: rhost.clone() });
    let (flow_id, url, code) = match started {
        Ok(Response::DeviceStarted { flow_id, verification_uri, verification_uri_complete, user_code, .. }) => {
            (flow_id, verification_uri_complete.unwrap_or(verification_uri), user_code)
        }
        Ok(Response::DeviceFailed { reason, .. }) => return Err(Rejection::DeviceError(reason)),

        Ok(other) => return Err(Rejection::DeviceError(format!("helperd: {other:?}"))),
        Err(e) => return Err(Rejection::DeviceError(e.to_string())),
    };
    // Name the host, the account and where the login comes from: a user who
    // did not start this login (a phishing relay) can tell.
    let user = pam.user().unwrap_or_default();
    let from = if rhost.is_empty() { String::new() } else { format!(" from {}", oidc_core::clean(&rhost)) };
    let prompt = format!(
        "To log in to {host} as {} {from}, open {url} and confirm the code {code}, then press Enter: ",
        oidc_core::clean(&user)
    );
    let prompt = prompt.replace("  ", " ").replace(" ,", ",");
    pam.prompt_secret(&prompt).map_err(|rc| Rejection::NoToken(format!("conversation failed ({rc:?})")))?;
    let wait = cfg.pam.device_timeout_secs;
    let req = Request::DeviceWait { flow_id, timeout_secs: wait };
    match client.call_within(&req, Duration::from_secs(wait.saturating_add(5))) {
        Ok(Response::DeviceToken { id_token }) => Ok(id_token),
        Ok(Response::DeviceFailed { code, reason }) => Err(match code {
            DeviceFailure::Denied => Rejection::DeviceDenied(reason),
            DeviceFailure::Expired => Rejection::DeviceExpired(reason),
            DeviceFailure::Timeout | DeviceFailure::Abandoned => Rejection::DeviceTimeout(reason),
            DeviceFailure::Busy | DeviceFailure::Error => Rejection::DeviceError(reason),
        }),
        Ok(other) => Err(Rejection::DeviceError(format!("helperd: {other:?}"))),
        Err(e) => Err(Rejection::DeviceTimeout(e.to_string())),
    }
}
