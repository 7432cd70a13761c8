//! libnss_oidc.so.2 through real glibc (getent, id) in a private mount namespace.

use integration::nss::NssNs;
use nss_snapshot::format::{Group, User};

fn user(name: &str, uid: u32, groups: &[u32]) -> User {
    User {
        name: name.into(),
        uid,
        gid: uid,
        gecos: format!("{name} (OIDC)"),
        dir: format!("/home/{name}"),
        shell: "/bin/bash".into(),
        groups: groups.to_vec(),
    }
}

fn fixture() -> (Vec<User>, Vec<Group>) {
    let users = vec![user("alice", 1_900_001, &[1_900_101, 1_900_102]), user("bob", 1_900_002, &[1_900_101])];
    let groups = vec![
        Group { name: "alice".into(), gid: 1_900_001, members: vec![] },
        Group { name: "bob".into(), gid: 1_900_002, members: vec![] },
        Group { name: "devs".into(), gid: 1_900_101, members: vec!["alice".into(), "bob".into()] },
        Group { name: "ops-admins".into(), gid: 1_900_102, members: vec!["alice".into()] },
    ];
    (users, groups)
}

#[test]
fn getent_and_id_through_real_glibc() {
    let ns = NssNs::new("files oidc", "files oidc");
    let (u, g) = fixture();
    ns.write(&u, &g);
    assert_eq!(
        ns.stdout(&["getent", "passwd", "alice"]).1,
        "alice:*:1900001:1900001:alice (OIDC):/home/alice:/bin/bash\n"
    );
    assert_eq!(ns.stdout(&["getent", "passwd", "1900002"]).1, "bob:*:1900002:1900002:bob (OIDC):/home/bob:/bin/bash\n");
    assert_eq!(ns.stdout(&["getent", "group", "devs"]).1, "devs:*:1900101:alice,bob\n");
    assert_eq!(ns.stdout(&["getent", "group", "1900102"]).1, "ops-admins:*:1900102:alice\n");
    let (ok, id) = ns.stdout(&["id", "alice"]);
    assert!(ok);
    assert_eq!(id, "uid=1900001(alice) gid=1900001(alice) groups=1900001(alice),1900101(devs),1900102(ops-admins)\n");
    let (ok, _) = ns.stdout(&["getent", "passwd", "nobody-such"]);
    assert!(!ok, "unknown name is unknown");
    // Enumeration: files first, then ours.
    let (_, all) = ns.stdout(&["getent", "passwd"]);
    assert!(all.contains("root:x:0:0") && all.contains("alice:*:1900001") && all.contains("bob:*:1900002"), "{all}");
    let (_, all) = ns.stdout(&["getent", "group"]);
    assert!(all.contains("devs:*:1900101:alice,bob"), "{all}");
    // A local user with the same name is served by files, never shadowed.
    let root = ns.stdout(&["getent", "passwd", "root"]).1;
    assert!(root.starts_with("root:x:0:0:"), "{root}");
}

#[test]
fn missing_or_corrupt_snapshot_is_unavailable_not_a_crash() {
    let ns = NssNs::new("files oidc", "files oidc");
    let (ok, _) = ns.stdout(&["getent", "passwd", "alice"]);
    assert!(!ok);
    assert!(ns.stdout(&["getent", "passwd", "root"]).0, "files still answer");
    let (u, g) = fixture();
    ns.write(&u, &g);
    let mut b = std::fs::read(&ns.snapshot).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    std::fs::write(&ns.snapshot, &b).unwrap();
    let o = ns.run(&["id", "alice"]);
    assert!(o.status.code().is_some(), "no signal");
    std::fs::write(&ns.snapshot, &b[..100]).unwrap();
    let o = ns.run(&["getent", "passwd"]);
    assert!(o.status.code().is_some(), "no signal");
    assert!(String::from_utf8_lossy(&o.stdout).contains("root:x:0:0"));
}
