//! The snapshot reader over in-memory bytes: round trips, the pre-login rule,
//! and corruption (every truncation, 20,000 random flips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_oidc::format::{build, build_with, glob, id_hash, Group, Prelogin, User};
use nss_oidc::reader::Snapshot;

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
    assert_eq!((x.uid, x.gid, x.dir, x.shell), (200_042, 200_042, &b"/home/user42"[..], &b"/bin/bash"[..]));
    assert_eq!(x.groups().collect::<Vec<_>>(), [300_000, 300_001]);
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
                assert_eq!(x.groups().collect::<Vec<_>>(), user.groups);
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
        key: "fleet".into(),
        uid_min: 1_879_048_192,
        uid_max: 2_013_265_919,
        home: "/home/{name}".into(),
        shell: "/bin/bash".into(),
        patterns: vec!["dev-*".into(), "ci?".into()],
    };
    let snap = build_with(&u, &g, Some(&rule), 1).unwrap();
    let s = Snapshot::parse(&snap).unwrap();
    let p = s.prelogin_user(b"dev-zoe").unwrap().unwrap();
    assert_eq!(p.uid, id_hash(b"fleet", b"user", b"dev-zoe", 1_879_048_192, 2_013_265_919));
    assert_eq!(p.home_template, b"/home/{name}");
    assert!(s.prelogin_user(b"ci1").unwrap().is_some());
    assert!(s.prelogin_user(b"ci12").unwrap().is_none());
    assert!(s.prelogin_user(b"mallory").unwrap().is_none(), "outside the namespace");
    assert!(s.prelogin_user(b"dev-Zoe").unwrap().is_none(), "not a portable name");
    assert!(Snapshot::parse(&build(&u, &g, 1).unwrap()).unwrap().prelogin_user(b"dev-zoe").unwrap().is_none());
}

#[test]
fn glob_and_hash_are_stable() {
    assert!(glob(b"*", b"anything"));
    assert!(glob(b"a*b?d", b"axxbcd"));
    assert!(!glob(b"a*b?d", b"axxbd"));
    assert!(glob(b"*.ext", b"jo.ext"));
    assert!(!glob(b"", b"x"));
    // The fleet contract: these values must never change.
    assert_eq!(id_hash(b"pam-oidc", b"user", b"alice", 0x7000_0000, 0x77FF_FFFF), 1889952294);
    assert_eq!(id_hash(b"k", b"user", b"alice", 100, 100), 100);
}
