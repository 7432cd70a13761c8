use super::pending::MAX_PENDING;
use super::*;

fn claims(n: usize) -> SessionClaims {
    SessionClaims {
        issuer: "https://idp".into(),
        sub: format!("s{n}"),
        account: format!("u{n}"),
        identity: format!("u{n}"),
        groups: vec![],
        idp_groups: vec![],
        jti: None,
        sid: None,
        exp: 0,
        iat: 0,
        auth_time: None,
        acr: None,
        verified_at: 0,
        identity_id: String::new(),
    }
}

fn info(id: u64, uid: u32, pid: i32, pid_start: u64) -> SessionInfo {
    SessionInfo {
        id,
        uid,
        pid,
        pid_start,
        tty: String::new(),
        rhost: String::new(),
        opened: 0,
        claims: claims(id as usize),
        aws: None,
        ends_at: None,
        detached: false,
    }
}

/// The one rule for "the session of a process", for claims (real uid)
/// and AWS credentials (effective uid; root: any).
#[test]
fn the_session_of_a_process_tree() {
    let live = [info(1, 1000, 50, 7), info(2, 2000, 60, 8)];
    // 99 (start 1) ← 60 (bob's session) ← 50 (alice's session) ← 1
    let tree = [(99, 1), (60, 8), (50, 7), (1, 0)];
    let id = |uid| session_in(&live, &tree, uid).map(|s| s.id);
    assert_eq!(id(Some(2000)), Some(2), "the nearest session of the uid");
    assert_eq!(id(Some(1000)), Some(1), "further up, for alice");
    assert_eq!(id(Some(3000)), None);
    assert_eq!(id(None), Some(2), "root: the nearest session, any uid");
    assert_eq!(session_in(&live, &[(99, 1), (60, 9), (1, 0)], Some(2000)).map(|s| s.id), None, "pid reused");
    assert_eq!(session_in(&live, &[(99, 1), (1, 0)], None).map(|s| s.id), None, "outside any session");
    assert!(inside_other_uid(&live, &tree, 3000) && !inside_other_uid(&live, &[(60, 8)], 2000));
}

/// Running, not a zombie, and still the same process.
fn running((pid, start): end::Proc) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).unwrap_or("");
    procfs::start_time(pid) == Some(start) && state != "Z"
}

/// Issue 15 (1): with `on_expiry = "end"`, a session whose deadline passed
/// is dropped at once (no claims, no AWS credentials) and the process tree
/// it bound gets SIGHUP, then SIGKILL for what ignores it — and a session
/// of the same uid whose token has not run out is untouched.
#[test]
fn an_expired_session_ends_its_tree_and_no_other() {
    let clock = crate::clock::FakeClock::at(1_000_000);
    let s = Sessions::new(clock.clone(), Duration::from_secs(5));
    let spawn = |script: &str| crate::testing::spawn(&["sh", "-c", script]);
    // a ignores SIGHUP, and so do its children: only SIGKILL ends them.
    let mut a = spawn("trap '' HUP; sleep 300 & sleep 300 & wait");
    let mut b = spawn("sleep 300 & wait");
    let root = |c: &std::process::Child| (c.id() as i32, procfs::start_time(c.id() as i32).unwrap());
    let (ra, rb) = (root(&a), root(&b));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (end::tree(&[ra], None).len() < 3 || end::tree(&[rb], None).len() < 2) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let tree_a = end::tree(&[ra], None);
    let tree_b = end::tree(&[rb], None);
    assert_eq!((tree_a.len(), tree_b.len()), (3, 2), "{tree_a:?} {tree_b:?}");
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let open = |pid: i32, ends: Option<i64>| {
        let id = s.add_pending(claims(pid as usize), None).unwrap();
        s.open(&id, uid, pid, "", "", |_| ends).unwrap().0
    };
    let (ida, idb) = (open(ra.0, Some(1_000_010)), open(rb.0, None));
    assert_eq!(s.tick(), Vec::<u64>::new(), "not yet");
    clock.advance(Duration::from_secs(10));
    assert_eq!(s.tick(), vec![ida]);
    assert_eq!(s.ids(), vec![idb], "dropped at once");
    let me = crate::server::Peer { uid, pid: ra.0, start: Some(ra.1) };
    assert!(s.claims_for(&me).0.is_none() && s.for_credentials(&me).is_none());
    std::thread::sleep(Duration::from_millis(300));
    assert!(tree_a.iter().all(|p| running(*p)), "SIGHUP is ignored here");
    clock.advance(Duration::from_secs(5));
    s.tick();
    assert!(a.wait().unwrap().code().is_none(), "killed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tree_a.iter().any(|p| running(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!tree_a.iter().any(|p| running(*p)), "the whole tree is gone");
    assert!(tree_b.iter().all(|p| running(*p)) && b.try_wait().unwrap().is_none(), "the other session lives");
    end::signal(&tree_b, nix::sys::signal::Signal::SIGKILL);
    b.wait().unwrap();
}

/// Issue 15: a restart of helperd (a package upgrade) forgets no live
/// session: they are taken in from `sessions.json` if their opening
/// process still runs, so their deadline and a lock still end them.
#[test]
fn live_sessions_survive_a_restart_of_helperd() {
    let dir = crate::testing::temp_dir("sessions-file");
    let file = dir.join(FILE);
    let clock = crate::clock::FakeClock::at(1_000_000);
    let mut live = crate::testing::sleeper(60);
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let first = Sessions::new(clock.clone(), Duration::from_secs(1)).persisted(file.clone());
    for (child, ends) in [(&live, Some(1_000_010)), (&dead, None)] {
        let id = first.add_pending(claims(child.id() as usize), None).unwrap();
        first.open(&id, uid, child.id() as i32, "", "", |_| ends).unwrap();
    }
    assert_eq!(first.ids(), vec![1, 2]);
    drop(first);
    dead.wait().unwrap();
    let again = Sessions::new(clock.clone(), Duration::from_secs(1)).persisted(file.clone());
    assert_eq!(again.ids(), vec![1], "the session whose process is gone is not taken in");
    assert_eq!(again.list()[0].ends_at, Some(1_000_010), "with its deadline");
    let id = again.add_pending(claims(7), None).unwrap();
    assert_eq!(again.open(&id, uid, live.id() as i32, "", "", |_| None).unwrap().0, 3, "ids are never reused");
    clock.advance(Duration::from_secs(10));
    assert_eq!(again.tick(), vec![1], "its deadline ends it after the restart");
    assert!(live.wait().unwrap().code().is_none(), "killed");
    again.reap();
    let saved: Saved = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(saved.sessions.is_empty() && saved.next_id == 3, "the file follows");
}

/// Review finding 1: `nohup cmd & exit` — the session's opener ends, a
/// process it started runs on, reparented. The session is detached, not
/// dropped: no claims, but its deadline (and a lock) still end that process.
#[test]
fn a_process_left_behind_by_a_logout_still_ends_at_the_deadline() {
    let clock = crate::clock::FakeClock::at(1_000_000);
    let s = Sessions::new(clock.clone(), Duration::from_secs(1));
    let mut opener = crate::testing::spawn(&["sh", "-c", "sleep 300 & sleep 1"]);
    let op = (opener.id() as i32, procfs::start_time(opener.id() as i32).unwrap());
    let t0 = std::time::Instant::now();
    while end::tree(&[op], None).len() < 3 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let id = s.add_pending(claims(1), None).unwrap();
    s.open(&id, uid, op.0, "", "", |_| Some(1_000_010)).unwrap();
    let left: Vec<end::Proc> = s.tracked.lock().unwrap()[&1]
        .seen
        .iter()
        .copied()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/cmdline", p.0)).unwrap_or_default().starts_with("sleep\x00300")
        })
        .collect();
    assert_eq!(left.len(), 1, "the background sleep is followed");
    opener.wait().unwrap(); // the "logout": the opener is gone
    s.reap();
    let list = s.list();
    assert!(list.len() == 1 && list[0].detached, "detached, not dropped: {list:?}");
    let peer = crate::server::Peer { uid, pid: left[0].0, start: Some(left[0].1) };
    assert!(s.claims_for(&peer).0.is_none() && s.for_credentials(&peer).is_none(), "no claims, no credentials");
    clock.advance(Duration::from_secs(10));
    assert_eq!(s.tick(), vec![1], "the deadline still ends it");
    let t0 = std::time::Instant::now();
    while running(left[0]) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!running(left[0]), "the process left behind is gone");
}

#[test]
fn pending_logins_are_capped_oldest_first() {
    let s = Sessions::new(Arc::new(crate::clock::SystemClock), Duration::from_secs(5));
    let ids: Vec<String> = (0..MAX_PENDING + 5).map(|n| s.add_pending(claims(n), None).unwrap()).collect();
    let p = s.pending.lock().unwrap();
    assert_eq!(p.by_id.len(), MAX_PENDING);
    assert!(p.get(&ids[4], s.clock.mono()).is_none() && p.get(&ids[5], s.clock.mono()).is_some());
    assert!(p.get(&ids[MAX_PENDING + 4], s.clock.mono()).is_some());
    drop(p);
    assert_eq!(s.pending_account(&ids[MAX_PENDING + 4]).as_deref(), Some(format!("u{}", MAX_PENDING + 4).as_str()));
}

/// Issue 12 (5): the peer is pinned at accept: a process whose pid now
/// names another process (it exited; the pid was reused) gets nothing.
#[test]
fn a_reused_pid_gets_no_claims_or_credentials() {
    let s = Sessions::new(Arc::new(crate::clock::SystemClock), Duration::from_secs(5));
    let me = std::process::id() as i32;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let id = s.add_pending(claims(1), None).unwrap();
    s.open(&id, uid, me, "", "", |_| None).unwrap();
    let peer = |start| crate::server::Peer { uid, pid: me, start };
    assert!(s.claims_for(&peer(procfs::start_time(me))).0.is_some(), "the live process, pinned correctly");
    assert!(s.for_credentials(&peer(procfs::start_time(me))).is_some());
    let other = procfs::start_time(me).map(|t| t + 1);
    let (c, why) = s.claims_for(&peer(other));
    assert!(c.is_none() && why.contains("pid was reused"), "{why}");
    assert!(s.for_credentials(&peer(other)).is_none());
    // A real process that connected and exited: its pid no longer names it.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = crate::server::Peer { uid, pid: child.id() as i32, start: procfs::start_time(child.id() as i32) };
    child.wait().unwrap();
    assert!(s.claims_for(&gone).0.is_none());
}

/// Review finding 11: a restart of helperd between SIGHUP and SIGKILL does
/// not lose the SIGKILL owed to a process that ignores SIGHUP.
#[test]
fn a_sigkill_owed_survives_a_restart() {
    let dir = crate::testing::temp_dir("sessions-dying");
    let file = dir.join(FILE);
    let clock = crate::clock::FakeClock::at(1_000_000);
    let mut stubborn = std::process::Command::new("sh").args(["-c", "trap '' HUP; sleep 300 & wait"]).spawn().unwrap();
    let op = (stubborn.id() as i32, procfs::start_time(stubborn.id() as i32).unwrap());
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let first = Sessions::new(clock.clone(), Duration::from_secs(60)).persisted(file.clone());
    let id = first.add_pending(claims(1), None).unwrap();
    first.open(&id, uid, op.0, "", "", |_| Some(1_000_001)).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(first.tick(), vec![1], "ended: SIGHUP (ignored), SIGKILL owed in 60 s");
    drop(first); // helperd restarts
    let again = Sessions::new(clock.clone(), Duration::from_secs(60)).persisted(file.clone());
    again.tick();
    assert!(stubborn.wait().unwrap().code().is_none(), "killed after the restart");
}
