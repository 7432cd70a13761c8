//! The file format, pinned: the named header and record offsets against the
//! bytes a real snapshot holds, and the whole file of a fixed input against
//! digests taken before the offsets were named (the format must not move).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_snapshot::format::{build_with, fnv32, hash_id, header_sum, sum32, Group, Prelogin, User};
use nss_snapshot::layout::{
    common_record, group_record, header, record, rule_record, user_record, ALIGN, EMPTY, HEADER_LEN, LINE, MAGIC,
    SLOT_OFFSET, TABLE_ENTRY, VERSION,
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
    assert_eq!((b.len(), fnv32(&b), sum32(&b)), (736, 1_048_558_202, 3_821_696_184));
}

/// The record checksum (four lanes, then the tail): any one flipped bit, at
/// every length around the lane blocks, changes it.
#[test]
fn checksum_sees_every_flipped_bit() {
    for len in [0usize, 1, 7, 8, 31, 32, 33, 63, 64, 65, 100, 257] {
        let base: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let s = sum32(&base);
        for pos in 0..len {
            for bit in 0..8 {
                let mut b = base.clone();
                b[pos] ^= 1 << bit;
                assert_ne!(sum32(&b), s, "len {len} pos {pos} bit {bit}");
            }
        }
    }
    assert_ne!(sum32(&[0; 40]), sum32(&[0; 41]), "length is in the seed");
}

/// The offsets themselves: changing one changes the file format (bump VERSION).
#[test]
fn offsets_are_the_format() {
    assert_eq!(VERSION, 4);
    assert_eq!((TABLE_ENTRY, SLOT_OFFSET, LINE), (8, 4, 64));
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
        header::COMMON,
        header::LEN,
    ];
    assert_eq!(h, [0, 8, 12, 16, 20, 24, 28, 32, 36, 44, 52, 60, 68, 76, 84, 92, 96, 100]);
    assert_eq!((record::LEN, record::SUM, record::BODY), (0, 4, 8));
    use user_record as u;
    assert_eq!(
        [u::UID, u::GID, u::NGROUPS, u::GSUM, u::NAME_LEN, u::GECOS_LEN, u::DIR_LEN, u::SHELL_LEN, u::STRINGS],
        [8, 12, 16, 20, 24, 26, 28, 30, 32]
    );
    assert_eq!([common_record::HOME_LEN, common_record::SHELL_LEN, common_record::STRINGS], [8, 10, 12]);
    assert_eq!(
        [group_record::GID, group_record::NMEM, group_record::NAME_LEN, group_record::BLOCK_LEN, group_record::NAME],
        [8, 12, 16, 20, 24]
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

    // Tables first, right after the header, in order; each slot (key, offset).
    // Records are in name-table slot order, so the user region holds them in that order.
    let rule_off = u32_at(&b, header::RULE) as usize;
    let rule = &b[rule_off..rule_off + u32_at(&b, rule_off + record::LEN) as usize];
    let mut expect = HEADER_LEN;
    for field in [header::USER_NAME_TABLE, header::UID_TABLE, header::GROUP_NAME_TABLE, header::GID_TABLE] {
        let (off, slots) = pair(&b, field);
        assert_eq!(off, expect);
        assert!(slots.is_power_of_two());
        expect = off + slots * TABLE_ENTRY;
    }
    // find(table, hash, key): the record offset a probe for key lands on.
    let find = |field: usize, hash: u32, key: u32| {
        let (t, slots) = pair(&b, field);
        let mut i = hash as usize & (slots - 1);
        loop {
            let slot = t + i * TABLE_ENTRY;
            assert_ne!(u32_at(&b, slot + SLOT_OFFSET), EMPTY, "key {key} not in table");
            if u32_at(&b, slot) == key {
                return u32_at(&b, slot + SLOT_OFFSET) as usize;
            }
            i = (i + 1) & (slots - 1);
        }
    };
    let (uoff, ulen) = pair(&b, header::USERS);
    assert_eq!(uoff, expect.next_multiple_of(LINE), "users from the first line after the tables");
    let a_off = find(header::USER_NAME_TABLE, fnv32(b"alice"), fnv32(b"alice"));
    assert_eq!(find(header::UID_TABLE, hash_id(200_001), 200_001), a_off);
    let b_off = find(header::USER_NAME_TABLE, fnv32(b"bob"), fnv32(b"bob"));
    assert_eq!(find(header::UID_TABLE, hash_id(200_002), 200_002), b_off);
    let slot_of = |field: usize, off: usize| {
        let (t, slots) = pair(&b, field);
        (0..slots).find(|i| u32_at(&b, t + i * TABLE_ENTRY + SLOT_OFFSET) as usize == off).unwrap()
    };
    assert_eq!(
        a_off < b_off,
        slot_of(header::USER_NAME_TABLE, a_off) < slot_of(header::USER_NAME_TABLE, b_off),
        "records in name-table order"
    );
    let alice = &b[a_off..a_off + u32_at(&b, a_off + record::LEN) as usize];
    let bob = &b[b_off..b_off + u32_at(&b, b_off + record::LEN) as usize];
    assert_eq!(alice.len() + bob.len(), ulen);
    assert_eq!((a_off % LINE, alice.len(), b_off % LINE, bob.len()), (0, LINE, 0, LINE), "one line each");
    assert_eq!((u32_at(alice, user_record::UID), u32_at(alice, user_record::GID)), (200_001, 200_001));
    assert_eq!(u32_at(alice, user_record::NGROUPS), 2);
    let lens = [user_record::NAME_LEN, user_record::GECOS_LEN, user_record::DIR_LEN, user_record::SHELL_LEN]
        .map(|f| u16_at(alice, f));
    // dir = the common home prefix + name, shell = the common shell: both length 0.
    assert_eq!(lens, [5, 5, 0, 0]);
    let s = user_record::STRINGS;
    assert_eq!(&alice[s..s + 10], b"aliceAlice");
    let gids = (s + 10).next_multiple_of(ALIGN);
    assert_eq!((u32_at(alice, gids), u32_at(alice, gids + 4)), (300_000, 300_001));
    assert_eq!(u32_at(alice, record::SUM), sum32(&alice[record::BODY..gids]), "sum: the passwd part");
    assert_eq!(u32_at(alice, user_record::GSUM), sum32(&alice[gids..gids + 8]), "gsum: the gids");
    assert!(alice[gids + 8..].iter().all(|&x| x == 0), "zero padding to the line");
    assert_eq!(u32_at(bob, user_record::UID), 200_002);
    // bob's dir is /home/bob: the common prefix too; his shell /bin/sh is his own.
    assert_eq!([u16_at(bob, user_record::DIR_LEN), u16_at(bob, user_record::SHELL_LEN)], [0, 7]);
    assert_eq!(&bob[s..s + 10], b"bob/bin/sh");

    // The common strings follow the rule.
    let c_off = u32_at(&b, header::COMMON) as usize;
    assert_eq!(c_off, rule_off + rule.len());
    let common = &b[c_off..c_off + u32_at(&b, c_off + record::LEN) as usize];
    assert_eq!([u16_at(common, common_record::HOME_LEN), u16_at(common, common_record::SHELL_LEN)], [6, 9]);
    assert_eq!(&common[common_record::STRINGS..common_record::STRINGS + 15], b"/home//bin/bash");
    assert_eq!(u32_at(common, record::SUM), sum32(&common[record::BODY..]));
    assert_eq!(c_off + common.len(), b.len(), "a small file is not padded");

    // Groups: "devs" with two members: name, padding, offsets, then the block.
    let (goff, glen) = pair(&b, header::GROUPS);
    assert_eq!(goff, uoff + ulen);
    assert_eq!(rule_off, goff + glen);
    let d_off = find(header::GROUP_NAME_TABLE, fnv32(b"devs"), fnv32(b"devs"));
    assert_eq!(find(header::GID_TABLE, hash_id(300_000), 300_000), d_off);
    let devs = &b[d_off..d_off + u32_at(&b, d_off + record::LEN) as usize];
    assert_eq!((u32_at(devs, group_record::GID), u32_at(devs, group_record::NMEM)), (300_000, 2));
    assert_eq!((u16_at(devs, group_record::NAME_LEN), u16_at(devs, group_record::NAME_LEN + 2)), (4, 0));
    assert_eq!(u32_at(devs, group_record::BLOCK_LEN), 10);
    assert_eq!(&devs[group_record::NAME..group_record::NAME + 4], b"devs");
    let offs = (group_record::NAME + 4).next_multiple_of(ALIGN);
    assert_eq!([u32_at(devs, offs), u32_at(devs, offs + 4)], [0, 6]);
    assert_eq!(&devs[offs + 8..offs + 18], b"alice\0bob\0");
    assert_eq!(devs.len(), (offs + 18).next_multiple_of(ALIGN));

    // The pre-login rule follows the groups.
    assert_eq!((u32_at(rule, rule_record::UID_MIN), u32_at(rule, rule_record::UID_MAX)), (100_000, 199_999));
    assert_eq!(u16_at(rule, rule_record::N_PATTERNS), 2);
    let strs = (rule_record::PATTERN_LENS + 2 * 2).next_multiple_of(ALIGN);
    assert_eq!(u16_at(rule, rule_record::KEY_FILE_LEN), 20);
    assert_eq!(&rule[strs..strs + 20], b"/etc/pam-oidc/id.key");
}
