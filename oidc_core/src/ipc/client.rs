//! The client side: a deadline-bound connect, one round trip, and [`Client`],
//! the real [`Helper`](super::Helper).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::frame::{read_frame, write_frame};
use super::{Helper, IpcError, Request, Response};

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
    /// A client of one socket, each call bounded by `timeout`.
    pub fn new(socket: &Path, timeout: Duration) -> Client {
        Client { sockets: vec![socket.to_path_buf()], timeout, down: std::cell::RefCell::new(None) }
    }

    /// The client for this process: root talks on the root-only socket (a
    /// queue no unprivileged peer can fill), everyone else on the public one.
    pub fn for_caller(h: &crate::config::Helperd, timeout: Duration) -> Client {
        Client { sockets: h.sockets_for_caller(), timeout, down: std::cell::RefCell::new(None) }
    }
}

impl Helper for Client {
    fn call(&self, req: &Request) -> Result<Response, IpcError> {
        self.call_within(req, self.timeout)
    }

    fn call_within(&self, req: &Request, timeout: Duration) -> Result<Response, IpcError> {
        if let Some(why) = self.down.borrow().clone() {
            return Err(IpcError::Down(why));
        }
        let timeout = timeout.max(self.timeout);
        let mut r = Err(IpcError::Protocol("no socket configured".into()));
        for s in &self.sockets {
            r = call(s, req, timeout);
            if !matches!(r, Err(IpcError::Connect(_))) {
                break;
            }
        }
        if let Err(e @ (IpcError::Timeout | IpcError::Connect(_))) = &r {
            *self.down.borrow_mut() = Some(e.to_string());
        }
        r
    }
}
