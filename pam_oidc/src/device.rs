//! Device-code login at the PAM prompt: helperd starts the flow and polls the
//! IdP; the verification URL and user code are in the prompt text itself
//! (sshd merges text-info messages into the next prompt and sudo hides them
//! under PAM_SILENT); after the user presses Enter the module waits — at most
//! `pam.device_timeout_secs` — for the ID token, then verifies it like any other.

use crate::handle::Pam;
use oidc_core::config::{Config, Issuer};
use oidc_core::ipc::{Client, Request, Response};
use oidc_core::{Rejection, Secret};
use std::time::Duration;

pub fn login(pam: &mut dyn Pam, cfg: &Config, client: &Client, issuer: &Issuer) -> Result<Secret, Rejection> {
    let started = client.call(&Request::DeviceStart { issuer: issuer.url.clone() });
    let (flow_id, url, code) = match started {
        Ok(Response::DeviceStarted { flow_id, verification_uri, verification_uri_complete, user_code, .. }) => {
            (flow_id, verification_uri_complete.unwrap_or(verification_uri), user_code)
        }
        Ok(Response::DeviceFailed { reason, .. }) => return Err(Rejection::DeviceError(reason)),
        Ok(other) => return Err(Rejection::DeviceError(format!("helperd: {other:?}"))),
        Err(e) => return Err(Rejection::DeviceError(e.to_string())),
    };
    let prompt = format!("To log in, open {url} and confirm the code {code}, then press Enter: ");
    pam.prompt_secret(&prompt).map_err(|rc| Rejection::NoToken(format!("conversation failed ({rc:?})")))?;
    let wait = cfg.pam.device_timeout_secs;
    let long = Client::new(&cfg.helperd.socket, Duration::from_secs(wait + 5));
    match long.call(&Request::DeviceWait { flow_id, timeout_secs: wait }) {
        Ok(Response::DeviceToken { id_token }) => Ok(id_token),
        Ok(Response::DeviceFailed { code, reason }) => Err(match code.as_str() {
            "denied" => Rejection::DeviceDenied(reason),
            "expired" => Rejection::DeviceExpired(reason),
            "timeout" => Rejection::DeviceTimeout(reason),
            _ => Rejection::DeviceError(reason),
        }),
        Ok(other) => Err(Rejection::DeviceError(format!("helperd: {other:?}"))),
        Err(e) => Err(Rejection::DeviceTimeout(e.to_string())),
    }
}
