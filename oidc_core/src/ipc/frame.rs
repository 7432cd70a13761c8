//! The frame codec: a 4-byte big-endian length and a JSON body carrying the
//! protocol version, at most [`MAX_FRAME`] bytes; every read and write bounded
//! by a deadline; every buffer that held a frame wiped.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{IpcError, MAX_FRAME, PROTOCOL_VERSION};

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

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
