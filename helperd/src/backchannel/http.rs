//! The receiver's HTTP: one request per connection (`Connection: close`),
//! read under hard limits — a 8 KiB head, a 16 KiB body with a
//! `Content-Length`, one deadline for the whole exchange (TLS handshake
//! included) — and one response with `Cache-Control: no-store`. httparse
//! parses the head; rustls serves HTTPS, its certificate and key re-read when
//! their files change.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// The largest body read (a logout token is ~1 KiB; `pam.max_token_bytes` caps it again).
pub const MAX_BODY: usize = 16 * 1024;
/// A connection gets this long for its whole exchange.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// One request: what routing needs.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A response: status, and for an error the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub description: Option<String>,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer { status: 200, description: None }
    }

    pub fn error(status: u16, description: impl Into<String>) -> Answer {
        Answer { status, description: Some(description.into()) }
    }
}

/// A stream under a deadline: the TCP socket's timeouts are set to what is
/// left before each read and write.
pub trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

fn left(deadline: Instant) -> Result<Duration, Answer> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err(Answer::error(408, "request not received in time"));
    }
    Ok(d)
}

fn read_some<C: Conn>(c: &mut C, buf: &mut [u8], deadline: Instant) -> Result<usize, Answer> {
    let t = left(deadline)?;
    c.tcp().set_read_timeout(Some(t)).map_err(|e| Answer::error(500, e.to_string()))?;
    match c.read(buf) {
        Ok(0) => Err(Answer::error(400, "connection closed before the request was complete")),
        Ok(n) => Ok(n),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Err(Answer::error(408, "request not received in time"))
        }
        Err(e) => Err(Answer::error(400, format!("reading the request: {e}"))),
    }
}

/// Read one request. `Err` is the answer to send (if the peer is still there).
pub fn read_request<C: Conn>(c: &mut C, deadline: Instant) -> Result<Request, Answer> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let (head_len, method, path, content_type, length, expect) = loop {
        let n = read_some(c, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let get = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                };
                if get("transfer-encoding").is_some() {
                    return Err(Answer::error(400, "Transfer-Encoding is not supported: send a Content-Length"));
                }
                let length = match get("content-length").map(|l| l.parse::<usize>()) {
                    None => None,
                    Some(Ok(n)) => Some(n),
                    Some(Err(_)) => return Err(Answer::error(400, "bad Content-Length")),
                };
                let path = req.path.unwrap_or("/");
                let path = path.split_once('?').map_or(path, |(p, _)| p).to_string();
                let expect = get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
                break (len, req.method.unwrap_or("").to_string(), path, get("content-type"), length, expect);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err(Answer::error(431, "request head too large")),
            Err(e) => return Err(Answer::error(400, format!("not an HTTP/1.x request: {e}"))),
        }
    };
    let mut body = buf.split_off(head_len);
    if method != "POST" {
        return Ok(Request { method, path, content_type, body: vec![] });
    }
    let Some(length) = length else { return Err(Answer::error(411, "Content-Length required")) };
    if length > MAX_BODY {
        return Err(Answer::error(413, format!("body of {length} bytes, at most {MAX_BODY}")));
    }
    if expect && body.is_empty() {
        write_all(c, b"HTTP/1.1 100 Continue\r\n\r\n", deadline)?;
    }
    while body.len() < length {
        let n = read_some(c, &mut chunk, deadline)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request { method, path, content_type, body })
}

fn write_all<C: Conn>(c: &mut C, bytes: &[u8], deadline: Instant) -> Result<(), Answer> {
    let t = left(deadline)?;
    c.tcp().set_write_timeout(Some(t)).map_err(|e| Answer::error(500, e.to_string()))?;
    c.write_all(bytes).and_then(|()| c.flush()).map_err(|e| Answer::error(500, e.to_string()))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// The response bytes: 200 with no body, else `{"error": "invalid_request",
/// "error_description": ...}` (§2.8).
pub fn response(a: &Answer) -> Vec<u8> {
    let body = match &a.description {
        Some(d) if a.status != 200 => {
            serde_json::json!({"error": "invalid_request", "error_description": d}).to_string()
        }
        _ => String::new(),
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nCache-Control: no-store\r\nPragma: no-cache\r\nConnection: close\r\nContent-Length: {}\r\n",
        a.status,
        reason(a.status),
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if a.status == 405 {
        head.push_str("Allow: POST\r\n");
    }
    head.push_str("\r\n");
    [head.into_bytes(), body.into_bytes()].concat()
}

/// Send the answer; errors (the peer left) are ignored.
pub fn send<C: Conn>(c: &mut C, a: &Answer, deadline: Instant) {
    // A little time to say why, even when the deadline is what ended the read;
    // a TLS stream that failed must not wait to read the peer again.
    let _ = c.tcp().set_read_timeout(Some(Duration::from_secs(1)));
    let _ = write_all(c, &response(a), deadline.max(Instant::now() + Duration::from_secs(1)));
}

/// What identifies a file's content for reloading: length, mtime, inode.
type Stamp = (u64, Option<SystemTime>, u64);

fn stamp(p: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(p).ok()?;
    Some((m.len(), m.modified().ok(), m.ino()))
}

/// HTTPS: the certificate chain and key, loaded at start and again whenever
/// either file changes (a renewed certificate needs no restart, which would
/// forget live sessions); a bad new pair is logged and the old one kept.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    loaded: Mutex<(Option<Stamp>, Option<Stamp>, Arc<rustls::ServerConfig>)>,
}

fn read_pem(p: &Path) -> Result<Vec<u8>, String> {
    let mut f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut out = vec![];
    Read::by_ref(&mut f).take(1 << 20).read_to_end(&mut out).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(out)
}

fn load(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_slice_iter(&read_pem(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let k = PrivateKeyDer::from_pem_slice(&read_pem(key)?).map_err(|e| format!("{}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, k))
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))
}

impl Tls {
    pub fn open(cert: &Path, key: &Path) -> Result<Tls, String> {
        let (sc, sk) = (stamp(cert), stamp(key));
        let cfg = Arc::new(load(cert, key)?);
        Ok(Tls { cert: cert.into(), key: key.into(), loaded: Mutex::new((sc, sk, cfg)) })
    }

    /// The current server config (re-read if a file changed).
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let (sc, sk) = (stamp(&self.cert), stamp(&self.key));
        if (sc, sk) != (l.0, l.1) {
            match load(&self.cert, &self.key) {
                Ok(c) => {
                    crate::log::info!("back-channel logout: TLS certificate re-read from {}", self.cert.display());
                    *l = (sc, sk, Arc::new(c));
                }
                Err(e) => {
                    crate::log::error!(
                        "back-channel logout: TLS files changed but cannot be used ({e}); keeping the old ones"
                    );
                    (l.0, l.1) = (sc, sk);
                }
            }
        }
        Arc::clone(&l.2)
    }
}
