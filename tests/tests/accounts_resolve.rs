//! Issue 3: accounts served by nss_oidc after (and before) login, through real
//! glibc in a private mount namespace, with helperd as the only writer.

use integration::nss::NssNs;
use integration::*;
use oidc_core::{ipc_call, Request, Response};
use serde_json::json;
use std::time::Duration;

const ALGS: &[&str] = &["RS256", "ES256"];

/// `extra`: more config (e.g. `[accounts]` keys).
fn env_for(idp: &Idp, extra: Config) -> Env {
    let env = Env::new(extra.issuer(Issuer::standard(&idp.issuer(), ALGS).map_group("ops-admins", "sudo")));
    let roster = env.dir.0.join("roster");
    std::fs::write(&roster, "# names that resolve before their first login\nzoe\n").unwrap();
    env.edit(|c| c.accounts("prelogin_patterns", ["dev-*"]).accounts("roster_file", roster));
    env
}

fn uid_of(line: &str) -> u32 {
    line.split(':').nth(2).unwrap().parse().unwrap()
}

#[test]
fn logged_in_and_prelogin_users_resolve_through_glibc() {
    let idp = Idp::start();
    let env = env_for(&idp, Config::new());
    let _h = env.start_helperd();
    let ns = NssNs::at(&env.snapshot(), "files oidc", "files [SUCCESS=merge] oidc");

    // Before any login: pattern and roster names resolve, others do not.
    let (ok, pre) = ns.stdout(&["getent", "passwd", "dev-newbie"]);
    assert!(ok, "pattern name resolves before first login");
    let pre_uid = uid_of(&pre);
    assert!(pre.ends_with(":/home/dev-newbie:/bin/bash\n"), "{pre}");
    assert!(ns.stdout(&["getent", "passwd", "zoe"]).0, "roster name resolves");
    assert!(!ns.stdout(&["getent", "passwd", "mallory-x"]).0, "outside the namespace: unknown");
    assert!(!ns.stdout(&["getent", "passwd", "alice"]).0, "alice has not logged in yet");

    // alice logs in: user, private group, IdP groups and the mapped local group.
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    let (ok, pw) = ns.stdout(&["getent", "passwd", "alice"]);
    assert!(ok);
    let uid = uid_of(&pw);
    assert_eq!(uid, oidc_core::uid_for(&oidc_core::Accounts::default(), &Env::id_key(), "alice"));
    assert_eq!(pw, format!("alice:*:{uid}:{uid}:alice:/home/alice:/bin/bash\n"));
    assert_eq!(ns.stdout(&["getent", "passwd", &uid.to_string()]).1, pw);
    let (_, devs) = ns.stdout(&["getent", "group", "devs"]);
    assert!(devs.starts_with("devs:*:") && devs.ends_with(":alice\n"), "{devs}");
    let devs_gid = devs.split(':').nth(2).unwrap();
    let (_, id) = ns.stdout(&["id", "alice"]);
    assert!(id.starts_with(&format!("uid={uid}(alice) gid={uid}(alice) groups={uid}(alice),")), "{id}");
    assert!(id.contains(&format!("{devs_gid}(devs)")) && id.contains("27(sudo)"), "{id}");
    // The local group is extended (merge), not shadowed.
    assert_eq!(ns.stdout(&["getent", "group", "sudo"]).1, "sudo:x:27:alice\n");
    // Enumeration lists local and OIDC users.
    let (_, all) = ns.stdout(&["getent", "passwd"]);
    assert!(all.contains("root:x:0:0") && all.contains("alice:*:") && all.contains("zoe:*:"), "{all}");
    let (_, groups) = ns.stdout(&["getent", "group"]);
    assert!(groups.contains("devs:*:") && groups.contains("alice:*:"), "{groups}");

    // dev-newbie logs in: keeps the uid it resolved to before.
    env.pam("dev-newbie", &idp.token("host-login", "dev-newbie")).assert_allowed();
    let (_, post) = ns.stdout(&["getent", "passwd", "dev-newbie"]);
    assert_eq!(uid_of(&post), pre_uid);
    assert!(ns.stdout(&["getent", "passwd", &pre_uid.to_string()]).0, "now resolvable by uid too");
}

#[test]
fn two_independent_state_dirs_agree_on_ids() {
    let idp = Idp::start();
    let (e1, e2) = (env_for(&idp, Config::new()), env_for(&idp, Config::new()));
    let (_h1, _h2) = (e1.start_helperd(), e2.start_helperd());
    for env in [&e1, &e2] {
        env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    }
    e2.pam("bob", &idp.token("host-login", "bob")).assert_allowed();
    e1.pam("bob", &idp.token("host-login", "bob")).assert_allowed();
    let (s1, s2) = (e1.store(), e2.store());
    for name in ["alice", "bob"] {
        let u1 = s1.users.iter().find(|u| u.name == name).unwrap();
        let u2 = s2.users.iter().find(|u| u.name == name).unwrap();
        assert_eq!(u1.uid, u2.uid, "{name}");
    }
    let gid = |s: &oidc_core::Store, g: &str| s.groups.iter().find(|x| x.name == g).unwrap().gid;
    assert_eq!(gid(&s1, "devs"), gid(&s2, "devs"));
}

#[test]
fn collisions_and_local_accounts_are_refused_with_a_log_line() {
    let idp = Idp::start();
    let alice_uid = oidc_core::uid_for(&oidc_core::Accounts::default(), &Env::id_key(), "alice");
    let env = env_for(&idp, Config::new().accounts("pinned_uids", Table::new().set("erin", alice_uid)));
    let h = env.start_helperd();
    // A local account's name is never taken over: the module leaves it to the
    // other modules (PAM_IGNORE; here there are none, so the login fails).
    let r = env.pam("daemon", &idp.token("host-login", "daemon"));
    assert!(!r.ok && !r.stderr.contains("result=allow"), "{}", r.stderr);
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    // Another sub presenting alice's name.
    let mut c = idp.claims("alice", "host-login");
    c["sub"] = json!("u-impostor");
    let r = env.pam("alice", &idp.sign(json!({"alg": "RS256"}), c));
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("name-taken"), "{}", r.stderr);
    // A uid already held by another identity.
    let r = env.pam("erin", &idp.token("host-login", "erin"));
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("uid-collision") && r.stderr.contains("held by alice"), "{}", r.stderr);
    let log = std::fs::read_to_string(&h.log).unwrap();
    for code in ["name-taken", "uid-collision"] {
        assert!(log.contains(&format!("account refused code={code}")), "{code}: {log}");
    }
    // The refused identities were never written.
    let names: Vec<String> = env.store().users.into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["alice"]);
}

#[test]
fn role_account_login_names_the_real_identity() {
    let idp = Idp::start();
    let env = env_for(&idp, Config::new());
    // The rule names the host group (ops-admins is mapped to sudo here) and its issuer.
    env.edit(|c| c.role_account(RoleAccount::new("deploy", &idp.issuer()).set("group", "sudo")));
    let _h = env.start_helperd();
    let r = env.pam("deploy", &idp.token("host-login", "alice"));
    r.assert_allowed();
    let line = r.log().into_iter().find(|l| l.contains("auth result=allow")).unwrap().to_string();
    assert!(
        line.contains("user=deploy") && line.contains("sub=u-alice") && line.contains("role account deploy"),
        "{line}"
    );
    env.pam("deploy", &idp.token("host-login", "bob")).assert_denied("no-account-rule");
}

#[test]
fn only_root_may_report_logins() {
    let idp = Idp::start();
    let env = env_for(&idp, Config::new());
    let _h = env.start_helperd();
    let frame = r#"{"v":1,"op":"login","event":{"issuer":"x","sub":"s","name":"eve","groups":[],"uid_claim":null,"gecos":""},"claims":{"issuer":"x","sub":"s","account":"eve","identity":"eve","groups":[],"jti":null,"exp":9999999999,"iat":1,"auth_time":null,"acr":null}}"#;
    let py = format!(
        "import socket,struct;s=socket.socket(socket.AF_UNIX);s.connect('{}');b=b'{}';s.sendall(struct.pack('>I',len(b))+b);print(s.recv(65536)[4:].decode())",
        env.socket().display(),
        frame
    );
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", &py])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("permission-denied"), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(env.store().users.is_empty());
}

#[test]
fn sigkill_at_any_moment_leaves_a_consistent_store_and_snapshot() {
    let idp = Idp::start();
    let env = env_for(&idp, Config::new());
    let mut admitted = 0;
    for round in 0..6u64 {
        let h = env.start_helperd();
        let killer = {
            let pid = h.pid() as i32;
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40 + 37 * round));
                unsafe { libc::kill(pid, libc::SIGKILL) };
            })
        };
        for i in 0..400 {
            let req = login_request(
                &idp.issuer(),
                &format!("s-{round}-{i}"),
                &format!("u{round}x{i}"),
                &[format!("team{}", i % 7)],
                "",
            );
            match ipc_call(&env.socket(), &req, Duration::from_secs(2)) {
                Ok(Response::Admitted { .. }) => admitted += 1,
                _ => break,
            }
        }
        killer.join().unwrap();
        drop(h);
        // Whatever moment the kill hit: both files parse, and agree.
        let store = env.store();
        let snap = std::fs::read(env.snapshot()).unwrap();
        let s = nss_snapshot::reader::Snapshot::parse(&snap).expect("snapshot parses");
        for u in &store.users[..store.users.len().saturating_sub(1)] {
            assert!(s.user_by_name(u.name.as_bytes()).unwrap().is_some(), "{} missing from the snapshot", u.name);
        }
        let leftovers: Vec<_> =
            std::fs::read_dir(env.dir.0.join("state")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(
            leftovers.iter().all(|n| {
                ["accounts.json", "replay.log", "replay.d", "sessions.json"].contains(&n.to_string_lossy().as_ref())
                    || n.to_string_lossy().starts_with(".accounts.json.tmp")
                    || n.to_string_lossy().starts_with(".replay.log.tmp")
                    || n.to_string_lossy().starts_with(".sessions.json.tmp")
            }),
            "{leftovers:?}"
        );
    }
    assert!(admitted > 6, "logins were admitted between the kills ({admitted})");
    // A restart on the surviving state works.
    let _h = env.start_helperd();
    assert!(matches!(
        ipc_call(&env.socket(), &Request::Users { offset: 0 }, Duration::from_secs(2)),
        Ok(Response::Users { .. })
    ));
}

/// A returning user's login writes nothing; a group change rewrites the store
/// and the snapshot.
#[test]
fn only_a_change_is_written() {
    use std::os::unix::fs::MetadataExt as _;
    let idp = Idp::start();
    let env = env_for(&idp, Config::new());
    let _h = env.start_helperd();
    let store = env.dir.0.join("state/accounts.json");
    let inode = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    let login = |groups: &[&str]| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let req = login_request(&idp.issuer(), "s-rita", "rita", &groups, "Rita");
        match ipc_call(&env.socket(), &req, Duration::from_secs(5)) {
            Ok(Response::Admitted { .. }) => {}
            other => panic!("login: {other:?}"),
        }
    };
    login(&["devs"]);
    let (s1, n1) = (inode(&store), inode(&env.snapshot()));
    std::thread::sleep(Duration::from_millis(1100)); // a later second: the login time would move
    for _ in 0..3 {
        login(&["devs"]);
    }
    assert_eq!((inode(&store), inode(&env.snapshot())), (s1, n1), "a returning user's login rewrote state");
    login(&["devs", "ops"]);
    assert_ne!(inode(&store), s1, "a group change must be stored");
    assert_ne!(inode(&env.snapshot()), n1, "a group change must reach NSS");
    assert_eq!(env.store().users[0].groups, ["devs", "ops"]);
}

/// A snapshot of an older format (here 3: before user records sat on cache
/// lines), which the module refuses, is rewritten in the current format when
/// helperd starts, before it serves anything.
#[test]
fn an_older_snapshot_is_rewritten_at_start() {
    use nss_snapshot::format::{build, header_sum, HEADER_LEN, HEADER_SUM_OFFSET, VERSION};
    let idp = Idp::start();
    let env = env_for(&idp, Config::new());
    let mut old = build(&[], &[], 1).unwrap();
    old[8..12].copy_from_slice(&3u32.to_le_bytes());
    let sum = header_sum(&old[..HEADER_LEN]);
    old[HEADER_SUM_OFFSET..HEADER_SUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
    std::fs::create_dir_all(env.snapshot().parent().unwrap()).unwrap();
    std::fs::write(env.snapshot(), &old).unwrap();
    assert!(nss_snapshot::reader::Snapshot::parse(&old).is_err(), "format 3 is refused");
    let _h = env.start_helperd();
    let snap = std::fs::read(env.snapshot()).unwrap();
    assert_eq!(u32::from_le_bytes(snap[8..12].try_into().unwrap()), VERSION);
    let s = nss_snapshot::reader::Snapshot::parse(&snap).expect("rewritten in the current format");
    assert!(s.user_by_name(b"zoe").unwrap().is_some(), "the roster name is served");
}
