//! After a verified login: report it to helperd, which admits the identity
//! (allocates or confirms its uid and groups) or refuses it (name taken, uid
//! collision, local account). If helperd cannot be reached, only an identity
//! the account store already holds under this name may log in.

use oidc_core::accounts::{LoginEvent, Store, STORE_FILE};
use oidc_core::config::Config;
use oidc_core::ipc::{self, Request, Response};
use oidc_core::verify::Verified;
use oidc_core::Rejection;
use serde_json::Value;
use std::time::Duration;

fn uid_claim(cfg: &Config, v: &Verified) -> Option<u32> {
    let c = v.claims.get(cfg.accounts.uid_claim.as_deref()?)?;
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

/// `Ok(detail)` when the account may log in.
pub fn admit(cfg: &Config, v: &Verified) -> Result<String, Rejection> {
    if cfg.accounts.uid_claim.is_some() && uid_claim(cfg, v).is_none() {
        return Err(Rejection::BadClaim {
            claim: cfg.accounts.uid_claim.clone().unwrap_or_default(),
            why: "missing or not a uid".into(),
        });
    }
    let event = LoginEvent {
        issuer: v.issuer.clone(),
        sub: v.sub.clone(),
        name: v.username.clone(),
        groups: v.groups.clone(),
        uid_claim: uid_claim(cfg, v),
        gecos: gecos(cfg, v),
    };
    let timeout = Duration::from_millis(cfg.pam.ipc_timeout_ms);
    match ipc::call(&cfg.helperd.socket, &Request::Login { event }, timeout) {
        Ok(Response::Admitted { detail, .. }) => Ok(detail),
        Ok(Response::Refused { code, reason }) => Err(Rejection::AccountRefused { code, reason }),
        Ok(other) => Err(Rejection::AccountsUnavailable(format!("unexpected answer {other:?}"))),
        Err(e) => {
            let path = cfg.helperd.state_dir.join(STORE_FILE);
            match Store::load(&path) {
                Ok(store) if store.find(&v.issuer, &v.sub).is_some_and(|u| u.name == v.username) => {
                    Ok(format!("{e}; known identity from {}", path.display()))
                }
                Ok(_) => Err(Rejection::AccountsUnavailable(format!("{e}; a new identity needs helperd"))),
                Err(le) => Err(Rejection::AccountsUnavailable(format!("{e}; {le}"))),
            }
        }
    }
}
