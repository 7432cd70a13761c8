//! What helperd answers, apart from the socket it came on: one request from
//! one peer (taken at accept: uid, pid, start time) to one response. The
//! socket layer (`server`) reads and writes frames; everything here is
//! reachable from tests with a `Peer` value and `Services` built on fakes
//! (a scripted transport, a fake clock, a temporary state directory).
//!
//! Root-only requests are refused to every other uid here, whatever socket
//! they came on (the root socket is 0600 as well).

use crate::accounts::AccountService;
use crate::clock::Clock;
use crate::keys::KeyCache;
use crate::log::{info, limited_warning, warning};
use crate::server::Peer;
use oidc_core::{Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// Everything the daemon serves.
pub struct Services {
    pub keys: KeyCache,
    pub accounts: AccountService,
    pub sessions: crate::sessions::Sessions,
    pub device: Arc<crate::device::DeviceFlows>,
    pub aws: crate::aws::Broker,
    pub replay: crate::replay::ReplayCache,
    pub locks: crate::locks::Locks,
    pub clock: Arc<dyn Clock>,
}

/// End the live sessions a lock holds for, and stop their credentials.
pub fn end_locked(svc: &Services, lock: &oidc_core::Lock) -> Vec<u64> {
    // Logins verified but not yet in a session never open one.
    let dropped = svc.sessions.drop_pending(|c| lock.target.holds_for(c));
    if dropped > 0 {
        info!("{}: {dropped} login(s) waiting for their session dropped", lock.target);
    }
    let ended = svc.sessions.end(
        |s| lock.target.holds_for(&s.claims),
        |_| format!("{} is locked by {} ({})", lock.target, oidc_core::clean(&lock.by), oidc_core::clean(&lock.reason)),
    );
    if !ended.is_empty() {
        svc.aws.forget(&svc.sessions.ids());
    }
    ended
}

/// Who is asking, for the record: the peer's uid and pid, its audit login
/// uid (set at login by pam_loginuid; a process cannot change it) and the
/// name the CLI gave (`SUDO_USER`).
fn asker(peer: &Peer, said: &str) -> String {
    let loginuid = std::fs::read_to_string(format!("/proc/{}/loginuid", peer.pid))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|u| *u != u32::MAX);
    let mut by = format!("uid {} pid {}", peer.uid, peer.pid);
    if let Some(u) = loginuid {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u)).ok().flatten().map(|u| u.name);
        by.push_str(&format!(" loginuid {u}{}", name.map(|n| format!(" ({n})")).unwrap_or_default()));
    }
    if !said.is_empty() {
        by.push_str(&format!(" sudo_user {}", oidc_core::clean(said)));
    }
    by
}

fn lock(svc: &Services, peer: &Peer, target: &oidc_core::LockTarget, reason: &str, said: &str) -> Response {
    use oidc_core::LockTarget;
    // An identity lock names the issuer as sessions record it (its url, also
    // when given an alias); an issuer not configured here would lock nothing.
    let target = match target {
        LockTarget::Identity { issuer, sub } => match svc.keys.config().issuer(issuer) {
            Some(i) => LockTarget::Identity { issuer: i.url.clone(), sub: sub.clone() },
            None => {
                return Response::Error {
                    message: format!(
                        "{} is not a configured issuer: nothing would be locked",
                        oidc_core::clean(issuer)
                    ),
                }
            }
        },
        t => t.clone(),
    };
    let lock = oidc_core::Lock {
        target,
        by: asker(peer, said),
        at: svc.clock.now(),
        reason: reason.chars().take(512).collect(),
        source: crate::locks::LOCAL.into(),
        via: None,
    };
    // The identity holding an OIDC account of that name is locked with it:
    // a rename at the IdP does not escape the lock.
    let mut all = vec![lock.clone()];
    if let LockTarget::Name { name } = &lock.target {
        if let Some(u) = svc.accounts.users().into_iter().find(|u| u.name.eq_ignore_ascii_case(name)) {
            let target = LockTarget::Identity { issuer: u.issuer, sub: u.sub };
            all.push(oidc_core::Lock { target, via: Some(name.clone()), ..lock.clone() });
        }
    }
    for l in &all {
        if let Err(e) = svc.locks.lock(l.clone()) {
            return Response::Error { message: format!("lock not saved: {e}") };
        }
    }
    let ended: Vec<u64> = all.iter().flat_map(|l| end_locked(svc, l)).collect();
    for l in &all {
        warning!("locked {} by {}: {}", l.target, l.by, oidc_core::clean(&l.reason));
    }
    let held = if all.len() > 1 { " (and the identity holding it)" } else { "" };
    let detail = format!("{}{held} locked; {} live session(s) ended", lock.target, ended.len());
    Response::Locked { ended, detail }
}

fn aws_status(o: crate::aws::Outcome) -> Option<oidc_core::AwsStatus> {
    use crate::aws::Outcome;
    match o {
        Outcome::NoRole => None,
        Outcome::Granted(message) => Some(oidc_core::AwsStatus { granted: true, required_failed: false, message }),
        Outcome::Failed { required, code, reason } => Some(oidc_core::AwsStatus {
            granted: false,
            required_failed: required,
            message: format!("AWS credentials unavailable ({code}): {reason}"),
        }),
    }
}

fn login(
    svc: &Services,
    event: Option<&oidc_core::LoginEvent>,
    claims: &oidc_core::SessionClaims,
    web_token: Option<&oidc_core::Secret>,
    raw_groups: &[String],
    replay_id: Option<&str>,
) -> Response {
    let mut claims = claims.clone();
    // A device login's refresh token, kept by helperd under the replay id of
    // the ID token it handed out: this login reports that token (dropped,
    // wiped, if the login is refused).
    let grant = replay_id.and_then(|r| svc.device.take_grant(r, &claims));
    if let Some(lock) = svc.locks.lock_for(&claims) {
        warning!(
            "login refused code=locked issuer={} identity={} account={}: {} is locked by {} at {} ({})",
            oidc_core::clean(&claims.issuer),
            oidc_core::clean(&claims.identity),
            oidc_core::clean(&claims.account),
            lock.target,
            oidc_core::clean(&lock.by),
            oidc_core::format_rfc3339(lock.at),
            oidc_core::clean(&lock.reason)
        );
        return Response::Refused {
            code: oidc_core::RefusalCode::Locked,
            reason: format!("{} is locked on this host", lock.target),
        };
    }
    // Each token logs in once here (sudo's reuse of session claims sends none):
    // reserved now, recorded once admitted, given back if refused otherwise.
    let reserved = match replay_id {
        Some(id) => {
            let until = svc.keys.config().accepted_until(&claims.issuer, claims.exp);
            if let Err(why) = svc.replay.reserve(&claims.issuer, id, until, svc.clock.now()) {
                warning!(
                    "login refused code=replayed issuer={} identity={} account={}: {why}",
                    oidc_core::clean(&claims.issuer),
                    oidc_core::clean(&claims.identity),
                    oidc_core::clean(&claims.account)
                );
                return Response::Refused { code: oidc_core::RefusalCode::Replayed, reason: why };
            }
            Some(id)
        }
        None => None,
    };
    let resp = admit_login(svc, event, &mut claims, web_token, raw_groups, grant);
    if let Some(id) = reserved {
        let ok = matches!(resp, Response::Admitted { .. });
        if !ok {
            svc.replay.release(&claims.issuer, id);
        } else if let Err(why) = svc.replay.commit(&claims.issuer, id) {
            svc.replay.release(&claims.issuer, id);
            return Response::Refused { code: oidc_core::RefusalCode::AccountsUnavailable, reason: why };
        }
    }
    resp
}

fn admit_login(
    svc: &Services,
    event: Option<&oidc_core::LoginEvent>,
    claims: &mut oidc_core::SessionClaims,
    web_token: Option<&oidc_core::Secret>,
    raw_groups: &[String],
    grant: Option<crate::revalidate::Grant>,
) -> Response {
    let (detail, groups) = match event {
        Some(ev) => match svc.accounts.admit(ev) {
            Ok((d, groups)) => {
                // The session's groups are the host groups admitted, not what the module guessed.
                claims.groups = groups.clone();
                (d, Some(groups))
            }
            Err(refused) => return refused,
        },
        None => {
            // A role account is a local account: never an OIDC user's account.
            if let Some(holder) = svc.accounts.holder_of(&claims.account) {
                warning!(
                    "role account login refused: {} is the OIDC account of {holder}; issuer={} identity={}",
                    claims.account,
                    oidc_core::clean(&claims.issuer),
                    oidc_core::clean(&claims.identity)
                );
                return Response::Refused {
                    code: oidc_core::RefusalCode::NameOfAnotherIssuer,
                    reason: format!("{} is an OIDC user's account, not a role account", claims.account),
                };
            }
            // The session's groups: what the token's groups are on this host.
            let groups = svc.accounts.role_groups(&claims.issuer, raw_groups);
            claims.groups = groups.clone();
            (format!("role account {} for identity {}", claims.account, claims.identity), Some(groups))
        }
    };
    // Keep the token only if the account's AWS role will need it (web identity).
    let keep = svc.aws.wants_web_token(&claims.groups, &claims.issuer);
    match svc.sessions.add_pending_with(claims.clone(), web_token.filter(|_| keep).cloned(), grant) {
        Some(login_id) => Response::Admitted { detail, login_id, groups },
        None => Response::Refused {
            code: oidc_core::RefusalCode::AccountsUnavailable,
            reason: "no randomness for a login id".into(),
        },
    }
}

/// Answer one request of `peer`. `before_wait` is called just before a
/// device-code wait blocks (the socket layer gives the connection's slot back:
/// such waits are capped by the flow limits, not by the connection pool).
pub fn dispatch(svc: &Services, peer: Peer, req: Request, before_wait: &mut dyn FnMut()) -> Response {
    let (uid, pid) = (peer.uid, peer.pid);
    match &req {
        Request::Ping => Response::Pong { version: env!("CARGO_PKG_VERSION").into() },
        Request::Status => Response::Status { issuers: svc.keys.status() },
        Request::RefreshJwks { issuer, force } => {
            let force = *force && uid == 0;
            crate::log::limited(
                crate::log::Level::Info,
                &format!("refresh:{uid}"),
                &format!(
                    "jwks refresh requested by uid={uid} pid={pid} issuer={}{}",
                    oidc_core::clean(issuer),
                    if force { " (forced)" } else { "" }
                ),
            );
            svc.keys.refresh_on_demand(issuer, force)
        }
        _ if uid != 0 && req.root_only() => {
            limited_warning!(&format!("root-only:{uid}"), "refused {} from uid={uid} pid={pid}: root only", req.name());
            Response::Refused { code: oidc_core::RefusalCode::PermissionDenied, reason: "only root may do this".into() }
        }
        Request::Login { event, claims, web_token, role_groups, replay_id } => {
            login(svc, event.as_ref(), claims, web_token.as_ref(), role_groups, replay_id.as_deref())
        }
        Request::Rebind { name, issuer, sub } => match svc.accounts.rebind(name, issuer, sub, uid) {
            Ok(detail) => Response::Rebound { detail },
            Err(r) => r,
        },
        Request::OpenSession { login_id, pid: spid, tty, rhost, end_at_expiry } => {
            // A lock set between the login and its session holds too.
            if let Some(lock) = svc.sessions.pending_claims(login_id).and_then(|c| svc.locks.lock_for(&c)) {
                warning!("session refused: {} is locked by {}", lock.target, oidc_core::clean(&lock.by));
                return Response::Refused {
                    code: oidc_core::RefusalCode::Locked,
                    reason: format!("{} is locked on this host", lock.target),
                };
            }
            match svc.sessions.pending_account(login_id).and_then(|a| svc.accounts.uid_of(&a)) {
                None => Response::Error { message: "unknown or expired login id, or unknown account".into() },
                Some(account_uid) => match svc.sessions.open(login_id, account_uid, *spid, tty, rhost, |c| {
                    let cfg = svc.keys.config();
                    // The stack may end sessions the config keeps, never the other way round.
                    cfg.session_ends_at(&c.issuer, c.exp).or(cfg.session_ends_at_if(*end_at_expiry, c.exp))
                }) {
                    Ok((id, claims, token)) => {
                        let aws = match svc.keys.config().role_switch(&claims.account, |r| r.aws_credentials) {
                            // Many people, one uid: a role account's sessions get no
                            // AWS credentials unless its rules opt in.
                            Some(false) => {
                                info!(
                                    "aws: session {id} ({}): role account: no credentials \
                                     (role_account.aws_credentials is off)",
                                    oidc_core::clean(&claims.account)
                                );
                                None
                            }
                            _ => aws_status(svc.aws.open(id, &claims, token)),
                        };
                        Response::SessionOpened { id, aws }
                    }
                    Err(e) => Response::Error { message: e },
                },
            }
        }
        Request::CloseSession { pid: spid } => {
            let closed = svc.sessions.close(*spid);
            svc.aws.forget(&svc.sessions.ids());
            Response::SessionClosed { closed }
        }
        Request::SessionClaims => {
            let (claims, detail) = svc.sessions.claims_for(&peer);
            match claims {
                // A role account's claims are not reused unless its rule opts in
                // (another holder of the shared uid could borrow them).
                Some(c) if svc.keys.config().role_switch(&c.account, |r| r.reuse_claims) == Some(false) => {
                    let detail = format!(
                        "{detail}: role account {}: claim reuse is off (role_account.reuse_claims)",
                        oidc_core::clean(&c.account)
                    );
                    Response::Claims { claims: None, detail }
                }
                claims => Response::Claims { claims: claims.map(Box::new), detail },
            }
        }
        Request::Sessions { offset } => {
            let all = svc.sessions.list();
            let (mut sessions, next) = oidc_core::page_of(&all, *offset, |s| {
                s.claims.groups.truncate(16);
                s.claims.idp_groups.truncate(16);
            });
            for s in &mut sessions {
                s.aws = svc.aws.describe(s.id);
            }
            Response::Sessions { sessions, next }
        }
        Request::AwsCredentials => match svc.sessions.for_credentials(&peer) {
            None => Response::Error { message: format!("process {pid} (uid {uid}) is in no OIDC session of its uid") },
            Some(id) => match svc.aws.credentials(id) {
                Ok(c) => Response::AwsCredentials {
                    access_key_id: c.access_key_id,
                    secret_access_key: c.secret,
                    session_token: c.token,
                    expiration: c.expiration,
                },
                Err(e) => Response::Error { message: e },
            },
        },
        Request::RenewSession { token } => crate::renew::renew(svc, &peer, token),
        Request::Lock { target, reason, by } => lock(svc, &peer, target, reason, by),
        Request::Unlock { target } => match svc.locks.unlock(target) {
            Ok(removed) => {
                let by = asker(&peer, "");
                warning!("unlocked {target} by {by}: {removed} lock(s) removed");
                Response::Unlocked { removed }
            }
            Err(e) => Response::Error { message: format!("unlock not saved: {e}") },
        },
        Request::Locks { offset } => {
            let (locks, next) = oidc_core::page_of(&svc.locks.list(), *offset, |_| {});
            Response::Locks { locks, next }
        }
        Request::DeviceStart { issuer, rhost } => svc.device.start(issuer, &origin(rhost, &peer), Some(peer)),
        Request::CibaStart { issuer, user, service, rhost, acr } => {
            svc.device.start_ciba(issuer, user, service, &origin(rhost, &peer), acr, Some(peer))
        }
        Request::DeviceWait { flow_id, timeout_secs } => {
            // The wait is capped by the flow limits, not by the connection pool.
            before_wait();
            svc.device.wait(flow_id, Duration::from_secs((*timeout_secs).min(3600)))
        }
        Request::Users { offset } => {
            let (users, next) = oidc_core::page_of(&svc.accounts.users(), *offset, |u| u.groups.truncate(16));
            Response::Users { users, next }
        }
    }
}

/// Where a device-code or push login comes from, for its caps: the remote
/// address, or for a local login (su, sudo, console) the caller's real uid,
/// so one local user cannot use up another's.
fn origin(rhost: &str, peer: &crate::server::Peer) -> String {
    if !rhost.is_empty() {
        return rhost.to_string();
    }
    crate::procfs::real_uid(peer.pid).map_or_else(|| "local".into(), |u| format!("uid:{u}"))
}

#[cfg(test)]
mod tests;
