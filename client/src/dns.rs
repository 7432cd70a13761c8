//! Name resolution for the static build. A statically linked glibc resolves
//! DNS names by loading the host's own libc.so.6 at run time (NSS), which is
//! only safe when the host has the glibc the binary was linked with; a CI
//! image rarely does. So the static build resolves by itself: `/etc/hosts`,
//! then the `nameserver`s of `/etc/resolv.conf` (UDP, TCP when the answer is
//! truncated), A and AAAA records, with its `search` list and `ndots`.
//! The dynamic build uses the system's resolver (getaddrinfo).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

const A: u16 = 1;
const AAAA: u16 = 28;

#[derive(Debug, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: usize,
}

pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut r =
        ResolvConf { nameservers: vec![], search: vec![], ndots: 1, timeout: Duration::from_secs(5), attempts: 2 };
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                // A link-local IPv6 server may carry a zone (fe80::1%eth0): not supported, skipped.
                if let Some(ip) = w.next().and_then(|a| a.parse().ok()) {
                    r.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => r.search = w.map(|d| d.trim_end_matches('.').to_string()).collect(),
            Some("options") => {
                for o in w {
                    if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                        r.ndots = n;
                    } else if let Some(n) = o.strip_prefix("timeout:").and_then(|n| n.parse::<u64>().ok()) {
                        r.timeout = Duration::from_secs(n.clamp(1, 30));
                    } else if let Some(n) = o.strip_prefix("attempts:").and_then(|n| n.parse::<usize>().ok()) {
                        r.attempts = n.clamp(1, 5);
                    }
                }
            }
            _ => {}
        }
    }
    r.nameservers.truncate(3);
    if r.nameservers.is_empty() {
        r.nameservers.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    r
}

/// The addresses /etc/hosts gives `name` (names compare without case).
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    text.lines()
        .filter_map(|l| {
            let mut w = l.split('#').next().unwrap_or("").split_whitespace();
            let ip: IpAddr = w.next()?.parse().ok()?;
            w.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
        })
        .collect()
}

/// A query for `name` (`qtype` A or AAAA), recursion desired, with an EDNS0
/// record offering 1232-byte UDP answers.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name}: not a host name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() > 12 + 255 {
        return Err(format!("{name}: name too long"));
    }
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // class IN
                                  // OPT: root name, type 41, UDP size 1232, no extended flags.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    Ok(q)
}

/// Skip a (possibly compressed) name at `at`; the offset after it.
fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *buf.get(at)?;
        match len & 0xc0 {
            0xc0 => return Some(at + 2).filter(|&e| e <= buf.len()),
            0 if len == 0 => return Some(at + 1),
            0 => at += 1 + len as usize,
            _ => return None,
        }
    }
    None
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// What an answer says.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The records of `qtype` (maybe none: the name has no such record).
    Addrs(Vec<IpAddr>),
    /// The name does not exist.
    NoName,
    /// Truncated: ask again over TCP.
    Truncated,
}

pub fn parse_answer(buf: &[u8], id: u16, qtype: u16) -> Result<Answer, String> {
    let bad = || "a malformed DNS answer".to_string();
    if buf.len() < 12 || u16_at(buf, 0) != Some(id) || buf[2] & 0x80 == 0 {
        return Err("not the answer to this query".into());
    }
    if buf[2] & 0x02 != 0 {
        return Ok(Answer::Truncated);
    }
    match buf[3] & 0x0f {
        0 => {}
        3 => return Ok(Answer::NoName),
        rcode => return Err(format!("DNS error (rcode {rcode})")),
    }
    let (qd, an) = (u16_at(buf, 4).ok_or_else(bad)?, u16_at(buf, 6).ok_or_else(bad)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(buf, at).ok_or_else(bad)? + 4;
    }
    let mut out = vec![];
    for _ in 0..an {
        at = skip_name(buf, at).ok_or_else(bad)?;
        let rtype = u16_at(buf, at).ok_or_else(bad)?;
        let len = u16_at(buf, at + 8).ok_or_else(bad)? as usize;
        let data = buf.get(at + 10..at + 10 + len).ok_or_else(bad)?;
        at += 10 + len;
        match (rtype, len) {
            (A, 4) if qtype == A => out.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (AAAA, 16) if qtype == AAAA => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                out.push(IpAddr::from(b));
            }
            _ => {} // CNAMEs: the resolver follows them and sends the addresses too
        }
    }
    Ok(Answer::Addrs(out))
}

fn random_id() -> u16 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u16::from_be_bytes(b)
}

fn ask(server: IpAddr, name: &str, qtype: u16, timeout: Duration) -> Result<Answer, String> {
    let id = random_id();
    let q = query(id, name, qtype)?;
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    // connect(): the kernel drops datagrams from anyone but the server.
    sock.connect((server, 53)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    sock.send(&q).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1232];
    loop {
        let n = sock.recv(&mut buf).map_err(|e| format!("{server}: {e}"))?;
        match parse_answer(&buf[..n], id, qtype) {
            Ok(Answer::Truncated) => return ask_tcp(server, &q, id, qtype, timeout),
            Ok(a) => return Ok(a),
            Err(_) if n >= 2 && u16_at(&buf, 0) != Some(id) => continue, // a stray answer: wait on
            Err(e) => return Err(e),
        }
    }
}

fn ask_tcp(server: IpAddr, q: &[u8], id: u16, qtype: u16, timeout: Duration) -> Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(&(server, 53).into(), timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(q);
    s.write_all(&msg).map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    parse_answer(&buf, id, qtype)
}

/// The names to try for `name`: as is first when it has at least `ndots`
/// dots (or ends in a dot), then with each search domain.
pub fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    if name.ends_with('.') {
        return vec![name.trim_end_matches('.').to_string()];
    }
    let with_search = conf.search.iter().map(|d| format!("{name}.{d}"));
    if name.matches('.').count() >= conf.ndots {
        std::iter::once(name.to_string()).chain(with_search).collect()
    } else {
        with_search.chain(std::iter::once(name.to_string())).collect()
    }
}

/// Resolve `host` (a name or an address literal) for `port`.
pub fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // RFC 6761: localhost is loopback, never asked of a server or a search
    // domain (plain http is allowed to it: it must not leave the machine).
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return Ok(vec![SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port)]);
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let local = hosts_lookup(&hosts, host);
    if !local.is_empty() {
        return Ok(local.into_iter().map(|ip| SocketAddr::new(ip, port)).collect());
    }
    let conf = parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut last = format!("{host}: not found");
    for name in candidates(host, &conf) {
        let mut found = vec![];
        let mut nxdomain = false;
        'types: for qtype in [A, AAAA] {
            for _ in 0..conf.attempts {
                for &server in &conf.nameservers {
                    match ask(server, &name, qtype, conf.timeout) {
                        Ok(Answer::Addrs(a)) => {
                            found.extend(a);
                            continue 'types;
                        }
                        Ok(Answer::NoName) => {
                            nxdomain = true;
                            break 'types;
                        }
                        Ok(Answer::Truncated) => {}
                        Err(e) => last = format!("{name}: {e}"),
                    }
                }
            }
        }
        if !found.is_empty() {
            return Ok(found.into_iter().map(|ip| SocketAddr::new(ip, port)).collect());
        }
        if nxdomain {
            last = format!("{name}: no such name");
        }
    }
    Err(last)
}

/// The resolver the static build gives ureq.
#[derive(Debug)]
pub struct Resolver;

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let addrs = lookup(host, port).map_err(|_| ureq::Error::HostNotFound)?;
        let mut out = self.empty();
        for a in addrs.into_iter().take(16) {
            out.push(a);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_and_hosts() {
        let r = parse_resolv_conf(
            "# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\nsearch corp.example ci.example.\noptions ndots:2 timeout:3 attempts:9\n",
        );
        assert_eq!(r.nameservers, vec!["10.0.0.2".parse::<IpAddr>().unwrap(), "2001:db8::53".parse().unwrap()]);
        assert_eq!(r.search, ["corp.example", "ci.example"]);
        assert_eq!((r.ndots, r.timeout, r.attempts), (2, Duration::from_secs(3), 5));
        assert_eq!(parse_resolv_conf("").nameservers, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.1.2.3 Build-Box build # x\n#10.9.9.9 idp\n";
        assert_eq!(hosts_lookup(hosts, "localhost").len(), 2);
        assert_eq!(hosts_lookup(hosts, "build-box."), vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert!(hosts_lookup(hosts, "idp").is_empty());
        assert_eq!(candidates("web", &r), ["web.corp.example", "web.ci.example", "web"]);
        assert_eq!(candidates("a.b.c", &r), ["a.b.c", "a.b.c.corp.example", "a.b.c.ci.example"]);
        assert_eq!(candidates("x.y.", &r), ["x.y"]);
    }

    #[test]
    fn queries_and_answers() {
        let q = query(0x1234, "idp.example.com", A).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert!(q.windows(5).any(|w| w == b"\x03idp\x07"));
        assert!(query(1, "a..b", A).is_err());
        assert!(query(1, &"x".repeat(64), A).is_err());
        // An answer: the question, a CNAME, then an A record whose name is a compression pointer.
        let mut r = q[..q.len() - 11].to_vec(); // without the OPT record
        r[2] = 0x81;
        r[3] = 0x80;
        r[6..8].copy_from_slice(&[0, 2]);
        r[10..12].copy_from_slice(&[0, 0]);
        r.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'x', 0xc0, 16]);
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        assert_eq!(parse_answer(&r, 0x1234, A).unwrap(), Answer::Addrs(vec!["192.0.2.7".parse().unwrap()]));
        assert_eq!(parse_answer(&r, 0x1234, AAAA).unwrap(), Answer::Addrs(vec![]));
        assert!(parse_answer(&r, 0x9999, A).is_err(), "another query's id");
        let mut nx = r.clone();
        nx[3] = 0x83;
        assert_eq!(parse_answer(&nx, 0x1234, A).unwrap(), Answer::NoName);
        let mut tc = r.clone();
        tc[2] |= 0x02;
        assert_eq!(parse_answer(&tc, 0x1234, A).unwrap(), Answer::Truncated);
        assert!(parse_answer(&r[..r.len() - 3], 0x1234, A).is_err(), "cut short");
        let mut looped = r.clone();
        let end = looped.len();
        looped[end - 16] = 0x3f; // a label running past the end
        assert!(parse_answer(&looped, 0x1234, A).is_err());
    }

    #[test]
    fn literals_and_localhost_need_no_server() {
        assert_eq!(lookup("127.0.0.1", 8080).unwrap(), vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(lookup("[::1]", 443).unwrap(), vec!["[::1]:443".parse().unwrap()]);
        assert!(lookup("localhost", 80).unwrap().iter().any(|a| a.ip().is_loopback()));
    }
}
