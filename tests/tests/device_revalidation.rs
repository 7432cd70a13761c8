//! Issue 15 (part 2): a device-code session over real sshd is revalidated
//! with the refresh token helperd kept — the real IdP (oidc-provider, ID
//! tokens of 20 s, refresh tokens for `host-device`), a real helperd: the
//! refresh moves the session's `exp`; once the IdP revokes the user's grant,
//! the session's processes are gone within one refresh interval and
//! `helperd sessions` no longer lists it.

use integration::sshd::{SshHost, Stacks};
use integration::*;
use oidc_core::{Request, Response, SessionInfo};
use std::time::{Duration, Instant};

const ALGS: &[&str] = &["RS256", "ES256"];
/// The device client's ID-token lifetime: a refresh is due 16 s after issue.
const TTL: u64 = 20;

fn sessions(env: &Env) -> Vec<SessionInfo> {
    let sock = env.socket().with_file_name("helperd-root.sock");
    match oidc_core::ipc_call(&sock, &Request::Sessions { offset: 0 }, Duration::from_secs(5)) {
        Ok(Response::Sessions { sessions, .. }) => sessions,
        other => panic!("{other:?}"),
    }
}

fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn a_device_session_is_refreshed_then_ended_when_the_idp_revokes_the_grant() {
    let idp = Idp::start_with_device_ttl(TTL);
    let issuer = Issuer::standard(&idp.issuer(), ALGS)
        .set("audiences", ["host-login", "host-device"])
        .set("device_client_id", "host-device")
        .set("device_scope", "openid profile groups")
        .set("device_refresh", true);
    let env = Env::new(Config::new().pam("device_timeout_secs", 30).issuer(issuer));
    env.prelogin(&["alice"], &[]);
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::device(), "");
    let prompts = env.dir.0.join("prompts");
    let recorder = env.dir.0.join("record-askpass");
    std::fs::write(&recorder, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho\n", prompts.display())).unwrap();
    std::process::Command::new("chmod").args(["+x", &recorder.display().to_string()]).status().unwrap();
    let none = env.dir.0.join("no.token");
    std::fs::write(&none, "").unwrap();

    std::thread::scope(|s| {
        let ssh = s.spawn(|| host.ssh_with("alice", &none, "echo IN-SESSION; exec sleep 120", &recorder));
        let code = until("the device prompt", Duration::from_secs(20), || {
            let all = std::fs::read_to_string(&prompts).unwrap_or_default();
            let l = all.lines().find(|l| l.contains("confirm the code"))?.to_string();
            Some(l.split("confirm the code ").nth(1)?.split(',').next()?.to_string())
        });
        let url = format!("{}/test/device?user_code={code}&user=alice&action=approve", idp.issuer());
        let r = ureq::get(&url).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(r.contains("\"done\":true"), "{r}");
        let first = until("alice's session", Duration::from_secs(30), || sessions(&env).into_iter().next());
        assert_eq!(first.claims.account, "alice");
        let log = || std::fs::read_to_string(&h.log).unwrap_or_default();

        // The refresh before exp: the session now lives on a newer token.
        let t = Instant::now();
        let renewed = until("a refresh", Duration::from_secs(TTL + 15), || {
            sessions(&env).into_iter().find(|s| s.id == first.id && s.claims.exp > first.claims.exp)
        });
        println!("refreshed after {:?}: exp {} -> {}", t.elapsed(), first.claims.exp, renewed.claims.exp);
        assert!(log().contains(&format!("session {} revalidated: user=alice", first.id)), "{}", log());
        // The session's processes (sshd's session process, the shell's sleep).
        let tree: Vec<i32> = {
            let out = host.exec(&["pgrep", "-u", "alice"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
        };
        assert!(!tree.is_empty() && tree.iter().all(|p| alive(*p)), "{tree:?}");

        // The IdP revokes alice's grant: the next refresh gets invalid_grant.
        assert!(idp.revoke("alice") >= 1);
        let revoked_at = Instant::now();
        until("the session's end", Duration::from_secs(TTL + 15), || sessions(&env).is_empty().then_some(()));
        let ended = revoked_at.elapsed();
        until("its processes gone", Duration::from_secs(10), || tree.iter().all(|p| !alive(*p)).then_some(()));
        let gone = revoked_at.elapsed();
        println!(
            "revoked at the IdP -> session ended {ended:?}, processes gone {gone:?} (refresh interval {}s)",
            TTL * 8 / 10
        );
        assert!(ended <= Duration::from_secs(TTL * 8 / 10 + 3), "not within one refresh interval: {ended:?}");
        let l = log();
        let line =
            l.lines().find(|l| l.contains(&format!("session {} ended", first.id))).unwrap_or_else(|| panic!("{l}"));
        assert!(
            line.contains("user=alice") && line.contains("invalid_grant") && line.contains("sub=u-alice"),
            "{line}"
        );
        let out = ssh.join().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("IN-SESSION"), "{out:?}");
        // `helperd sessions` (the CLI) lists nothing.
        let cli = std::process::Command::new(helperd_bin())
            .args(["--config".as_ref(), env.config.as_os_str(), "sessions".as_ref()])
            .output()
            .unwrap();
        let cli = String::from_utf8_lossy(&cli.stdout);
        assert!(!cli.contains("alice"), "{cli}");
    });
}
