//! The snapshot reader over in-memory bytes: round trips, the pre-login rule,
//! and corruption (every truncation, 20,000 random flips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_snapshot::format::{build, build_with, glob, id_hash, is_reserved, skeleton, Group, IdKey, Prelogin, User};
use nss_snapshot::reader::Snapshot;

fn sample(n: u32) -> (Vec<User>, Vec<Group>) {
    let users: Vec<User> = (0..n)
        .map(|i| User {
            name: format!("user{i}"),
            uid: 200_000 + i,
            gid: 200_000 + i,
            gecos: format!("User {i}"),
            dir: format!("/home/user{i}"),
            shell: "/bin/bash".into(),
            groups: vec![300_000, 300_001 + (i % 3)],
        })
        .collect();
    let mut groups: Vec<Group> = (0..4)
        .map(|g| Group {
            name: format!("team{g}"),
            gid: 300_000 + g,
            members: (0..n.min(5)).map(|i| format!("user{i}")).collect(),
        })
        .collect();
    groups.push(Group { name: "empty".into(), gid: 399_999, members: vec![] });
    (users, groups)
}

#[test]
fn round_trip_lookups() {
    let (u, g) = sample(100);
    let snap = build(&u, &g, 7).unwrap();
    let s = Snapshot::parse(&snap).unwrap();
    assert_eq!((s.n_users, s.n_groups, s.generation), (100, 5, 7));
    let x = s.user_by_name(b"user42").unwrap().unwrap();
    assert_eq!((x.uid, x.gid, &x.dir()[..], x.shell), (200_042, 200_042, &b"/home/user42"[..], &b"/bin/bash"[..]));
    assert_eq!(x.groups().unwrap().collect::<Vec<_>>(), [300_000, 300_001]);
    assert_eq!(s.user_by_uid(200_099).unwrap().unwrap().name, b"user99");
    assert!(s.user_by_name(b"nobody").unwrap().is_none());
    assert!(s.user_by_uid(5).unwrap().is_none());
    let t = s.group_by_name(b"team2").unwrap().unwrap();
    assert_eq!(t.members().collect::<Vec<_>>(), [&b"user0"[..], b"user1", b"user2", b"user3", b"user4"]);
    assert_eq!(s.group_by_gid(399_999).unwrap().unwrap().n_members(), 0);
    let mut cur = 0;
    let mut names = vec![];
    while let Some((u, next)) = s.user_next(cur).unwrap() {
        names.push(u.name.to_vec());
        cur = next;
    }
    assert_eq!(names.len(), 100);
    let mut cur = 0;
    let mut n = 0;
    while let Some((_, next)) = s.group_next(cur).unwrap() {
        n += 1;
        cur = next;
    }
    assert_eq!(n, 5);
}

#[test]
fn empty_snapshot_and_bad_input() {
    let snap = build(&[], &[], 0).unwrap();
    let s = Snapshot::parse(&snap).unwrap();
    assert!(s.user_by_name(b"x").unwrap().is_none());
    assert!(s.user_next(0).unwrap().is_none());
    assert!(Snapshot::parse(&[]).is_err());
    assert!(Snapshot::parse(&snap[..50]).is_err());
    let (u, g) = sample(3);
    let mut dup = u.clone();
    dup.push(u[0].clone());
    assert!(build(&dup, &g, 0).is_err());
    let mut bad = u.clone();
    bad[0].name = "a:b".into();
    assert!(build(&bad, &g, 0).is_err());
}

/// Every truncation and many byte flips: never a panic, never a wrong answer.
#[test]
fn corruption_never_crashes_or_lies() {
    let (u, g) = sample(50);
    let good = build(&u, &g, 1).unwrap();
    let check = |buf: &[u8]| {
        let Ok(s) = Snapshot::parse(buf) else { return };
        for (i, user) in u.iter().enumerate() {
            if let Ok(Some(x)) = s.user_by_name(user.name.as_bytes()) {
                assert_eq!((x.uid, x.name), (user.uid, user.name.as_bytes()), "wrong answer, user {i}");
                assert_eq!((x.gid, x.gecos), (user.gid, user.gecos.as_bytes()), "wrong answer, user {i}");
                assert_eq!((x.dir(), x.shell), (user.dir.as_bytes().to_vec(), user.shell.as_bytes()));
                if let Ok(gids) = x.groups() {
                    assert_eq!(gids.collect::<Vec<_>>(), user.groups);
                }
            }
            if let Ok(Some(x)) = s.user_by_uid(user.uid) {
                assert_eq!(x.name, user.name.as_bytes());
            }
        }
        for grp in &g {
            if let Ok(Some(x)) = s.group_by_gid(grp.gid) {
                assert_eq!(x.name, grp.name.as_bytes());
                let m: Vec<_> = x.members().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
                assert_eq!(m, grp.members);
            }
        }
        let mut cur = 0;
        for _ in 0..1000 {
            match s.user_next(cur) {
                Ok(Some((_, n))) => cur = n,
                _ => break,
            }
        }
    };
    for cut in 0..good.len() {
        check(&good[..cut]);
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = good.clone();
        let flips = 1 + (seed % 4) as usize;
        for k in 0..flips {
            let pos = ((seed >> (8 * k)) as usize).wrapping_mul(2_654_435_761) % b.len();
            b[pos] ^= 1 << ((seed >> 40) % 8);
        }
        check(&b);
    }
}

#[test]
fn prelogin_names_resolve_to_their_hash_uid() {
    let (u, g) = sample(3);
    let rule = Prelogin {
        key_file: "/etc/pam-oidc/id.key".into(),
        uid_min: 1_073_741_824,
        uid_max: 1_610_612_735,
        home: "/home/{name}".into(),
        shell: "/bin/bash".into(),
        patterns: vec!["dev-*".into(), "ci?".into(), "*".into()],
    };
    let snap = build_with(&u, &g, Some(&rule), 1).unwrap();
    let s = Snapshot::parse(&snap).unwrap();
    let key = || Some(IdKey::from_bytes(*b"fleet-key-16byte"));
    let p = s.prelogin_user(b"dev-zoe", |path| {
        assert_eq!(path, b"/etc/pam-oidc/id.key", "the key file the rule names");
        key()
    });
    let p = p.unwrap().unwrap();
    assert_eq!(
        p.uid,
        id_hash(&IdKey::from_bytes(*b"fleet-key-16byte"), b"user", b"dev-zoe", 1_073_741_824, 1_610_612_735)
    );
    assert_eq!(p.home_template, b"/home/{name}");
    assert!(s.prelogin_user(b"ci1", |_| key()).unwrap().is_some());
    assert!(s.prelogin_user(b"dev-Zoe", |_| key()).unwrap().is_none(), "not a portable name");
    // Even a `*` pattern (config refuses it) never resolves a reserved name.
    for n in ["admin", "wheel", "uuidd", "systemd-network", "_apt", "docker"] {
        assert!(s.prelogin_user(n.as_bytes(), |_| key()).unwrap().is_none(), "{n}");
    }
    // A caller that cannot read the key (not root) resolves nothing before login.
    assert!(s.prelogin_user(b"dev-zoe", |_| None).unwrap().is_none());
    assert!(Snapshot::parse(&build(&u, &g, 1).unwrap())
        .unwrap()
        .prelogin_user(b"dev-zoe", |_| key())
        .unwrap()
        .is_none());
}

#[test]
fn reserved_names_in_any_case_or_punctuation() {
    for n in ["admin", "Admin", "ADMIN", "ad-min", "a.d.m.i.n", "wheel", "Docker", "sudo", "root", "systemd-x", "_apt"]
    {
        assert!(is_reserved(n.as_bytes()), "{n}");
    }
    for n in ["alice", "ops-admins", "devs", "deploy"] {
        assert!(!is_reserved(n.as_bytes()), "{n}");
    }
    assert_eq!(skeleton(b"OPS Admins"), b"opsadmins");
}

#[test]
fn glob_and_hash_are_stable() {
    assert!(glob(b"*", b"anything"));
    assert!(glob(b"a*b?d", b"axxbcd"));
    assert!(!glob(b"a*b?d", b"axxbd"));
    assert!(glob(b"*.ext", b"jo.ext"));
    assert!(!glob(b"", b"x"));
    // The fleet contract: SipHash-2-4 (the reference vector: key 00..0f,
    // message 00..0e), and these values must never change.
    let k = IdKey::from_bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    let msg: Vec<u8> = (0u8..15).collect();
    #[allow(deprecated)]
    let mut h = core::hash::SipHasher::new_with_keys(
        u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
        u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
    );
    core::hash::Hasher::write(&mut h, &msg);
    assert_eq!(core::hash::Hasher::finish(&h), 0xa129_ca61_49be_45e5, "SipHash-2-4 reference vector");
    assert_eq!(id_hash(&k, b"user", b"alice", 0x4000_0000, 0x5FFF_FFFF), 1_249_110_331);
    assert_eq!(id_hash(&k, b"user", b"alice", 100, 100), 100);
    assert_ne!(id_hash(&k, b"user", b"alice", 0, u32::MAX - 1), id_hash(&k, b"group", b"alice", 0, u32::MAX - 1));
    assert!(IdKey::parse(b"00").is_err());
    assert!(IdKey::parse(&[b'0'; 32]).is_err(), "all zero");
    assert!(IdKey::parse(b"000102030405060708090a0b0c0d0e0f\n").is_ok());
}

/// Issue 12 (11): the pre-login rule record is checksummed like every other
/// record: no single-bit flip in it ever yields a wrong uid.
#[test]
fn prelogin_rule_flips_never_give_a_wrong_uid() {
    let (u, g) = sample(3);
    let rule = Prelogin {
        key_file: "/etc/pam-oidc/id.key".into(),
        uid_min: 1_073_741_824,
        uid_max: 1_610_612_735,
        home: "/home/{name}".into(),
        shell: "/bin/bash".into(),
        patterns: vec!["dev-*".into()],
    };
    let good = build_with(&u, &g, Some(&rule), 1).unwrap();
    let key = || Some(IdKey::from_bytes(*b"fleet-key-16byte"));
    let want = Snapshot::parse(&good).unwrap().prelogin_user(b"dev-zoe", |_| key()).unwrap().unwrap().uid;
    let off = u32::from_le_bytes(good[92..96].try_into().unwrap()) as usize;
    let len = u32::from_le_bytes(good[off..off + 4].try_into().unwrap()) as usize;
    let (mut flips, mut wrong, mut refused) = (0, 0, 0);
    for byte in off..off + len {
        for bit in 0..8 {
            let mut b = good.clone();
            b[byte] ^= 1 << bit;
            flips += 1;
            let Ok(s) = Snapshot::parse(&b) else { continue };
            match s.prelogin_user(b"dev-zoe", |_| key()) {
                Ok(Some(p)) if p.uid != want => wrong += 1,
                Ok(Some(_)) => {}
                _ => refused += 1,
            }
        }
    }
    assert_eq!(wrong, 0, "{wrong} of {flips} flips gave a wrong uid");
    assert!(refused > flips / 2, "{refused} of {flips} refused");
}

/// At every table fill (load factor 0.4–0.8 as the count crosses powers of
/// two), every user and group is found by name and id, and absent keys are not.
#[test]
fn every_key_found_at_every_table_fill() {
    for n in [1u32, 7, 8, 100, 819, 820, 1638, 1639, 5000] {
        let (u, _) = sample(n);
        let g: Vec<Group> =
            (0..n / 3).map(|i| Group { name: format!("grp{i}"), gid: 400_000 + i, members: vec![] }).collect();
        let snap = build(&u, &g, 1).unwrap();
        let s = Snapshot::parse(&snap).unwrap();
        for i in 0..n {
            assert_eq!(s.user_by_name(format!("user{i}").as_bytes()).unwrap().unwrap().uid, 200_000 + i);
            assert_eq!(s.user_by_uid(200_000 + i).unwrap().unwrap().name, format!("user{i}").as_bytes());
            assert!(s.user_by_name(format!("absent{i}").as_bytes()).unwrap().is_none());
            assert!(s.user_by_uid(100_000 + i).unwrap().is_none());
        }
        for i in 0..n / 3 {
            assert_eq!(s.group_by_name(format!("grp{i}").as_bytes()).unwrap().unwrap().gid, 400_000 + i);
            assert_eq!(s.group_by_gid(400_000 + i).unwrap().unwrap().name, format!("grp{i}").as_bytes());
        }
    }
}
