//! The loopback redirect of `pam-oidc login` (RFC 8252 §7.3): the listener
//! that takes the authorization code back from the browser (only from this
//! user's own processes), and starting the browser.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// What one request to the loopback listener was.
#[derive(Debug, PartialEq)]
pub enum Callback {
    /// The redirect with our state: the authorization code.
    Code(String),
    /// The redirect with our state and an error from the IdP.
    Error(String),
    /// Anything else (a favicon, a stray request, a wrong state): ignored.
    Other,
}

/// Parse an HTTP request line (`GET /callback?code=..&state=.. HTTP/1.1`).
pub fn parse_callback(request_line: &str, state: &str) -> Callback {
    let mut it = request_line.split_whitespace();
    let (Some("GET"), Some(target)) = (it.next(), it.next()) else { return Callback::Other };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        return Callback::Other;
    }
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    let mut desc = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => desc = Some(v.into_owned()),
            _ => {}
        }
    }
    if got_state.as_deref() != Some(state) {
        return Callback::Other;
    }
    match (code, error) {
        (_, Some(e)) => Callback::Error(match desc {
            Some(d) => format!("{e}: {d}"),
            None => e,
        }),
        (Some(c), None) if !c.is_empty() => Callback::Code(c),
        _ => Callback::Other,
    }
}

const DONE_PAGE: &str =
    "<!doctype html><title>pam-oidc</title><p>Logged in. You can close this window and return to the terminal.</p>";
const FAILED_PAGE: &str = "<!doctype html><title>pam-oidc</title><p>The login failed; the terminal says why.</p>";

fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The uid owning the TCP socket at `local` connected to `remote` (both on
/// this machine), from /proc/net/tcp and tcp6.
pub fn socket_owner(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<u32> {
    let hex = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.octets()), a.port()),
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            let words: String =
                o.chunks(4).map(|c| format!("{:08X}", u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect();
            format!("{words}:{:04X}", a.port())
        }
    };
    let (l, r) = (hex(local), hex(remote));
    let table = if local.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
    let text = std::fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 7 && f[1] == l && f[2] == r).then(|| f[7].parse().ok()).flatten()
    })
}

/// Serve the loopback redirect until the callback with `state` arrives.
pub fn wait_for_callback(listener: &TcpListener, state: &str, timeout: Duration) -> Result<Zeroizing<String>, String> {
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(|e| format!("loopback listener: {e}"))?;
    while Instant::now() < deadline {
        let (mut stream, from) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(format!("loopback listener: {e}")),
        };
        // Only this user's own processes (the browser): another local user who
        // read the state from a process list must not deliver a code of theirs.
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { libc::getuid() };
        let to = stream.local_addr().map_err(|e| e.to_string())?;
        if socket_owner(from, to) != Some(me) {
            drop(stream);
            continue;
        }
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let mut reader = BufReader::new(std::io::Read::take(stream.try_clone().map_err(|e| e.to_string())?, 8192));
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        match parse_callback(&line, state) {
            Callback::Code(c) => {
                respond(&mut stream, "200 OK", DONE_PAGE);
                return Ok(Zeroizing::new(c));
            }
            Callback::Error(e) => {
                respond(&mut stream, "200 OK", FAILED_PAGE);
                return Err(format!("the IdP refused the login: {e}"));
            }
            Callback::Other => respond(&mut stream, "404 Not Found", ""),
        }
    }
    Err(format!("no answer from the browser within {} s", timeout.as_secs()))
}

/// Start `$BROWSER` (a command; `%s` is replaced by the URL, else the URL is
/// its argument), else `xdg-open`. Not waited for.
pub fn open_browser(url: &str) -> Result<(), String> {
    let (prog, args): (String, Vec<String>) = match std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
        Some(b) => {
            let first = b.split(':').next().unwrap_or(&b).to_string();
            let mut words = first.split_whitespace().map(str::to_string);
            let prog = words.next().unwrap_or_default();
            let mut args: Vec<String> = words.map(|w| w.replace("%s", url)).collect();
            if !first.contains("%s") {
                args.push(url.to_string());
            }
            (prog, args)
        }
        None => ("xdg-open".into(), vec![url.to_string()]),
    };
    let child = std::process::Command::new(&prog)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the browser ({prog}): {e}"))?;
    // Reap it whenever it ends, without waiting here.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(())
}

#[cfg(test)]
mod loopback_tests {
    /// The loopback listener knows who connected: a connection of ours is
    /// ours; another uid's (another local user delivering their own code with
    /// our state) is not — checked with a connection made as another uid.
    #[test]
    fn the_owner_of_a_loopback_connection_is_known() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, from) = l.accept().unwrap();
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        assert_eq!(super::socket_owner(from, s.local_addr().unwrap()), Some(me));
        drop(c);
        // SAFETY: as above.
        if unsafe { libc::geteuid() } == 0 {
            let port = l.local_addr().unwrap().port();
            let other = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
                .arg(format!("import socket,time; s=socket.create_connection(('127.0.0.1',{port})); time.sleep(2)"))
                .spawn()
                .unwrap();
            l.set_nonblocking(true).unwrap();
            let t = std::time::Instant::now();
            let (s2, from2) = loop {
                match l.accept() {
                    Ok(x) => break x,
                    Err(_) if t.elapsed() < std::time::Duration::from_secs(10) => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    Err(e) => panic!("no connection from uid 65534: {e}"),
                }
            };
            assert_eq!(super::socket_owner(from2, s2.local_addr().unwrap()), Some(65534));
            let mut other = other;
            let _ = other.kill();
            let _ = other.wait();
        }
    }
}
