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
    acr: &[String],
) -> Result<Secret, Rejection> {
    let user = pam.user().unwrap_or_default();
    // A push goes only to an OIDC account that can log in here: a name that
    // does not resolve cannot (sshd refuses it anyway), and a role account
    // (`deploy`) is no one's phone. Anyone on port 22 can type any name.
    if cfg.is_role_account(&user) || crate::local::classify(cfg, pam, &user) != crate::local::Kind::Oidc {
        return Err(Rejection::CibaError(format!(
            "no push for {}: not a person's OIDC account on this host (unknown names and role accounts get none; \
             list new users in the roster or pre-login patterns)",
            oidc_core::clean(&user)
        )));
    }
    let req = Request::CibaStart {
        issuer: issuer.url.clone(),
        user: user.clone(),
        service: pam.service(),
        rhost: pam.rhost(),
        acr: acr.to_vec(),
    };
    // helperd fetches discovery and posts the request before answering.
    let start = Duration::from_secs(cfg.helperd.fetch_timeout_secs.saturating_mul(2).saturating_add(5));
    let (flow_id, code) = match client.call_within(&req, start) {
        Ok(Response::CibaStarted { flow_id, code, .. }) => (flow_id, code),
        Ok(Response::DeviceFailed { code: DeviceFailure::Denied, reason }) => {
            return Err(Rejection::CibaDenied(reason))
        }
        Ok(Response::DeviceFailed { reason, .. }) => return Err(Rejection::CibaError(reason)),
        Ok(other) => return Err(Rejection::CibaError(format!("helperd: {other:?}"))),
        Err(e) => return Err(Rejection::CibaError(e.to_string())),
    };
    let wait = cfg.pam.device_timeout_secs;
    if issuer.ciba_confirm_code {
        // Number matching: the code is on the phone only; whoever sits here
        // must read it there. An approval alone lets no one in.
        let prompt = format!(
            "A login request to {} as {} was sent to your phone: type the code it shows, then approve it: ",
            oidc_core::clean(host),
            oidc_core::clean(&user)
        );
        let typed =
            pam.prompt_secret(&prompt).map_err(|rc| Rejection::NoToken(format!("conversation failed ({rc:?})")));
        let matches =
            typed.as_ref().ok().and_then(|t| t.as_ref()).is_some_and(|t| t.expose().trim().eq_ignore_ascii_case(&code));
        if !matches {
            // Stop helperd polling for it: no one will take the token.
            let _ = client.call(&Request::DeviceWait { flow_id, timeout_secs: 0 });
            typed?;
            return Err(Rejection::CibaDenied("the code typed is not the push's code".into()));
        }
    } else {
        pam.info(&format!(
            "Approve the login to {} as {} on your phone or authenticator — code {code}",
            oidc_core::clean(host),
            oidc_core::clean(&user)
        ));
    }
    let req = Request::DeviceWait { flow_id, timeout_secs: wait };
    match client.call_within(&req, Duration::from_secs(wait.saturating_add(5))) {
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

/// A push login's token must come from the issuer and client the push went
/// through, not merely from any configured issuer and audience.
pub fn pinned(issuer: &Issuer, v: &oidc_core::Verified) -> Result<(), Rejection> {
    let client = issuer.ciba_client_id.as_deref().unwrap_or_default();
    let aud = match v.claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == client,
        Some(serde_json::Value::Array(l)) => l.iter().any(|a| a.as_str() == Some(client)),
        _ => false,
    };
    if issuer.is(&v.issuer) && aud {
        Ok(())
    } else {
        Err(Rejection::CibaError(format!(
            "the push login's token is from {} for another client (want {} and aud {client})",
            oidc_core::clean(&v.issuer),
            oidc_core::clean(&issuer.url)
        )))
    }
}
