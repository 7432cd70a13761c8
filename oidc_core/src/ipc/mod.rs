//! The helperd protocol: one request and one response per connection, each a
//! frame of a 4-byte big-endian length and a JSON body, at most [`MAX_FRAME`]
//! bytes. Every message carries the protocol version. Both ends use this codec
//! and set read/write deadlines on every call.
//!
//! * `protocol` — the messages ([`Request`], [`Response`]) and paging; no I/O.
//! * `frame` — the length-prefixed codec with deadlines.
//! * `client` — connect + round trip, and [`Client`], the real [`Helper`].
//!
//! Code that talks to helperd takes a `&dyn Helper`, so tests drive it with a
//! scripted fake instead of a socket.

mod client;
mod frame;
mod protocol;

pub use client::{call, Client};
pub use frame::{decode, encode_frame, read_frame, write_frame};
pub use protocol::{page, AwsStatus, DeviceFailure, IssuerStatus, RefusalCode, Request, Response, PAGE_BUDGET};

use std::time::Duration;

/// The frame envelope's `v`; a frame of another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame body in bytes (the JSON after the 4-byte length), in either direction.
pub const MAX_FRAME: usize = 64 * 1024;

/// The helperd calls a PAM hook or a CLI command makes: [`Client`] for real,
/// a scripted fake in tests.
pub trait Helper {
    /// One round trip within the helper's own deadline.
    fn call(&self, req: &Request) -> Result<Response, IpcError>;

    /// One round trip that may take up to `timeout` (a device-code wait, AWS
    /// credentials at session open) — never less than the helper's own deadline.
    fn call_within(&self, req: &Request, timeout: Duration) -> Result<Response, IpcError>;

    /// Did `e` mean "helperd is not there" (not running, hung, gone mid-way)
    /// — the only case in which the module may decide without it — rather
    /// than "helperd could not take this request" (a frame too large, a
    /// protocol error), which must never be worked around?
    fn unreachable(&self, e: &IpcError) -> bool {
        !matches!(e, IpcError::TooLarge(_) | IpcError::Protocol(_))
    }

    /// Ask helperd to refetch an issuer's keys; `Ok` describes what it did.
    fn refresh_jwks(&self, issuer: &str) -> Result<String, String> {
        self.refresh_jwks_with(issuer, false)
    }

    /// [`Helper::refresh_jwks`], `force` skipping the rate limit (root only).
    fn refresh_jwks_with(&self, issuer: &str, force: bool) -> Result<String, String> {
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

/// Why a call to helperd failed. [`Helper::unreachable`] tells "helperd is
/// not there" from "helperd could not take this request".
#[derive(Debug)]
pub enum IpcError {
    /// The socket could not be connected to (absent, refused, path too long).
    Connect(std::io::Error),
    /// No answer before the deadline.
    Timeout,
    /// Reading or writing the socket failed.
    Io(std::io::Error),
    /// A frame (of this many bytes) larger than [`MAX_FRAME`].
    TooLarge(usize),
    /// Not a frame of this protocol: bad JSON, another version, a closed connection mid-frame.
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
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

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
