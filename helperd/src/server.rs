//! The Unix socket servers: one request per connection, a thread per
//! connection, read/write deadlines on every frame, and the peer's
//! credentials (SO_PEERCRED, and its start time, taken at accept) for every
//! request.
//!
//! Two sockets, two queues (OpenSSH's privilege separation, SSSD's
//! privileged pipe): the root-only socket (0600) carries the module's and
//! root's requests with back-pressure at `max_connections`; the public socket
//! (0666) gives each non-root uid at most `max_connections_per_uid`
//! connections and a short deadline, so no unprivileged peer can delay a
//! root decision. A device-code wait gives its slot back while it waits
//! (flows are capped on their own).

use crate::accounts::AccountService;
use crate::keys::KeyCache;
use crate::log::{error, limited_warning, warning};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use oidc_core::{read_frame, write_frame, Request, Response};
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAME_DEADLINE: Duration = Duration::from_secs(5);
/// A public-socket peer must send its (small) request within this.
const PUBLIC_FRAME_DEADLINE: Duration = Duration::from_secs(1);

/// Bind a socket (`mode`: 0666 public, 0600 root), replacing a stale socket
/// file but refusing to steal one a live helperd still answers on.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if let Ok(m) = fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!("another helperd is listening on {}", path.display()));
        }
        fs::remove_file(path).map_err(|e| format!("removing stale {}: {e}", path.display()))?;
    }
    // Bound under a umask that already excludes everyone else, so a 0600 socket
    // is never briefly connectable by others.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o777 & !mode));
    let l = UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()));
    nix::sys::stat::umask(old);
    let l = l?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(l)
}

/// Everything the daemon serves.
pub struct Services {
    pub keys: KeyCache,
    pub accounts: AccountService,
    pub sessions: crate::sessions::Sessions,
    pub device: Arc<crate::device::DeviceFlows>,
    pub aws: crate::aws::Broker,
    pub replay: crate::replay::ReplayCache,
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

/// A connection's place in its socket's budget; given back on drop, or
/// early by a device-code wait.
pub struct Slot {
    counters: Vec<Arc<AtomicUsize>>,
}

impl Slot {
    fn take(counters: Vec<Arc<AtomicUsize>>) -> Slot {
        for c in &counters {
            c.fetch_add(1, Ordering::SeqCst);
        }
        Slot { counters }
    }

    /// Give the place back now (a long wait that is capped elsewhere).
    pub fn release(&mut self) {
        for c in self.counters.drain(..) {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Who is on the other end, taken at accept.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
    /// The peer process's start time (clock ticks since boot) at accept:
    /// a later look at `/proc/<pid>` must find the same process.
    pub start: Option<u64>,
}

/// The root-only socket: the module's and root's requests, back-pressure at
/// `max_connections` (only root can queue here).
pub fn serve_root(listener: UnixListener, svc: Arc<Services>) {
    let active = Arc::new(AtomicUsize::new(0));
    let max = svc.keys.config().helperd.max_connections.max(1);
    loop {
        while active.load(Ordering::SeqCst) >= max {
            std::thread::sleep(Duration::from_millis(1));
        }
        let Some((stream, peer)) = accept(&listener) else { continue };
        let slot = Slot::take(vec![Arc::clone(&active)]);
        spawn(stream, peer, slot, &svc, FRAME_DEADLINE);
    }
}

/// The public socket: per-uid and total connection caps (a peer over its
/// cap is closed at once, logged at a bounded rate), a short deadline.
pub fn serve_public(listener: UnixListener, svc: Arc<Services>) {
    let h = &svc.keys.config().helperd;
    let (max, per_uid) = (h.max_connections.max(1), h.max_connections_per_uid.max(1));
    let total = Arc::new(AtomicUsize::new(0));
    let by_uid: std::sync::Mutex<std::collections::HashMap<u32, Arc<AtomicUsize>>> = Default::default();
    loop {
        let Some((stream, peer)) = accept(&listener) else { continue };
        let mine = {
            let mut m = by_uid.lock().unwrap_or_else(|p| p.into_inner());
            m.retain(|_, c| c.load(Ordering::SeqCst) > 0);
            Arc::clone(m.entry(peer.uid).or_default())
        };
        if peer.uid != 0 && mine.load(Ordering::SeqCst) >= per_uid {
            limited_warning!(
                &format!("public-quota:{}", peer.uid),
                "public socket: refused a connection from uid={} pid={}: {per_uid} already open",
                peer.uid,
                peer.pid
            );
            continue; // dropping the stream closes it
        }
        if total.load(Ordering::SeqCst) >= max {
            limited_warning!("public-full", "public socket: {max} connections open; refused uid={}", peer.uid);
            continue;
        }
        let slot = Slot::take(vec![Arc::clone(&total), mine]);
        spawn(stream, peer, slot, &svc, PUBLIC_FRAME_DEADLINE);
    }
}

/// One connection and its peer, pinned at accept (`None`: try again).
fn accept(listener: &UnixListener) -> Option<(UnixStream, Peer)> {
    let stream = match listener.accept() {
        Ok((s, _)) => s,
        Err(e) => {
            error!("accept: {e}");
            std::thread::sleep(Duration::from_millis(50));
            return None;
        }
    };
    let peer = peer_of(&stream)?;
    Some((stream, peer))
}

fn peer_of(s: &UnixStream) -> Option<Peer> {
    match getsockopt(s, PeerCredentials) {
        Ok(c) => Some(Peer { uid: c.uid(), pid: c.pid(), start: crate::sessions::start_time(c.pid()) }),
        Err(e) => {
            limited_warning!("peercred", "dropping connection: cannot read peer credentials: {e}");
            None
        }
    }
}

fn spawn(stream: UnixStream, peer: Peer, slot: Slot, svc: &Arc<Services>, deadline: Duration) {
    let svc = Arc::clone(svc);
    let spawned = std::thread::Builder::new().name("helperd-conn".into()).spawn(move || {
        let mut slot = slot;
        handle(stream, &svc, peer, &mut slot, deadline);
    });
    if let Err(e) = spawned {
        error!("spawning connection thread: {e}");
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
    // Each token logs in once here (sudo's reuse of session claims sends none):
    // reserved now, recorded once admitted, given back if refused otherwise.
    let reserved = match replay_id {
        Some(id) => {
            let leeway = svc.keys.config().issuer(&claims.issuer).map_or(0, |i| i.leeway_secs);
            let until = claims.exp.saturating_add(i64::try_from(leeway).unwrap_or(i64::MAX));
            if let Err(why) = svc.replay.reserve(&claims.issuer, id, until, crate::keys::unix_now()) {
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
    let resp = admit_login(svc, event, &mut claims, web_token, raw_groups);
    if let Some(id) = reserved {
        let ok = matches!(resp, Response::Admitted { .. });
        if !ok {
            svc.replay.release(&claims.issuer, id);
        } else if let Err(why) = svc.replay.commit() {
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
    match svc.sessions.add_pending(claims.clone(), web_token.filter(|_| keep).cloned()) {
        Some(login_id) => Response::Admitted { detail, login_id, groups },
        None => Response::Refused {
            code: oidc_core::RefusalCode::AccountsUnavailable,
            reason: "no randomness for a login id".into(),
        },
    }
}

fn handle(mut s: UnixStream, svc: &Services, peer: Peer, slot: &mut Slot, deadline: Duration) {
    let (uid, pid) = (peer.uid, peer.pid);
    let req: Request = match read_frame(&mut s, Instant::now() + deadline) {
        Ok(r) => r,
        Err(e) => {
            limited_warning!(&format!("bad-request:{uid}"), "bad request from uid={uid} pid={pid}: {e}");
            let _ = write_frame(&mut s, &Response::Error { message: e.to_string() }, Instant::now() + deadline);
            return;
        }
    };
    let resp = match &req {
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
        Request::OpenSession { login_id, pid: spid, tty, rhost } => {
            match svc.sessions.pending_account(login_id).and_then(|a| svc.accounts.uid_of(&a)) {
                None => Response::Error { message: "unknown or expired login id, or unknown account".into() },
                Some(account_uid) => match svc.sessions.open(login_id, account_uid, *spid, tty, rhost) {
                    Ok((id, claims, token)) => {
                        Response::SessionOpened { id, aws: aws_status(svc.aws.open(id, &claims, token)) }
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
            Response::Claims { claims: claims.map(Box::new), detail }
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
            Some(id) => match svc.aws.credentials(id, crate::keys::unix_now()) {
                Ok(c) => Response::AwsCredentials {
                    access_key_id: c.access_key_id,
                    secret_access_key: c.secret,
                    session_token: c.token,
                    expiration: c.expiration,
                },
                Err(e) => Response::Error { message: e },
            },
        },
        Request::DeviceStart { issuer, rhost } => svc.device.start(issuer, rhost, Some(peer)),
        Request::DeviceWait { flow_id, timeout_secs } => {
            // The wait is capped by the flow limits, not by the connection pool.
            slot.release();
            svc.device.wait(flow_id, Duration::from_secs((*timeout_secs).min(3600)))
        }
        Request::Users { offset } => {
            let (users, next) = oidc_core::page_of(&svc.accounts.users(), *offset, |u| u.groups.truncate(16));
            Response::Users { users, next }
        }
    };
    if let Err(e) = write_frame(&mut s, &resp, Instant::now() + deadline) {
        limited_warning!(&format!("write:{uid}"), "writing response to uid={uid} pid={pid}: {e}");
    }
}
