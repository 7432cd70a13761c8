//! User records on cache lines (format 4, issue 17): a typical user's passwd
//! part is one 64-byte line, which no record straddles; the home prefix and
//! shell most users share are kept once; the gids have their own checksum. A
//! record off a line, a length past its record, a common string the file does
//! not have and a flipped gid are refused, never answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_snapshot::format::{build, sum32, Group, User, PAD_TO};
use nss_snapshot::layout::{header, record, user_record, ALIGN, LINE, TABLE_ENTRY};
use nss_snapshot::reader::Snapshot;

fn user(i: u32) -> User {
    User {
        name: format!("user{i}"),
        uid: 200_000 + i,
        gid: 200_000 + i,
        gecos: format!("User {i}"),
        dir: format!("/home/user{i}"),
        shell: "/bin/bash".into(),
        groups: vec![300_000 + i % 10],
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn put32(b: &mut [u8], off: usize, x: u32) {
    b[off..off + 4].copy_from_slice(&x.to_le_bytes());
}

/// The offset of `name`'s record (through the reader: its name's place).
fn record_of(b: &[u8], name: &str) -> usize {
    let u = Snapshot::parse(b).unwrap().user_by_name(name.as_bytes()).unwrap().unwrap();
    u.name.as_ptr() as usize - b.as_ptr() as usize - user_record::STRINGS
}

/// The name-table slot that holds `off`.
fn slot_of(b: &[u8], off: usize) -> usize {
    let t = u32_at(b, header::USER_NAME_TABLE) as usize;
    let slots = u32_at(b, header::USER_NAME_TABLE + header::PAIR_SECOND) as usize;
    (0..slots).map(|i| t + i * TABLE_ENTRY).find(|&s| u32_at(b, s + 4) as usize == off).unwrap()
}

/// Recompute a user record's passwd checksum (as a forger would).
fn reseal(b: &mut [u8], off: usize, passwd_end: usize) {
    let sum = sum32(&b[off + record::BODY..off + passwd_end]);
    put32(b, off + record::SUM, sum);
}

#[test]
fn typical_users_take_one_line_and_long_ones_whole_lines() {
    let mut users: Vec<User> = (0..200).map(user).collect();
    users[7].gecos = "G".repeat(300);
    users[8].dir = "/srv/elsewhere".into();
    users[9].shell = "/bin/zsh".into();
    users[10].groups = (0..40).map(|g| 400_000 + g).collect();
    let b = build(&users, &[], 1).unwrap();
    let s = Snapshot::parse(&b).unwrap();
    for (i, u) in users.iter().enumerate() {
        let off = record_of(&b, &u.name);
        let len = u32_at(&b, off) as usize;
        assert_eq!(off % LINE, 0, "user {i} starts on a line");
        assert_eq!(len % LINE, 0, "user {i} fills whole lines");
        if !(7..=10).contains(&i) {
            assert_eq!(len, LINE, "user {i} is one line");
        }
        for x in [s.user_by_name(u.name.as_bytes()).unwrap().unwrap(), s.user_by_uid(u.uid).unwrap().unwrap()] {
            assert_eq!((x.name, x.uid, x.gid, x.gecos), (u.name.as_bytes(), u.uid, u.gid, u.gecos.as_bytes()));
            assert_eq!((x.dir(), x.shell), (u.dir.as_bytes().to_vec(), u.shell.as_bytes()));
            assert_eq!(x.groups().unwrap().collect::<Vec<_>>(), u.groups);
        }
    }
    // user10's 40 gids do not fit its first line, but its passwd part does.
    let off = record_of(&b, "user10");
    assert_eq!(u32_at(&b, off) as usize, 4 * LINE);
    let passwd_end = (user_record::STRINGS + 6 + 8).next_multiple_of(ALIGN);
    assert!(passwd_end <= LINE);
    assert_eq!(u32_at(&b, off + record::SUM), sum32(&b[off + record::BODY..off + passwd_end]));
}

/// A valid record copied off a line boundary, with the table pointing at it,
/// is refused: a record never straddles a line.
#[test]
fn a_record_off_a_line_is_refused() {
    let users: Vec<User> = (0..20).map(user).collect();
    let good = build(&users, &[], 1).unwrap();
    let (a, z) = (record_of(&good, "user3"), record_of(&good, "user4"));
    let mut b = good.clone();
    let to = z + ALIGN;
    let line = good[a..a + LINE].to_vec();
    b[to..to + LINE].copy_from_slice(&line);
    let slot = slot_of(&good, a);
    put32(&mut b, slot + 4, to as u32);
    let s = Snapshot::parse(&b).unwrap();
    assert!(s.user_by_name(b"user3").is_err(), "a record off a line was followed");
    // The same copy on a line is followed (the check is the alignment, nothing else).
    let mut b = good.clone();
    b[z..z + LINE].copy_from_slice(&line);
    put32(&mut b, slot + 4, z as u32);
    assert_eq!(Snapshot::parse(&b).unwrap().user_by_name(b"user3").unwrap().unwrap().uid, 200_003);
}

/// Lengths a forger writes into a line (and reseals): past the record, a
/// common string the file does not have, more gids than the record holds.
#[test]
fn hostile_lengths_in_a_line_are_refused() {
    let users: Vec<User> = (0..20).map(user).collect();
    let good = build(&users, &[], 1).unwrap();
    let off = record_of(&good, "user5");
    let passwd_end = (user_record::STRINGS + 5 + 6).next_multiple_of(ALIGN);
    let lookups = |b: &[u8]| {
        let s = Snapshot::parse(b).unwrap();
        (s.user_by_name(b"user5").map(|u| u.map(|u| u.uid)), s.user_by_uid(200_005).map(|u| u.map(|u| u.uid)))
    };
    assert_eq!(lookups(&good), (Ok(Some(200_005)), Ok(Some(200_005))));
    // A gecos running past the line (the record's end).
    let mut b = good.clone();
    b[off + user_record::GECOS_LEN..off + user_record::GECOS_LEN + 2].copy_from_slice(&200u16.to_le_bytes());
    reseal(&mut b, off, LINE);
    assert!(lookups(&b).0.is_err() && lookups(&b).1.is_err());
    // More gids than the record holds.
    let mut b = good.clone();
    put32(&mut b, off + user_record::NGROUPS, 100);
    reseal(&mut b, off, passwd_end);
    assert!(lookups(&b).0.is_err() && lookups(&b).1.is_err());
    // A record longer than the region.
    let mut b = good.clone();
    put32(&mut b, off + record::LEN, 1 << 20);
    assert!(lookups(&b).0.is_err());
    // A record length that is not whole lines.
    let mut b = good.clone();
    put32(&mut b, off + record::LEN, (LINE + ALIGN) as u32);
    assert!(lookups(&b).0.is_err());
    // The common home and shell taken away: a zero dir/shell length is then corrupt.
    let mut b = good.clone();
    put32(&mut b, header::COMMON, 0);
    let sum = nss_snapshot::format::header_sum(&b);
    put32(&mut b, header::SUM, sum);
    assert!(lookups(&b).0.is_err() && lookups(&b).1.is_err());
}

/// The gids have their own checksum: a flipped gid leaves getpw* answering
/// (they never read the gids) and makes the groups unavailable, never wrong.
#[test]
fn a_flipped_gid_is_refused_by_groups_only() {
    let users: Vec<User> = (0..20).map(user).collect();
    let good = build(&users, &[], 1).unwrap();
    let off = record_of(&good, "user5");
    let gids = (user_record::STRINGS + 5 + 6).next_multiple_of(ALIGN);
    let mut b = good.clone();
    b[off + gids] ^= 1;
    let s = Snapshot::parse(&b).unwrap();
    let u = s.user_by_name(b"user5").unwrap().unwrap();
    assert_eq!(u.uid, 200_005);
    assert!(u.groups().is_err(), "a flipped gid was answered");
    // A flipped byte in the common strings: the file is refused as a whole.
    let c = u32_at(&good, header::COMMON) as usize;
    for at in [c + record::BODY, c + u32_at(&good, c) as usize - 1] {
        let mut b = good.clone();
        b[at] ^= 0x20;
        assert!(Snapshot::parse(&b).is_err());
    }
}

/// A file of 2 MiB or more is zero-padded to whole 2 MiB (huge pages map all of
/// it); a smaller one is not. Every user is found in both.
#[test]
fn large_files_are_padded_to_whole_huge_pages() {
    let small = build(&(0..100).map(user).collect::<Vec<_>>(), &[], 1).unwrap();
    assert!(small.len() < 16 << 10, "100 users: {} bytes", small.len());
    let users: Vec<User> = (0..30_000).map(user).collect();
    let groups = [Group { name: "team".into(), gid: 300_000, members: vec!["user1".into()] }];
    let b = build(&users, &groups, 1).unwrap();
    assert!(b.len() >= PAD_TO && b.len().is_multiple_of(PAD_TO), "{} bytes", b.len());
    let s = Snapshot::parse(&b).unwrap();
    for i in (0..30_000).step_by(7) {
        assert_eq!(s.user_by_name(format!("user{i}").as_bytes()).unwrap().unwrap().uid, 200_000 + i);
        assert_eq!(s.user_by_uid(200_000 + i).unwrap().unwrap().name, format!("user{i}").as_bytes());
    }
    assert_eq!(s.group_by_gid(300_000).unwrap().unwrap().n_members(), 1);
    let mut n = 0;
    let mut cur = 0;
    while let Some((_, next)) = s.user_next(cur).unwrap() {
        n += 1;
        cur = next;
    }
    assert_eq!(n, 30_000);
}
