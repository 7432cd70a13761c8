//! The helperd protocol: one request and one response per connection, each a
//! frame of a 4-byte big-endian length and a JSON body, at most [`MAX_FRAME`]
//! bytes. Every message carries the protocol version. Both ends use this codec
//! and set read/write deadlines on every call.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub const PROTOCOL_VERSION: u32 = 1;
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // one short-lived message per connection
pub enum Request {
    Ping,
    /// A token carried a kid the cache does not have (or there is no cache):
    /// fetch this issuer's keys now, unless fetched within the rate-limit window.
    RefreshJwks {
        issuer: String,
        /// Skip the rate limit (root only: `helperd refresh --force`).
        #[serde(default)]
        force: bool,
    },
    Status,
    /// A verified login (root peers only): admit the identity (`event`; none
    /// for a role account) and keep its claims until the session opens.
    Login {
        event: Option<crate::accounts::LoginEvent>,
        claims: crate::session::SessionClaims,
        /// The verified token, kept only if the session's AWS role uses web identity.
        #[serde(default)]
        web_token: Option<crate::Secret>,
        /// A role account's token groups (an admission's come in `event`):
        /// helperd decides what they are on this host.
        #[serde(default)]
        role_groups: Vec<String>,
        /// The token's replay id ([`crate::verify::replay_id`]): each token
        /// logs in once per host.
        #[serde(default)]
        replay_id: Option<String>,
    },
    /// The account store (names, ids, groups, issuer, identity, GECOS, login
    /// times; root only), one page from `offset` on.
    Users {
        #[serde(default)]
        offset: usize,
    },
    /// Move an OIDC account name to another identity of its issuer (root only):
    /// an IdP app re-created, a pairwise `sub` changed.
    Rebind {
        name: String,
        issuer: String,
        sub: String,
    },
    /// Bind a verified login to the session opened by process `pid` (root only).
    OpenSession {
        login_id: String,
        pid: i32,
        tty: String,
        rhost: String,
    },
    /// The session opened by `pid` ended (root only).
    CloseSession {
        pid: i32,
    },
    /// The verified claims of the session the calling process belongs to
    /// (root only; helperd finds the session from the peer's process tree and real uid).
    SessionClaims,
    /// Live sessions (root only), one page from `offset` on.
    Sessions {
        #[serde(default)]
        offset: usize,
    },
    /// Start a device-code login with an issuer (root only), for a login
    /// from `rhost` (flows are capped per remote host).
    DeviceStart {
        issuer: String,
        #[serde(default)]
        rhost: String,
    },
    /// Wait up to `timeout_secs` for a device-code login to finish (root only).
    DeviceWait {
        flow_id: String,
        timeout_secs: u64,
    },
    /// AWS credentials of the caller's session (the session's uid, or root).
    AwsCredentials,
}

impl Request {
    /// Requests only root peers may make (the rest are public or rate-limited).
    pub fn root_only(&self) -> bool {
        matches!(
            self,
            Request::Login { .. }
                | Request::Users { .. }
                | Request::Rebind { .. }
                | Request::OpenSession { .. }
                | Request::CloseSession { .. }
                | Request::SessionClaims
                | Request::Sessions { .. }
                | Request::DeviceStart { .. }
                | Request::DeviceWait { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::RefreshJwks { .. } => "refresh_jwks",
            Request::Status => "status",
            Request::Login { .. } => "login",
            Request::Users { .. } => "users",
            Request::Rebind { .. } => "rebind",
            Request::OpenSession { .. } => "open_session",
            Request::CloseSession { .. } => "close_session",
            Request::SessionClaims => "session_claims",
            Request::Sessions { .. } => "sessions",
            Request::DeviceStart { .. } => "device_start",
            Request::DeviceWait { .. } => "device_wait",
            Request::AwsCredentials => "aws_credentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Pong {
        version: String,
    },
    /// `fetched`: a fetch happened for this request; `detail` explains a skip or an error.
    Refreshed {
        fetched: bool,
        ok: bool,
        detail: String,
    },
    Status {
        issuers: Vec<IssuerStatus>,
    },
    Admitted {
        detail: String,
        login_id: String,
        /// The host groups helperd admitted (policy is checked on these);
        /// none for a role account.
        #[serde(default)]
        groups: Option<Vec<String>>,
    },
    Rebound {
        detail: String,
    },
    Refused {
        code: String,
        reason: String,
    },
    Users {
        users: Vec<crate::accounts::StoredUser>,
        /// The offset of the next page, if there is one.
        #[serde(default)]
        next: Option<usize>,
    },
    SessionOpened {
        id: u64,
        /// AWS credentials for the session: what happened (no secrets).
        aws: Option<AwsStatus>,
    },
    SessionClosed {
        closed: usize,
    },
    Claims {
        claims: Option<Box<crate::session::SessionClaims>>,
        detail: String,
    },
    Sessions {
        sessions: Vec<crate::session::SessionInfo>,
        #[serde(default)]
        next: Option<usize>,
    },
    DeviceStarted {
        flow_id: String,
        verification_uri: String,
        verification_uri_complete: Option<String>,
        user_code: String,
        expires_in: u64,
    },
    /// The ID token of a finished device-code login (verified by the module like any token).
    DeviceToken {
        id_token: crate::Secret,
    },
    /// `code`: denied, expired, timeout or error.
    DeviceFailed {
        code: String,
        reason: String,
    },
    AwsCredentials {
        access_key_id: String,
        secret_access_key: crate::Secret,
        session_token: crate::Secret,
        /// RFC 3339.
        expiration: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsStatus {
    pub granted: bool,
    /// The role's credentials could not be obtained and the role is `required`
    /// (or no role matched and `aws.require_credentials` is set): the login fails.
    pub required_failed: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerStatus {
    pub issuer: String,
    pub keys: usize,
    pub fetched_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub fetches: u64,
    pub rate_limited: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

#[derive(Debug)]
pub enum IpcError {
    Connect(std::io::Error),
    Timeout,
    Io(std::io::Error),
    TooLarge(usize),
    Protocol(String),
    /// An earlier call of this transaction found helperd unreachable.
    Down(String),
}

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpcError::Connect(e) => write!(f, "helperd unreachable: {e}"),
            IpcError::Timeout => write!(f, "helperd did not answer before the deadline"),
            IpcError::Io(e) => write!(f, "helperd I/O error: {e}"),
            IpcError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME}"),
            IpcError::Protocol(m) => write!(f, "helperd protocol error: {m}"),
            IpcError::Down(m) => write!(f, "{m} (not retried in this login)"),
        }
    }
}

impl std::error::Error for IpcError {}

fn io_err(e: std::io::Error) -> IpcError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => IpcError::Timeout,
        _ => IpcError::Io(e),
    }
}

/// Remaining time until `deadline`, or a timeout error.
fn remaining(deadline: Instant) -> Result<Duration, IpcError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(IpcError::Timeout)
    } else {
        Ok(left)
    }
}

/// A writer into a fixed-capacity buffer that never reallocates (a grown
/// vector would leave a freed, unwiped copy of a token behind) and refuses
/// to go past [`MAX_FRAME`].
struct FrameBuf(zeroize::Zeroizing<Vec<u8>>);

impl Write for FrameBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + b.len() > self.0.capacity() {
            return Err(std::io::Error::other("frame too large"));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encode a frame (length prefix + JSON) into one buffer that is wiped when
/// dropped: frames carry tokens and AWS secrets.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, IpcError> {
    let mut w = FrameBuf(zeroize::Zeroizing::new(Vec::with_capacity(4 + MAX_FRAME)));
    w.0.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut w, &Envelope { v: PROTOCOL_VERSION, body: msg }).map_err(|e| {
        if e.is_io() {
            IpcError::TooLarge(MAX_FRAME + 1)
        } else {
            IpcError::Protocol(e.to_string())
        }
    })?;
    let len = u32::try_from(w.0.len() - 4).map_err(|_| IpcError::TooLarge(w.0.len()))?;
    w.0[..4].copy_from_slice(&len.to_be_bytes());
    Ok(w.0)
}

/// Write one frame; every write is bounded by `deadline`. The buffer is wiped after.
pub fn write_frame<T: Serialize>(s: &mut UnixStream, msg: &T, deadline: Instant) -> Result<(), IpcError> {
    let buf = encode_frame(msg)?;
    let mut off = 0;
    while off < buf.len() {
        s.set_write_timeout(Some(remaining(deadline)?)).map_err(IpcError::Io)?;
        match s.write(&buf[off..]) {
            Ok(0) => return Err(IpcError::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

fn read_exact_by(s: &mut UnixStream, buf: &mut [u8], deadline: Instant) -> Result<(), IpcError> {
    let mut off = 0;
    while off < buf.len() {
        s.set_read_timeout(Some(remaining(deadline)?)).map_err(IpcError::Io)?;
        match s.read(&mut buf[off..]) {
            Ok(0) => return Err(IpcError::Protocol("connection closed mid-frame".into())),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// Read one frame; the length is checked before any allocation.
pub fn read_frame<T: for<'de> Deserialize<'de>>(s: &mut UnixStream, deadline: Instant) -> Result<T, IpcError> {
    let mut len = [0u8; 4];
    read_exact_by(s, &mut len, deadline)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(IpcError::TooLarge(len));
    }
    // Wiped when dropped: the frame may carry a token or AWS secrets.
    let mut body = zeroize::Zeroizing::new(vec![0u8; len]);
    read_exact_by(s, &mut body, deadline)?;
    decode(&body)
}

/// Decode a frame body (separate for fuzzing and tests).
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, IpcError> {
    let env: Envelope<T> = serde_json::from_slice(body).map_err(|e| IpcError::Protocol(e.to_string()))?;
    if env.v != PROTOCOL_VERSION {
        return Err(IpcError::Protocol(format!("protocol version {} (want {PROTOCOL_VERSION})", env.v)));
    }
    Ok(env.body)
}

/// Bytes of a page of a listing: well below [`MAX_FRAME`], leaving room for the envelope.
pub const PAGE_BUDGET: usize = MAX_FRAME - 8 * 1024;

/// One page of `items` from `offset`: as many as fit in [`PAGE_BUDGET`] bytes
/// of JSON (at least one, so a listing always advances), and where the next
/// page starts. `shrink` makes an item that alone exceeds the budget fit.
pub fn page<T: Serialize + Clone>(items: &[T], offset: usize, shrink: impl Fn(&mut T)) -> (Vec<T>, Option<usize>) {
    let mut out = vec![];
    let mut used = 0usize;
    for (i, it) in items.iter().enumerate().skip(offset) {
        let mut it = it.clone();
        let mut n = serde_json::to_vec(&it).map_or(usize::MAX, |v| v.len() + 1);
        if n > PAGE_BUDGET {
            shrink(&mut it);
            n = serde_json::to_vec(&it).map_or(usize::MAX, |v| v.len() + 1);
        }
        if !out.is_empty() && used.saturating_add(n) > PAGE_BUDGET {
            return (out, Some(i));
        }
        used = used.saturating_add(n);
        out.push(it);
    }
    (out, None)
}

/// Connect within `deadline`: a blocking connect to a listener whose backlog
/// is full would wait without bound (sudo, su and sshd must not hang).
fn connect_by(socket: &Path, deadline: Instant) -> Result<UnixStream, IpcError> {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    use std::os::unix::ffi::OsStrExt as _;
    let path = socket.as_os_str().as_bytes();
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied within its bounds below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.len() >= addr.sun_path.len() {
        return Err(IpcError::Connect(std::io::Error::other("socket path too long")));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket(2); the result is checked and owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(IpcError::Connect(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; `fd` is open.
        let rc = unsafe { libc::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), (&raw const addr).cast(), len) };
        if rc == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // A full backlog: try again until the deadline.
            Some(libc::EAGAIN) | Some(libc::EINTR) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(libc::EAGAIN) => return Err(IpcError::Timeout),
            _ => return Err(IpcError::Connect(e)),
        }
    }
    let s = UnixStream::from(fd);
    s.set_nonblocking(false).map_err(IpcError::Io)?;
    Ok(s)
}

/// One request/response round trip to helperd, all of it within `timeout`.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, IpcError> {
    let deadline = Instant::now() + timeout;
    let mut s = connect_by(socket, deadline)?;
    write_frame(&mut s, req, deadline)?;
    read_frame(&mut s, deadline)
}

/// A helperd client for one PAM transaction (or one CLI command): every call
/// has the deadline, and once helperd has timed out or refused the
/// connection, later calls fail at once — a hung helperd costs one deadline
/// per login, not one per call.
pub struct Client {
    /// Tried in order on a connect error (root: the root-only socket, then the public one).
    sockets: Vec<std::path::PathBuf>,
    timeout: Duration,
    down: std::cell::RefCell<Option<String>>,
}

impl Client {
    pub fn new(socket: &Path, timeout: Duration) -> Client {
        Client { sockets: vec![socket.to_path_buf()], timeout, down: std::cell::RefCell::new(None) }
    }

    /// The client for this process: root talks on the root-only socket (a
    /// queue no unprivileged peer can fill), everyone else on the public one.
    pub fn for_caller(h: &crate::config::Helperd, timeout: Duration) -> Client {
        Client { sockets: h.sockets_for_caller(), timeout, down: std::cell::RefCell::new(None) }
    }

    pub fn call(&self, req: &Request) -> Result<Response, IpcError> {
        if let Some(why) = self.down.borrow().clone() {
            return Err(IpcError::Down(why));
        }
        let mut r = Err(IpcError::Protocol("no socket configured".into()));
        for s in &self.sockets {
            r = call(s, req, self.timeout);
            if !matches!(r, Err(IpcError::Connect(_))) {
                break;
            }
        }
        if let Err(e @ (IpcError::Timeout | IpcError::Connect(_))) = &r {
            *self.down.borrow_mut() = Some(e.to_string());
        }
        r
    }

    /// Did `e` mean "helperd is not there" (not running, hung, gone mid-way)
    /// — the only case in which the module may decide without it — rather
    /// than "helperd could not take this request" (a frame too large, a
    /// protocol error), which must never be worked around?
    pub fn unreachable(&self, e: &IpcError) -> bool {
        !matches!(e, IpcError::TooLarge(_) | IpcError::Protocol(_))
    }

    /// Ask helperd to refetch an issuer's keys; `Ok` describes what it did.
    pub fn refresh_jwks(&self, issuer: &str) -> Result<String, String> {
        self.refresh_jwks_with(issuer, false)
    }

    /// [`Client::refresh_jwks`], `force` skipping the rate limit (root only).
    pub fn refresh_jwks_with(&self, issuer: &str, force: bool) -> Result<String, String> {
        match self.call(&Request::RefreshJwks { issuer: issuer.to_string(), force }) {
            Ok(Response::Refreshed { fetched, ok: true, detail }) => {
                Ok(format!("{}: {detail}", if fetched { "fetched" } else { "not fetched" }))
            }
            Ok(Response::Refreshed { detail, .. }) => Err(detail),
            Ok(Response::Error { message }) => Err(message),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_fit_a_frame_and_always_advance() {
        let items: Vec<String> = (0..2000).map(|i| format!("{i:0>100}")).collect();
        let (mut all, mut off, mut pages) = (vec![], Some(0), 0);
        while let Some(o) = off {
            let (p, next) = super::page(&items, o, |_| {});
            assert!(serde_json::to_vec(&p).unwrap().len() <= super::PAGE_BUDGET + 2);
            all.extend(p);
            off = next;
            pages += 1;
        }
        assert_eq!(all, items);
        assert!(pages > 2);
        let huge = vec!["x".repeat(super::MAX_FRAME * 2)];
        let (p, next) = super::page(&huge, 0, |s| s.truncate(10));
        assert_eq!((p[0].len(), next), (10, None), "an oversize item is shrunk, never dropped or looped on");
    }

    use super::*;

    #[test]
    fn round_trip_over_a_socketpair() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let d = Instant::now() + Duration::from_secs(2);
        let req = Request::RefreshJwks { issuer: "https://idp".into(), force: false };
        write_frame(&mut a, &req, d).unwrap();
        assert_eq!(read_frame::<Request>(&mut b, d).unwrap(), req);
    }

    #[test]
    fn oversize_length_refused_before_allocation() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&u32::MAX.to_be_bytes()).unwrap();
        let d = Instant::now() + Duration::from_secs(2);
        assert!(matches!(read_frame::<Request>(&mut b, d), Err(IpcError::TooLarge(_))));
    }

    #[test]
    fn silent_peer_times_out() {
        let (_a, mut b) = UnixStream::pair().unwrap();
        let t = Instant::now();
        let r = read_frame::<Request>(&mut b, Instant::now() + Duration::from_millis(200));
        assert!(matches!(r, Err(IpcError::Timeout)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn version_and_shape_checked() {
        assert!(decode::<Request>(br#"{"v":2,"op":"ping"}"#).is_err());
        assert!(decode::<Request>(br#"{"v":1,"op":"ping"}"#).is_ok());
        assert!(decode::<Request>(br#"{"v":1,"op":"launch"}"#).is_err());
        assert!(decode::<Request>(b"\xff\x00").is_err());
    }
}
