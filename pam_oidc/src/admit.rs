//! After a verified login: report it to helperd, which admits the identity
//! (allocates or confirms its uid and groups) or refuses it (name taken, uid
//! collision, local account). If helperd cannot be reached, only an identity
//! the account store already holds under this name may log in.

use oidc_core::Config;
use oidc_core::Rejection;
use oidc_core::Verified;
use oidc_core::{Helper, RefusalCode, Request, Response};
use oidc_core::{LoginEvent, Store, STORE_FILE};
use serde_json::Value;

/// The uid claim of the token's issuer, if that issuer assigns uids.
fn uid_claim_name<'c>(cfg: &'c Config, v: &Verified) -> Option<&'c str> {
    cfg.issuer(&v.issuer)?.uid_claim.as_deref()
}

fn uid_claim(cfg: &Config, v: &Verified) -> Option<u32> {
    let c = oidc_core::get_claim(&v.claims, uid_claim_name(cfg, v)?)?;
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
    client: &dyn Helper,
    v: &Verified,
    claims: &mut oidc_core::SessionClaims,
    role: bool,
    token: Option<&oidc_core::Secret>,
) -> Result<(String, Option<String>), Rejection> {
    let replay_id = token.map(|t| oidc_core::replay_id(t.expose(), v.jti.as_deref()));
    let req = if role {
        Request::Login {
            event: None,
            claims: claims.clone(),
            web_token: None,
            role_groups: v.groups.clone(),
            replay_id: replay_id.clone(),
        }
    } else {
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
        Request::Login {
            event: Some(event),
            claims: claims.clone(),
            web_token: token.cloned(),
            role_groups: vec![],
            replay_id: replay_id.clone(),
        }
    };
    match client.call(&req) {
        Ok(Response::Admitted { detail, login_id, groups }) => {
            if let Some(g) = groups {
                claims.groups = g;
            }
            Ok((detail, Some(login_id)))
        }
        Ok(Response::Refused { code: RefusalCode::Replayed, reason }) => Err(Rejection::Replayed(reason)),
        Ok(Response::Refused { code, reason }) => Err(Rejection::AccountRefused { code, reason }),
        Ok(other) => Err(Rejection::AccountsUnavailable(format!("unexpected answer {other:?}"))),
        // helperd not there (not running, or it timed out earlier in this
        // hook): decide here, recording the token's use ourselves. A refused
        // frame or an odd answer never lets the module decide alone.
        Err(e) if client.unreachable(&e) => {
            // A lock holds with helperd down too: its file, read here (an
            // unreadable one refuses every login until helperd is back).
            let locks = oidc_core::LocksSaved::read(&cfg.helperd.state_dir)
                .map_err(|le| Rejection::AccountsUnavailable(format!("{e}; {le}")))?;
            if let Some(l) = locks.lock_for(claims) {
                return Err(Rejection::AccountRefused {
                    code: RefusalCode::Locked,
                    reason: format!("{e}; {} is locked on this host by {}", l.target, oidc_core::clean(&l.by)),
                });
            }
            if role {
                record_use_locally(cfg, &v.issuer, replay_id.as_deref(), claims.exp)?;
                return Ok((format!("{e}; the session will have no stored claims"), None));
            }
            let path = cfg.helperd.state_dir.join(STORE_FILE);
            match Store::load(&path) {
                Ok(store) => match store.find(&v.issuer, &v.identity).filter(|u| u.name == v.username) {
                    Some(u) => {
                        record_use_locally(cfg, &v.issuer, replay_id.as_deref(), claims.exp)?;
                        // Only the groups the host already serves for this account.
                        claims.groups.retain(|g| u.groups.contains(g));
                        Ok((format!("{e}; known identity from {}", path.display()), None))
                    }
                    None => Err(Rejection::AccountsUnavailable(format!("{e}; a new identity needs helperd"))),
                },
                Err(le) => Err(Rejection::AccountsUnavailable(format!("{e}; {le}"))),
            }
        }
        Err(e) => Err(Rejection::AccountsUnavailable(e.to_string())),
    }
}

/// With helperd not running, a token still logs in once: check helperd's
/// replay record (`replay.log`), then claim the use with an exclusive marker file in
/// `state_dir/replay.d` (helperd takes the markers in when it starts). If
/// neither can be done (not root, no state dir), the login is refused.
fn record_use_locally(cfg: &Config, issuer: &str, replay_id: Option<&str>, exp: i64) -> Result<(), Rejection> {
    use oidc_core::{ReplayMarker, REPLAY_PENDING_DIR};
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let Some(id) = replay_id else { return Ok(()) };
    let dir = cfg.helperd.state_dir.join(REPLAY_PENDING_DIR);
    let unavailable = |why: String| Rejection::AccountsUnavailable(format!("helperd is down and {why}"));
    let replayed = || Rejection::Replayed(format!("token already used on this host ({})", oidc_core::clean(id)));
    if oidc_core::replay_recorded(&cfg.helperd.state_dir, issuer, id) {
        return Err(replayed());
    }
    // Kept while the token is valid: exp plus the issuer's leeway, as helperd keeps uses.
    let until = cfg.accepted_until(issuer, exp);
    let marker = ReplayMarker { issuer: issuer.to_string(), until, id: id.to_string() };
    let path = dir.join(marker.file_name());
    let f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&path);
    match f {
        Ok(mut f) => {
            // Admitted only once the claim is durable: the marker's content
            // and its directory entry (a marker lost to a crash, or empty,
            // would let the token in again).
            let durable = f
                .write_all(marker.line().as_bytes())
                .and_then(|()| f.sync_all())
                .and_then(|()| std::fs::File::open(&dir)?.sync_all());
            durable.map_err(|e| {
                let _ = std::fs::remove_file(&path);
                unavailable(format!("the token's use cannot be recorded in {}: {e}", dir.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(replayed()),
        Err(e) => Err(unavailable(format!("the token's use cannot be recorded in {}: {e}", dir.display()))),
    }
}
