//! Feeding ssh and sudo: `pam-oidc ssh`/`sudo` run them with this binary as
//! their askpass program. The token never travels in argv or the environment:
//! the askpass child asks the parent over a Unix socket in a private (0700)
//! directory, and the parent answers only a peer of its own uid that descends
//! from it (SO_PEERCRED and /proc). The environment carries only the socket's
//! path.
//!
//! The continuation protocol (pam_oidc/src/prompt.rs): the module asks
//! `OIDC token: ` (or a step-up variant) for part 1; a reply ending in `\`
//! means more follows, and it asks `OIDC token (part N): `. Parts are at most
//! [`PART_BYTES`] (sudo refuses replies of 512 bytes or more).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Bytes of token per reply.
pub const PART_BYTES: usize = 500;
/// Most parts the module reads.
pub const MAX_PARTS: usize = 64;
/// The environment variable naming the parent's socket.
pub const SOCKET_VAR: &str = "PAM_OIDC_ASKPASS_SOCKET";

/// What a prompt asks for.
#[derive(Debug, PartialEq)]
pub enum Prompt {
    /// The first part of a (new) token.
    Token,
    /// Part N (2 and up) of the token being sent.
    Part(usize),
    /// Anything else: a password, a host key, "press Enter".
    Other,
}

pub fn classify(prompt: &str) -> Prompt {
    // ssh (8.9 and later) puts "(user@host) " before keyboard-interactive prompts.
    let p = prompt.trim_start();
    let p = match p.strip_prefix('(').and_then(|r| r.split_once(") ")) {
        Some((who, rest)) if who.contains('@') && !who.contains(' ') => rest,
        _ => p,
    };
    let Some(rest) = p.strip_prefix("OIDC token") else { return Prompt::Other };
    match rest.strip_prefix(" (part ").and_then(|r| r.split_once(')')) {
        Some((n, _)) => match n.parse::<usize>() {
            Ok(n) if (2..=MAX_PARTS).contains(&n) => Prompt::Part(n),
            _ => Prompt::Other,
        },
        None => Prompt::Token,
    }
}

/// The host of ssh's `(user@host) ` prompt prefix (ssh 8.4 and later put it
/// before keyboard-interactive prompts; the server's text comes after it, so
/// the server cannot choose it).
pub fn prompt_host(prompt: &str) -> Option<String> {
    let who = prompt.trim_start().strip_prefix('(')?.split_once(") ")?.0;
    let host = who.rsplit_once('@')?.1;
    (!who.contains(' ') && !host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Does `host` match a `hosts` pattern (`*` matches any run of characters)?
pub fn host_matches(pattern: &str, host: &str) -> bool {
    fn m(p: &[u8], h: &[u8]) -> bool {
        match p.split_first() {
            None => h.is_empty(),
            Some((b'*', rest)) => (0..=h.len()).any(|i| m(rest, &h[i..])),
            Some((c, rest)) => h.split_first().is_some_and(|(d, hr)| c.eq_ignore_ascii_case(d) && m(rest, hr)),
        }
    }
    m(pattern.as_bytes(), host.as_bytes())
}

/// Who may be given a token: a prompt from ssh must name (in its prefix) a
/// host of `hosts` or the destination `pam-oidc ssh` was asked for; a prompt
/// without the prefix only when sudo asks. A server the user did not mean to
/// give a token to (a typo, a man in the middle whose host key was accepted,
/// a jump host) gets none: a token opens every host of its audience.
#[derive(Clone, Debug, Default)]
pub struct Allowed {
    pub hosts: Vec<String>,
    pub destination: Option<String>,
    pub unprefixed: bool,
}

impl Allowed {
    pub fn check(&self, host: Option<&str>) -> Result<(), String> {
        match host {
            None if self.unprefixed => Ok(()),
            None => Err("refused: the prompt does not say which host asks (ssh 8.4 or later names it)".into()),
            Some(h) if self.destination.as_deref() == Some(h) || self.hosts.iter().any(|p| host_matches(p, h)) => {
                Ok(())
            }
            Some(h) => Err(format!(
                "refused: {h} is not a host this client gives tokens to (client.toml: hosts = [\"{h}\"] or a pattern)"
            )),
        }
    }
}

/// Fresh tokens one `pam-oidc ssh`/`sudo` hands out (a login and its retries):
/// a server that keeps asking gets no more.
pub const MAX_TOKENS: usize = 3;

/// Part `n` (1-based) of `token` as a reply: a trailing `\` unless it is the last.
pub fn part(token: &str, n: usize) -> Option<String> {
    let count = token.len().div_ceil(PART_BYTES).max(1);
    if n == 0 || n > count || count > MAX_PARTS || !token.is_ascii() {
        return None;
    }
    let piece = &token[(n - 1) * PART_BYTES..(n * PART_BYTES).min(token.len())];
    Some(if n < count { format!("{piece}\\") } else { piece.to_string() })
}

/// A directory only this user may enter, removed (with what is in it) on drop.
pub struct PrivateDir(pub PathBuf);

impl PrivateDir {
    /// A new directory with a random name under `$XDG_RUNTIME_DIR`, else `$TMPDIR`, else /tmp.
    pub fn new() -> Result<PrivateDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        let base = ["XDG_RUNTIME_DIR", "TMPDIR"]
            .iter()
            .filter_map(std::env::var_os)
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        // Short: a socket path must fit in 108 bytes.
        let name = format!("pam-oidc-{}", crate::oidc::random(9)?);
        let dir = base.join(name);
        // mkdir fails if the name exists: nobody can have prepared it.
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(PrivateDir(dir))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The uid and pid of a Unix socket's peer.
fn peer(s: &UnixStream) -> Result<(u32, i32), String> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!("SO_PEERCRED: {}", std::io::Error::last_os_error()));
    }
    Ok((cred.uid, cred.pid))
}

/// The parent of `pid` (from /proc/PID/stat).
fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Is `pid` a descendant of `ancestor`?
pub fn descends_from(mut pid: i32, ancestor: i32) -> bool {
    for _ in 0..64 {
        if pid <= 1 {
            return false;
        }
        match ppid(pid) {
            Some(p) if p == ancestor => return true,
            Some(p) => pid = p,
            None => return false,
        }
    }
    false
}

/// Gives the token of a login when its askpass asks: each `OIDC token:`
/// prompt (a login; a retry; a second login through the same ssh) gets a
/// fresh token from `fetch`, fetched at that moment; `(part N)` prompts get
/// the rest of that token.
pub struct Server {
    pub socket: PathBuf,
    _dir: PrivateDir,
}

type Fetch = Box<dyn FnMut() -> Result<Zeroizing<String>, String> + Send>;

impl Server {
    pub fn start(fetch: Fetch, allowed: Allowed) -> Result<Server, String> {
        let dir = PrivateDir::new()?;
        let socket = dir.0.join("s");
        let listener = UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        std::thread::spawn(move || serve(listener, fetch, allowed));
        Ok(Server { socket, _dir: dir })
    }
}

/// The token being sent, the host it is for, and how many were handed out.
#[derive(Default)]
struct Sending {
    token: Option<Zeroizing<String>>,
    host: Option<String>,
    given: usize,
}

fn serve(listener: UnixListener, mut fetch: Fetch, allowed: Allowed) {
    // SAFETY: getuid and getpid have no preconditions and cannot fail.
    let (uid, me) = unsafe { (libc::getuid(), libc::getpid()) };
    let mut current = Sending::default();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let answer = match peer(&s) {
            Ok((u, pid)) if u == uid && descends_from(pid, me) => {
                let mut line = String::new();
                let _ = BufReader::new((&s).take(256)).read_line(&mut line);
                answer(line.trim(), &mut current, &mut fetch, &allowed)
            }
            Ok((u, pid)) => Err(format!("refused: peer uid {u} pid {pid} is not this login's ssh/sudo")),
            Err(e) => Err(e),
        };
        let reply = Zeroizing::new(match answer {
            Ok(text) => format!("ok {}\n", text.as_str()),
            Err(e) => format!("err {}\n", e.replace('\n', " ")),
        });
        let _ = s.write_all(reply.as_bytes());
    }
}

/// A request: `part N` or `part N host=H` (H from the prompt's prefix).
fn answer(req: &str, cur: &mut Sending, fetch: &mut Fetch, allowed: &Allowed) -> Result<Zeroizing<String>, String> {
    let rest = req.strip_prefix("part ").ok_or("bad request")?;
    let (n, host) = match rest.split_once(" host=") {
        Some((n, h)) => (n, Some(h.to_string())),
        None => (rest, None),
    };
    let n: usize = n.parse().map_err(|_| "bad request")?;
    if n == 1 {
        allowed.check(host.as_deref())?;
        if cur.given >= MAX_TOKENS {
            return Err(format!("refused: {MAX_TOKENS} tokens already given in this run"));
        }
        cur.token = None;
        cur.token = Some(fetch()?);
        cur.host = host.clone();
        cur.given += 1;
    } else if host != cur.host {
        return Err("refused: a part asked for by another host".into());
    }
    let token = cur.token.as_ref().ok_or("no token is being sent")?;
    part(token, n).map(Zeroizing::new).ok_or_else(|| format!("the token has no part {n}"))
}

/// Ask the parent listening on `socket` for part `n`, for the prompt's `host`.
pub fn ask(socket: &Path, n: usize, host: Option<&str>) -> Result<Zeroizing<String>, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(600)));
    let req = match host {
        Some(h) if !h.contains(['\n', ' ']) => format!("part {n} host={h}\n"),
        _ => format!("part {n}\n"),
    };
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut reply = Zeroizing::new(String::new());
    BufReader::new((&s).take(64 * 1024)).read_line(&mut reply).map_err(|e| e.to_string())?;
    let line = reply.trim_end_matches('\n');
    if let Some(text) = line.strip_prefix("ok ") {
        return Ok(Zeroizing::new(text.to_string()));
    }
    Err(line.strip_prefix("err ").unwrap_or("no answer from pam-oidc").to_string())
}

/// A prompt that is not for a token goes to the person at the terminal (echo
/// off unless it is a yes/no question), or fails when there is none.
pub fn passthrough(prompt: &str) -> Result<Zeroizing<String>, String> {
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| format!("no terminal to ask {prompt:?} (pam-oidc answers only OIDC token prompts)"))?;
    let fd = tty.as_raw_fd();
    // Echo only for ssh's own questions (a host key: no `(user@host)` prefix),
    // never because a server's prompt text says "(yes/no".
    let echo = (prompt.contains("(yes/no") && prompt_host(prompt).is_none())
        || std::env::var("SSH_ASKPASS_PROMPT").is_ok_and(|v| v == "confirm");
    // SAFETY: termios is plain data; tcgetattr fills it for an open descriptor.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the life of `tty`; `old` is a valid termios.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have_termios && !echo {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above; `quiet` is a copy of the terminal's own settings.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    }
    let mut w = &tty;
    let _ = w.write_all(crate::text::visible(prompt).as_bytes());
    let _ = w.flush();
    let mut line = Zeroizing::new(String::new());
    let r = BufReader::new(&tty).read_line(&mut line);
    if have_termios && !echo {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &old) };
        let _ = w.write_all(b"\n");
    }
    r.map_err(|e| format!("reading the terminal: {e}"))?;
    Ok(Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string()))
}

/// The askpass program: answer one prompt on stdout. Exit status 0 when
/// answered. Run by `pam-oidc ssh`/`sudo`, it asks its parent over the socket;
/// run by a plain ssh or sudo (`SSH_ASKPASS=pam-oidc` exported), it gets a
/// fresh token itself with `fetch` (see [`standalone`]).
pub fn run(prompt: &str, fetch: &dyn Fn() -> Result<Zeroizing<String>, String>, hosts: &[String]) -> i32 {
    let host = prompt_host(prompt);
    // Run by a plain ssh or sudo: the hosts of client.toml; no prefix only for sudo.
    let standalone = Allowed { hosts: hosts.to_vec(), destination: None, unprefixed: parent_is_sudo() };
    let answer = match (classify(prompt), std::env::var_os(SOCKET_VAR)) {
        (Prompt::Other, _) => passthrough(prompt),
        (Prompt::Token, Some(sock)) => ask(Path::new(&sock), 1, host.as_deref()),
        (Prompt::Part(n), Some(sock)) => ask(Path::new(&sock), n, host.as_deref()),
        (Prompt::Token, None) => standalone.check(host.as_deref()).and_then(|()| standalone::first(fetch)),
        (Prompt::Part(n), None) => standalone::part(n),
    };
    match answer {
        Ok(a) => {
            let mut out = std::io::stdout().lock();
            let line = Zeroizing::new(format!("{}\n", a.as_str()));
            if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() {
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("pam-oidc askpass: {}", crate::text::visible(&e));
            1
        }
    }
}

/// Is the process that ran this askpass sudo (whose prompts have no host prefix)?
fn parent_is_sudo() -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", std::os::unix::process::parent_id()));
    comm.is_ok_and(|c| c.trim() == "sudo")
}

pub mod standalone;

#[cfg(test)]
mod tests {
    use super::*;

    /// Without XDG_RUNTIME_DIR the parts wait under the user's cache, not in
    /// /tmp/pam-oidc-UID, which another user could create first.
    #[test]
    fn token_parts_never_wait_in_a_shared_directory() {
        use std::path::PathBuf;
        let p = |r: Option<&str>, c: Option<&str>, h: Option<&str>| {
            standalone::state_path(r.map(PathBuf::from), c.map(PathBuf::from), h.map(PathBuf::from))
        };
        assert_eq!(p(Some("/run/user/1000"), None, Some("/home/a")).unwrap(), PathBuf::from("/run/user/1000/pam-oidc"));
        assert_eq!(p(None, None, Some("/home/a")).unwrap(), PathBuf::from("/home/a/.cache/pam-oidc/run"));
        assert_eq!(p(None, Some("/c"), Some("/home/a")).unwrap(), PathBuf::from("/c/pam-oidc/run"));
        assert!(p(None, None, None).is_err());
    }

    #[test]
    fn prompts_are_classified() {
        assert_eq!(classify("OIDC token: "), Prompt::Token);
        assert_eq!(classify("OIDC token (this session is not in ops-admins): "), Prompt::Token);
        assert_eq!(classify("OIDC token (part 2): "), Prompt::Part(2));
        assert_eq!(classify("OIDC token (part 64): "), Prompt::Part(64));
        assert_eq!(classify("OIDC token (part 65): "), Prompt::Other);
        assert_eq!(classify("OIDC token (part 1): "), Prompt::Other);
        assert_eq!(classify("alice@host's password: "), Prompt::Other);
        assert_eq!(classify("[sudo] password for alice: "), Prompt::Other);
        assert_eq!(classify("Are you sure you want to continue connecting (yes/no/[fingerprint])? "), Prompt::Other);
        assert_eq!(
            classify("To log in, open https://x/device and confirm the code AB, then press Enter:"),
            Prompt::Other
        );
        assert_eq!(classify("Password (part 2): "), Prompt::Other);
        assert_eq!(classify("(alice@web-1) OIDC token: "), Prompt::Token);
        assert_eq!(classify("(alice@web-1) OIDC token (part 3): "), Prompt::Part(3));
        assert_eq!(classify("(alice@web-1) Password: "), Prompt::Other);
        assert_eq!(classify("(not a host) OIDC token: "), Prompt::Other);
    }

    #[test]
    fn parts_reassemble_as_the_module_reads_them() {
        for len in [1usize, 499, 500, 501, 1999, 12_000] {
            let token: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let count = len.div_ceil(PART_BYTES);
            let mut joined = String::new();
            for n in 1..=count {
                let p = part(&token, n).unwrap();
                assert!(p.len() < 512, "sudo refuses replies of 512 bytes or more");
                // The module's reading: a trailing backslash means more follows.
                match p.strip_suffix('\\') {
                    Some(piece) => {
                        assert!(n < count);
                        joined.push_str(piece)
                    }
                    None => {
                        assert_eq!(n, count);
                        joined.push_str(&p)
                    }
                }
            }
            assert_eq!(joined, token, "{len}");
            assert!(part(&token, count + 1).is_none());
            assert!(part(&token, 0).is_none());
        }
        assert!(part(&"x".repeat(PART_BYTES * MAX_PARTS + 1), 1).is_none(), "more than 64 parts");
    }

    #[test]
    fn standalone_askpass_keeps_the_rest_of_a_token_for_its_ssh_only_until_sent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::new().unwrap();
        let d = dir.0.as_path();
        let token = "T".repeat(1200);
        let t = token.clone();
        let first = standalone::first_in(d, &move || Ok(Zeroizing::new(t.clone()))).unwrap();
        assert_eq!(first.len(), PART_BYTES + 1);
        let files: Vec<_> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(files.len(), 1);
        // Named for the asking process (here: this test's parent) and its start time.
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("askpass-{}-", std::os::unix::process::parent_id())), "{name}");
        assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
        let mut joined = first.trim_end_matches('\\').to_string();
        joined.push_str(standalone::part_in(d, 2).unwrap().trim_end_matches('\\'));
        joined.push_str(&standalone::part_in(d, 3).unwrap());
        assert_eq!(joined, token);
        assert!(!files[0].exists(), "deleted once the last part is sent");
        assert!(standalone::part_in(d, 2).is_err());
        // A short token leaves nothing behind; files of processes that are gone are swept.
        std::fs::write(d.join("askpass-999999999-1"), "x").unwrap();
        assert_eq!(standalone::first_in(d, &|| Ok(Zeroizing::new("eyJ.a.b".into()))).unwrap().as_str(), "eyJ.a.b");
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
    }

    #[test]
    fn a_private_dir_is_0700_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::new().unwrap();
        assert_eq!(std::fs::metadata(&dir.0).unwrap().permissions().mode() & 0o777, 0o700);
        let path = dir.0.clone();
        drop(dir);
        assert!(!path.exists(), "removed on drop");
    }

    #[test]
    fn answers_part_by_part_and_a_fresh_token_per_login() {
        let first = "A".repeat(600);
        let mut current = Sending::default();
        let mut n = 0;
        let f = first.clone();
        let mut next: Fetch = Box::new(move || {
            n += 1;
            Ok(Zeroizing::new(if n == 1 { f.clone() } else { format!("fresh-{n}") }))
        });
        let allowed =
            Allowed { hosts: vec!["*.example.com".into()], destination: Some("web-1".into()), unprefixed: false };
        let mut ask = |req: &str| answer(req, &mut current, &mut next, &allowed).map(|z| z.to_string());
        assert!(ask("part 2 host=web-1").is_err(), "no token is being sent");
        assert_eq!(ask("part 1 host=web-1").unwrap(), format!("{}\\", &first[..500]));
        assert!(ask("part 2 host=evil.test").unwrap_err().contains("another host"), "the rest only to that host");
        assert_eq!(ask("part 2 host=web-1").unwrap(), first[500..]);
        assert!(ask("part 3 host=web-1").is_err());
        assert_eq!(ask("part 1 host=db.example.com").unwrap(), "fresh-2", "a second login gets a fresh token");
        assert_eq!(ask("part 1 host=web-1").unwrap(), "fresh-3");
        assert!(ask("part 1 host=web-1").unwrap_err().contains("3 tokens already given"), "a server that keeps asking");
        assert!(ask("token please").is_err());
    }

    /// A token goes only to the host the user meant: the destination of
    /// `pam-oidc ssh` or a `hosts` pattern, named by ssh's own prompt prefix
    /// (the server's text comes after it). A typo'd or hostile server, a jump
    /// host, or a prompt with no prefix (not from sudo) gets nothing.
    #[test]
    fn tokens_go_only_to_the_hosts_meant() {
        assert_eq!(prompt_host("(alice@Web-1.Example.com) OIDC token: ").as_deref(), Some("web-1.example.com"));
        assert_eq!(prompt_host("(alice@evil.test) (bob@web-1) OIDC token: ").as_deref(), Some("evil.test"));
        assert_eq!(prompt_host("OIDC token: "), None);
        assert_eq!(prompt_host("(not a host) OIDC token: "), None);
        assert!(host_matches("*.example.com", "web-1.example.com"));
        assert!(!host_matches("*.example.com", "example.com.evil.test"));
        assert!(!host_matches("web-*", "web"));
        let a =
            Allowed { hosts: vec!["*.example.com".into()], destination: Some("10.0.0.5".into()), unprefixed: false };
        assert!(a.check(Some("db.example.com")).is_ok() && a.check(Some("10.0.0.5")).is_ok());
        assert!(a.check(Some("evil.test")).unwrap_err().contains("not a host this client gives tokens to"));
        assert!(a.check(None).unwrap_err().contains("does not say which host"));
        assert!(Allowed { unprefixed: true, ..Allowed::default() }.check(None).is_ok(), "sudo's own prompt");
        let mut fetched = 0;
        let mut next: Fetch = Box::new(move || {
            fetched += 1;
            Ok(Zeroizing::new(format!("t{fetched}")))
        });
        let r = answer("part 1 host=evil.test", &mut Sending::default(), &mut next, &a);
        assert!(r.is_err(), "refused before a token is even fetched");
    }

    #[test]
    fn the_parent_refuses_a_process_that_does_not_descend_from_it() {
        let server = Server::start(Box::new(|| Ok(Zeroizing::new("eyJ.a.b".into()))), Allowed::default()).unwrap();
        // This test process is the server's own process, not its descendant.
        let err = ask(&server.socket, 1, None).unwrap_err();
        assert!(err.contains("is not this login's"), "{err}");
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert!(descends_from(child.id() as i32, me));
        assert!(!descends_from(me, child.id() as i32));
        let _ = child.kill();
        let _ = child.wait();
    }
}
