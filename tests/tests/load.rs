//! Issue 7 (load): 200 concurrent PAM authentications through the real module
//! against one helperd — all correct; helperd's RSS under that load; no fd leak
//! after 10,000 requests. Numbers are printed (for the notes), not timed.

use integration::*;
use oidc_core::ipc::{call, Request, Response};
use std::time::Duration;

fn status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn two_hundred_parallel_logins_and_no_fd_leak() {
    let idp = Idp::start();
    let env = Env::new("", &Env::issuer_toml(&idp.issuer(), "\"RS256\""));
    let cfg = std::fs::read_to_string(&env.config).unwrap().replace("ipc_timeout_ms = 1500", "ipc_timeout_ms = 10000");
    std::fs::write(&env.config, cfg).unwrap();
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let users: Vec<String> = (0..20).map(|i| format!("load{i}")).collect();
    let tokens: Vec<String> = users.iter().map(|u| idp.token("host-login", u)).collect();
    let fds_before = fds(h.pid());
    let rss_before = status(h.pid(), "VmRSS:");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<PamRun> = std::thread::scope(|s| {
        // pam_wrapper gives each process a config dir /tmp/pam.X with a one-character
        // X (62 at most), so at most 40 pamtesters run at once; 200 in all.
        let (next, users, tokens, env) = (&next, &users, &tokens, &env);
        let handles: Vec<_> = (0..40)
            .map(|_| {
                s.spawn(move || {
                    let mut runs = vec![];
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if i >= 200 {
                            return runs;
                        }
                        runs.push(env.pam(&users[i % 20], &tokens[i % 20]));
                    }
                })
            })
            .collect();
        let peak = (0..20)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                status(h.pid(), "VmRSS:")
            })
            .max()
            .unwrap();
        eprintln!("helperd VmRSS: {rss_before} kB before, peak {peak} kB during 200 logins (40 in flight)");
        assert!(peak < 20 * 1024, "helperd RSS {peak} kB");
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<_> = results.iter().filter(|r| !r.ok).collect();
    assert!(failed.is_empty(), "{} of 200 failed; first:\n{}", failed.len(), failed[0].stderr);
    for r in &results {
        r.assert_allowed();
    }
    let hwm = status(h.pid(), "VmHWM:");
    eprintln!("helperd VmHWM after the load: {hwm} kB");
    assert_eq!(env.store().users.len(), 20);
    // 10,000 more requests: no descriptor is left behind.
    for _ in 0..10_000 {
        assert!(matches!(call(&env.socket(), &Request::Ping, Duration::from_secs(2)), Ok(Response::Pong { .. })));
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds_after = fds(h.pid());
    eprintln!("helperd fds: {fds_before} before, {fds_after} after 10,200 requests");
    assert!(fds_after <= fds_before + 2, "fd leak: {fds_before} -> {fds_after}");
}
