//! The Unix socket servers: one request per connection, a thread per
//! connection (one that finished its last connection, or a new one: see
//! [`workers`]), read/write deadlines on every frame, and the peer's
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

use crate::dispatch::{dispatch, Services};
use crate::log::{error, limited_warning};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use oidc_core::{read_frame, write_frame, Request, Response};
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod workers;

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
        Ok(c) => Some(Peer { uid: c.uid(), pid: c.pid(), start: crate::procfs::start_time(c.pid()) }),
        Err(e) => {
            limited_warning!("peercred", "dropping connection: cannot read peer credentials: {e}");
            None
        }
    }
}

fn spawn(stream: UnixStream, peer: Peer, slot: Slot, svc: &Arc<Services>, deadline: Duration) {
    let svc = Arc::clone(svc);
    workers::run(Box::new(move || {
        let mut slot = slot;
        handle(stream, &svc, peer, &mut slot, deadline);
    }));
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
    // A device-code wait gives its connection slot back while it waits.
    let resp = dispatch(svc, peer, req, &mut || slot.release());
    if let Err(e) = write_frame(&mut s, &resp, Instant::now() + deadline) {
        limited_warning!(&format!("write:{uid}"), "writing response to uid={uid} pid={pid}: {e}");
    }
}
