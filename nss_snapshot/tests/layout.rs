//! The file format, pinned: the named header and record offsets against the
//! bytes a real snapshot holds, and the whole file of a fixed input against
//! digests taken before the offsets were named (the format must not move).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_snapshot::format::{build_with, fnv32, hash_id, header_sum, sum32, Group, Prelogin, User};
use nss_snapshot::layout::{
    group_record, header, record, rule_record, user_record, ALIGN, EMPTY, HEADER_LEN, MAGIC, TABLE_ENTRY, VERSION,
};

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u16_at(b: &[u8], off: usize) -> usize {
    usize::from(u16::from_le_bytes(b[off..off + 2].try_into().unwrap()))
}

fn pair(b: &[u8], field: usize) -> (usize, usize) {
    (u32_at(b, field) as usize, u32_at(b, field + header::PAIR_SECOND) as usize)
}

fn fixed() -> Vec<u8> {
    let users = [
        User {
            name: "alice".into(),
            uid: 200_001,
            gid: 200_001,
            gecos: "Alice".into(),
            dir: "/home/alice".into(),
            shell: "/bin/bash".into(),
            groups: vec![300_000, 300_001],
        },
        User {
            name: "bob".into(),
            uid: 200_002,
            gid: 200_002,
            gecos: String::new(),
            dir: "/home/bob".into(),
            shell: "/bin/sh".into(),
            groups: vec![],
        },
    ];
    let groups = [
        Group { name: "devs".into(), gid: 300_000, members: vec!["alice".into(), "bob".into()] },
        Group { name: "ops".into(), gid: 300_001, members: vec!["alice".into()] },
        Group { name: "empty".into(), gid: 300_002, members: vec![] },
    ];
    let rule = Prelogin {
        key_file: "/etc/pam-oidc/id.key".into(),
        uid_min: 100_000,
        uid_max: 199_999,
        home: "/home/{name}".into(),
        shell: "/bin/bash".into(),
        patterns: vec!["*".into(), "ci-*".into()],
    };
    build_with(&users, &groups, Some(&rule), 0x0123_4567_89ab_cdef).unwrap()
}

#[test]
fn fixed_input_gives_the_same_file() {
    let b = fixed();
    assert_eq!((b.len(), fnv32(&b), sum32(&b)), (512, 875_619_865, 1_313_203_629));
}

/// The offsets themselves: changing one changes the file format (bump VERSION).
#[test]
fn offsets_are_the_format() {
    assert_eq!(VERSION, 2);
    let h = [
        header::MAGIC,
        header::VERSION,
        header::HEADER_LEN,
        header::TOTAL_LEN,
        header::SUM,
        header::STALE,
        header::N_USERS,
        header::N_GROUPS,
        header::USERS,
        header::GROUPS,
        header::USER_NAME_TABLE,
        header::UID_TABLE,
        header::GROUP_NAME_TABLE,
        header::GID_TABLE,
        header::GENERATION,
        header::RULE,
        header::LEN,
    ];
    assert_eq!(h, [0, 8, 12, 16, 20, 24, 28, 32, 36, 44, 52, 60, 68, 76, 84, 92, 96]);
    assert_eq!((record::LEN, record::SUM, record::BODY), (0, 4, 8));
    use user_record as u;
    assert_eq!(
        [u::UID, u::GID, u::NGROUPS, u::NAME_LEN, u::GECOS_LEN, u::DIR_LEN, u::SHELL_LEN, u::GIDS],
        [8, 12, 16, 20, 22, 24, 26, 28]
    );
    assert_eq!(
        [group_record::GID, group_record::NMEM, group_record::NAME_LEN, group_record::MEMBER_LENS],
        [8, 12, 16, 20]
    );
    use rule_record as r;
    assert_eq!(
        [r::UID_MIN, r::UID_MAX, r::KEY_FILE_LEN, r::HOME_LEN, r::SHELL_LEN, r::N_PATTERNS, r::PATTERN_LENS],
        [8, 12, 16, 18, 20, 22, 24]
    );
}

/// Each named header field holds what the writer was given, and each record
/// field found through the named offsets holds its user's, group's or rule's value.
#[test]
fn header_fields_hold_what_was_written() {
    let b = fixed();
    assert_eq!(b[header::MAGIC..header::MAGIC + 8], MAGIC);
    assert_eq!(u32_at(&b, header::VERSION), VERSION);
    assert_eq!(u32_at(&b, header::HEADER_LEN) as usize, HEADER_LEN);
    assert_eq!(u32_at(&b, header::TOTAL_LEN) as usize, b.len());
    assert_eq!(u32_at(&b, header::SUM), header_sum(&b));
    assert_eq!(u32_at(&b, header::STALE), 0);
    assert_eq!((u32_at(&b, header::N_USERS), u32_at(&b, header::N_GROUPS)), (2, 3));
    let gen = u64::from_le_bytes(b[header::GENERATION..header::GENERATION + 8].try_into().unwrap());
    assert_eq!(gen, 0x0123_4567_89ab_cdef);

    // Users: the region starts right after the header; two records back to back.
    let (uoff, ulen) = pair(&b, header::USERS);
    assert_eq!(uoff, HEADER_LEN);
    let alice = &b[uoff..uoff + u32_at(&b, uoff + record::LEN) as usize];
    assert_eq!(alice.len() % ALIGN, 0);
    assert_eq!(u32_at(alice, record::SUM), sum32(&alice[record::BODY..]));
    assert_eq!((u32_at(alice, user_record::UID), u32_at(alice, user_record::GID)), (200_001, 200_001));
    assert_eq!(u32_at(alice, user_record::NGROUPS), 2);
    assert_eq!(u32_at(alice, user_record::GIDS + 4), 300_001);
    let names = user_record::GIDS + 2 * 4;
    let lens = [user_record::NAME_LEN, user_record::GECOS_LEN, user_record::DIR_LEN, user_record::SHELL_LEN]
        .map(|f| u16_at(alice, f));
    assert_eq!(lens, [5, 5, 11, 9]);
    assert_eq!(&alice[names..names + 30], b"aliceAlice/home/alice/bin/bash");
    let bob = &b[uoff + alice.len()..uoff + ulen];
    assert_eq!(bob.len(), u32_at(bob, record::LEN) as usize);
    assert_eq!(u32_at(bob, user_record::UID), 200_002);

    // Groups: "devs" with two members, name after the padded member lengths.
    let (goff, glen) = pair(&b, header::GROUPS);
    assert_eq!(goff, uoff + ulen);
    let devs = &b[goff..goff + u32_at(&b, goff + record::LEN) as usize];
    assert_eq!((u32_at(devs, group_record::GID), u32_at(devs, group_record::NMEM)), (300_000, 2));
    assert_eq!(u16_at(devs, group_record::NAME_LEN), 4);
    assert_eq!([u16_at(devs, group_record::MEMBER_LENS), u16_at(devs, group_record::MEMBER_LENS + 2)], [5, 3]);
    let name = (group_record::MEMBER_LENS + 2 * 2).next_multiple_of(ALIGN);
    assert_eq!(&devs[name..name + 12], b"devsalicebob");

    // The pre-login rule follows the groups.
    let rule_off = u32_at(&b, header::RULE) as usize;
    assert_eq!(rule_off, goff + glen);
    let rule = &b[rule_off..rule_off + u32_at(&b, rule_off + record::LEN) as usize];
    assert_eq!((u32_at(rule, rule_record::UID_MIN), u32_at(rule, rule_record::UID_MAX)), (100_000, 199_999));
    assert_eq!(u16_at(rule, rule_record::N_PATTERNS), 2);
    let strs = (rule_record::PATTERN_LENS + 2 * 2).next_multiple_of(ALIGN);
    assert_eq!(u16_at(rule, rule_record::KEY_FILE_LEN), 20);
    assert_eq!(&rule[strs..strs + 20], b"/etc/pam-oidc/id.key");

    // Tables: after the rule, in order, each slot EMPTY or a record offset;
    // the uid table finds alice at her hash's slot (or after it, probing).
    let mut expect = rule_off + rule.len();
    for field in [header::USER_NAME_TABLE, header::UID_TABLE, header::GROUP_NAME_TABLE, header::GID_TABLE] {
        let (off, slots) = pair(&b, field);
        assert_eq!(off, expect);
        assert!(slots.is_power_of_two());
        expect = off + slots * TABLE_ENTRY;
    }
    assert_eq!(expect, b.len());
    let (t, slots) = pair(&b, header::UID_TABLE);
    let mut i = hash_id(200_001) as usize & (slots - 1);
    while u32_at(&b, t + i * TABLE_ENTRY) as usize != uoff {
        assert_ne!(u32_at(&b, t + i * TABLE_ENTRY), EMPTY);
        i = (i + 1) & (slots - 1);
    }
}
