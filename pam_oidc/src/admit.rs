//! After a verified login: report it to helperd, which admits the identity
//! (allocates or confirms its uid and groups) or refuses it (name taken, uid
//! collision, local account). If helperd cannot be reached, only an identity
//! the account store already holds under this name may log in.

use oidc_core::accounts::{LoginEvent, Store, STORE_FILE};
use oidc_core::config::Config;
use oidc_core::ipc::{Client, Request, Response};
use oidc_core::verify::Verified;
use oidc_core::Rejection;
use serde_json::Value;

/// The uid claim of the token's issuer, if that issuer assigns uids.
fn uid_claim_name<'c>(cfg: &'c Config, v: &Verified) -> Option<&'c str> {
    cfg.issuer(&v.issuer)?.uid_claim.as_deref()
}

fn uid_claim(cfg: &Config, v: &Verified) -> Option<u32> {
    let c = oidc_core::claims::get(&v.claims, uid_claim_name(cfg, v)?)?;
    match c {
        Value::Number(n) => n.as_u64().and_then(|x| u32::try_from(x).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn gecos(cfg: &Config, v: &Verified) -> String {
    let raw = v.claims.get(&cfg.accounts.gecos_claim).and_then(Value::as_str).unwrap_or("");
    raw.chars().filter(|c| !c.is_control() && *c != ':' && *c != ',').take(128).collect()
}

/// `Ok((detail, login id))` when the account may log in; `claims.groups`
/// becomes the host groups helperd admitted. `role`: the PAM user is a role
/// account (no admission; only the claims are kept for the session).
pub fn admit(
    cfg: &Config,
    client: &Client,
    v: &Verified,
    claims: &mut oidc_core::session::SessionClaims,
    role: bool,
    token: Option<&oidc_core::Secret>,
) -> Result<(String, Option<String>), Rejection> {
    let replay_id = token.map(|t| oidc_core::verify::replay_id(t.expose(), v.jti.as_deref()));
    if role {
        let req = Request::Login {
            event: None,
            claims: claims.clone(),
            web_token: None,
            role_groups: v.groups.clone(),
            replay_id: replay_id.clone(),
        };
        return Ok(match client.call(&req) {
            Ok(Response::Admitted { detail, login_id, groups }) => {
                if let Some(g) = groups {
                    claims.groups = g;
                }
                (detail, Some(login_id))
            }
            Ok(Response::Refused { code, reason }) if code == "replayed" => return Err(Rejection::Replayed(reason)),
            Ok(Response::Refused { code, reason }) => return Err(Rejection::AccountRefused { code, reason }),
            Ok(other) => (format!("helperd: {other:?}"), None),
            Err(e) => (format!("{e}; the session will have no stored claims"), None),
        });
    }
    if let Some(name) = uid_claim_name(cfg, v) {
        if uid_claim(cfg, v).is_none() {
            return Err(Rejection::BadClaim { claim: name.to_string(), why: "missing or not a uid".into() });
        }
    }
    let event = LoginEvent {
        issuer: v.issuer.clone(),
        sub: v.identity.clone(),
        name: v.username.clone(),
        groups: v.groups.clone(),
        uid_claim: uid_claim(cfg, v),
        gecos: gecos(cfg, v),
    };
    let req = Request::Login {
        event: Some(event),
        claims: claims.clone(),
        web_token: token.cloned(),
        role_groups: vec![],
        replay_id,
    };
    match client.call(&req) {
        Ok(Response::Admitted { detail, login_id, groups }) => {
            if let Some(g) = groups {
                claims.groups = g;
            }
            Ok((detail, Some(login_id)))
        }
        Ok(Response::Refused { code, reason }) if code == "replayed" => Err(Rejection::Replayed(reason)),
        Ok(Response::Refused { code, reason }) => Err(Rejection::AccountRefused { code, reason }),
        Ok(other) => Err(Rejection::AccountsUnavailable(format!("unexpected answer {other:?}"))),
        Err(e) => {
            let path = cfg.helperd.state_dir.join(STORE_FILE);
            match Store::load(&path) {
                Ok(store) => match store.find(&v.issuer, &v.identity).filter(|u| u.name == v.username) {
                    Some(u) => {
                        // Only the groups the host already serves for this account.
                        claims.groups.retain(|g| u.groups.contains(g));
                        Ok((format!("{e}; known identity from {}", path.display()), None))
                    }
                    None => Err(Rejection::AccountsUnavailable(format!("{e}; a new identity needs helperd"))),
                },
                Err(le) => Err(Rejection::AccountsUnavailable(format!("{e}; {le}"))),
            }
        }
    }
}
