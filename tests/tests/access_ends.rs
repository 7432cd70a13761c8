//! Issue 15: access that ends when it should, through real sshd — a session
//! ended at its token's expiry (and no other session of the user), and a
//! locked identity refused and its live session ended.

use integration::sshd::{SshHost, Stacks};
use integration::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const ALGS: &[&str] = &["RS256", "ES256"];

struct World {
    idp: Idp,
    env: Env,
    h: Helperd,
    host: SshHost,
}

fn world(extra: Config) -> World {
    let idp = Idp::start();
    // `short-lived`: the test IdP's client whose ID tokens live 1 s.
    let [a, b, c] = TEST_AUDIENCES;
    let audiences = [a, b, c, "short-lived"];
    let env = Env::new(extra.issuer(Issuer::standard(&idp.issuer(), ALGS).set("audiences", audiences)));
    env.prelogin(&["alice", "bob"], &[]);
    // With the packaged unit's one capability (CAP_KILL): a session's
    // processes run as its user, and helperd must still end them.
    let h = env.start_helperd_as_packaged();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::standard(""), "");
    World { idp, env, h, host }
}

impl World {
    fn token_file(&self, name: &str, client: &str, user: &str) -> PathBuf {
        let p = self.env.dir.0.join(format!("{name}.token"));
        std::fs::write(&p, self.idp.token(client, user)).unwrap();
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.h.log).unwrap_or_default()
    }

    fn helperd(&self, args: &[&str]) -> String {
        let out = Command::new(helperd_bin()).arg("--config").arg(&self.env.config).args(args).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

/// An ssh client left running, killed by PID when the test ends (also on a panic).
struct Client(std::process::Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command line no other run of these tests has: `sleep N.PID`; the
/// processes running it in sessions are killed (by PID) when the test ends.
struct Sleeper(String);

impl std::ops::Deref for Sleeper {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let out = Command::new("pgrep").args(["-f", "-x", &self.0]).output().unwrap();
        for pid in String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn sleeper(n: u32) -> Sleeper {
    Sleeper(format!("sleep {n}.{}", std::process::id()))
}

/// Processes on this host whose command line is exactly `cmd`.
fn running(cmd: &str) -> usize {
    let out = Command::new("pgrep").args(["-f", "-x", cmd]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if ok() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `[sessions] on_expiry = "end"`: alice's session on a 1-second token ends
/// (SIGHUP to the tree helperd bound at open_session; the shell and its
/// `sleep` are gone) a few seconds after exp + grace, while alice's other
/// session — same uid, a token that lives 10 minutes — is untouched.
#[test]
fn an_expired_session_ends_over_sshd_and_the_users_other_session_lives() {
    let grace = 6;
    let w =
        world(Config::new().sessions("on_expiry", "end").sessions("grace_secs", grace).sessions("kill_after_secs", 2));
    let (s61, s62) = (sleeper(61), sleeper(62));
    let long = w.token_file("alice-long", "host-login", "alice");
    let mut b = Client(w.host.ssh_spawn("alice", &long, &s62));
    wait_until(Duration::from_secs(20), || running(&s62) == 1).expect("alice's long session started");

    let short = w.token_file("alice-short", "short-lived", "alice");
    let minted = now();
    let a = w.host.ssh_spawn("alice", &short, &format!("{}; echo SURVIVED", *s61));
    wait_until(Duration::from_secs(20), || running(&s61) == 1).expect("alice's short session started");
    let list = w.helperd(&["sessions"]);
    assert_eq!(list.lines().filter(|l| l.contains(" alice ")).count(), 2, "{list}");

    // The token's exp is minted + 1: the session ends at minted + 1 + grace.
    let gone = wait_until(Duration::from_secs(grace as u64 + 20), || running(&s61) == 0)
        .unwrap_or_else(|| panic!("the expired session still runs\n{}", w.log()));
    let late = now() - (minted + 1 + grace);
    eprintln!("session ended {late}s after its deadline ({gone:?} of waiting)");
    assert!(late <= 4, "ended {late}s after the deadline\n{}", w.log());
    let out = a.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SURVIVED"), "the shell was ended");
    assert!(w.log().contains("sessions.on_expiry = \"end\""), "{}", w.log());

    // alice's other session lives on, and is still listed.
    assert_eq!(running(&s62), 1, "the other session of the same uid survives\n{}", w.log());
    assert!(b.0.try_wait().unwrap().is_none());
    let list = w.helperd(&["sessions"]);
    assert_eq!(list.lines().filter(|l| l.contains(" alice ")).count(), 1, "{list}");
}

/// `helperd lock alice`: her live session ends at once, a new login with a
/// fresh token is refused (`locked` in the audit line), bob is untouched;
/// `helperd unlock` lets her in again.
#[test]
fn a_locked_identity_is_refused_and_its_live_session_ends_over_sshd() {
    let w = world(Config::new());
    let (s63, s64) = (sleeper(63), sleeper(64));
    let t = w.token_file("alice-1", "host-login", "alice");
    let mut a = Client(w.host.ssh_spawn("alice", &t, &s63));
    let bt = w.token_file("bob-1", "host-login", "bob");
    let _b = Client(w.host.ssh_spawn("bob", &bt, &s64));
    wait_until(Duration::from_secs(20), || running(&s63) == 1 && running(&s64) == 1).expect("both sessions started");

    let t0 = Instant::now();
    let said = w.helperd(&["lock", "alice", "--reason", "laptop stolen"]);
    assert!(said.contains("name alice") && said.contains("locked; 1 live session(s) ended"), "{said}\n{}", w.log());
    let gone = wait_until(Duration::from_secs(10), || running(&s63) == 0).expect("alice's session ended");
    eprintln!("lock → session gone in {:?} (helperd lock returned after {gone:?})", t0.elapsed());
    let _ = a.0.wait();
    assert!(w.log().contains("is locked by uid 0"), "{}", w.log());
    assert_eq!(running(&s64), 1, "bob's session lives");
    assert!(w.helperd(&["locks"]).contains("laptop stolen"));

    // A new login with a fresh token is refused, with the reason logged.
    let fresh = w.token_file("alice-2", "host-login", "alice");
    let out = w.host.ssh("alice", &fresh, "echo IN");
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("IN"));
    w.host.wait_log("(locked)");

    assert!(w.helperd(&["unlock", "alice"]).contains("unlocked name alice"));
    let again = w.token_file("alice-3", "host-login", "alice");
    let out = w.host.ssh("alice", &again, "echo IN");
    assert!(String::from_utf8_lossy(&out.stdout).contains("IN"), "unlocked\n{}", w.log());
}
