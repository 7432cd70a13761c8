//! Group records (format 3, unchanged in 4): a group's members are one contiguous block the
//! reader checks once and copies once, then points `gr_mem` into; a buffer
//! one byte short is ERANGE; a corrupt block is refused; older files are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_snapshot::format::{build, header_sum, sum32, Group, User};
use nss_snapshot::layout::{group_record, header, record, ALIGN, HEADER_LEN, HEADER_SUM_OFFSET, VERSION};
use nss_snapshot::reader::{fill_group, group_size, Fill, GroupRef, Snapshot};

const PTR: usize = std::mem::size_of::<usize>();

fn snap(members: &[&str]) -> Vec<u8> {
    let users = [User {
        name: "alice".into(),
        uid: 200_001,
        gid: 200_001,
        gecos: String::new(),
        dir: "/home/alice".into(),
        shell: "/bin/sh".into(),
        groups: vec![300_000],
    }];
    let groups = [
        Group { name: "devs".into(), gid: 300_000, members: members.iter().map(|m| m.to_string()).collect() },
        Group { name: "none".into(), gid: 300_001, members: vec![] },
    ];
    build(&users, &groups, 1).unwrap()
}

fn devs(b: &[u8]) -> GroupRef<'_> {
    Snapshot::parse(b).unwrap().group_by_name(b"devs").unwrap().unwrap()
}

/// The record of group `name` in the file: (offset, length).
fn record_of(b: &[u8], name: &[u8]) -> (usize, usize) {
    let g = devs(b);
    assert_eq!(name, b"devs");
    let at = g.name.as_ptr() as usize - b.as_ptr() as usize - group_record::NAME;
    (at, u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize)
}

fn reseal(b: &mut [u8], at: usize, len: usize) {
    let sum = sum32(&b[at + record::BODY..at + len]);
    b[at + record::SUM..at + record::SUM + 4].copy_from_slice(&sum.to_le_bytes());
}

fn ptr_at(buf: &[u8], off: usize) -> usize {
    usize::from_ne_bytes(buf[off..off + PTR].try_into().unwrap())
}

#[test]
fn members_are_one_block_inside_the_file_and_one_copy_in_the_buffer() {
    let b = snap(&["alice", "bob", "carol"]);
    let g = devs(&b);
    // One slice of the snapshot itself (borrowed, not assembled): the names and their NULs.
    let block = g.member_block();
    assert_eq!(block, b"alice\0bob\0carol\0");
    let file = b.as_ptr_range();
    assert!(file.contains(&block.as_ptr()) && block.as_ptr() as usize + block.len() <= file.end as usize);
    assert_eq!(g.member_offsets().collect::<Vec<_>>(), [0, 6, 10]);
    assert_eq!(g.members().collect::<Vec<_>>(), [&b"alice"[..], b"bob", b"carol"]);
    assert_eq!((g.n_members(), g.members_len()), (3, 16));

    let mut buf = vec![0xAAu8; 256];
    let base = buf.as_ptr() as usize;
    let l = fill_group(&g, &mut buf, base).unwrap();
    // The block lands in the buffer as one run of bytes, unchanged.
    assert_eq!(&buf[l.block..l.block + block.len()], block);
    assert_eq!(l.used, l.block + block.len());
    // gr_mem: aligned, each pointer the copied block + the member's offset, NULL-terminated.
    assert_eq!((base + l.mem) % PTR, 0);
    let ptrs: Vec<usize> = (0..4).map(|i| ptr_at(&buf, l.mem + i * PTR)).collect();
    assert_eq!(ptrs, [base + l.block, base + l.block + 6, base + l.block + 10, 0]);
    assert_eq!(&buf[l.name..l.name + 5], b"devs\0");
    assert_eq!(&buf[l.passwd..l.passwd + 2], b"*\0");
}

#[test]
fn a_group_without_members_has_no_block_and_a_null_array() {
    let b = snap(&["alice"]);
    let g = Snapshot::parse(&b).unwrap().group_by_gid(300_001).unwrap().unwrap();
    assert_eq!((g.n_members(), g.member_block()), (0, &b""[..]));
    let mut buf = vec![0xAAu8; 64];
    let base = buf.as_ptr() as usize;
    let l = fill_group(&g, &mut buf, base).unwrap();
    assert_eq!(ptr_at(&buf, l.mem), 0);
    assert_eq!(&buf[l.name..l.name + 5], b"none\0");
}

/// ERANGE exactly at the boundary, at every alignment of the caller's buffer:
/// one byte short is Range with nothing written; exactly enough fits.
#[test]
fn one_byte_short_is_range_exactly_enough_fits() {
    let names: Vec<String> = (0..1000).map(|i| format!("member{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let b = snap(&refs);
    let g = devs(&b);
    let mut backing = vec![0u8; 64 * 1024];
    for shift in 0..PTR {
        let base = backing[shift..].as_ptr() as usize;
        let need = group_size(&g, base).unwrap();
        let pad = base.next_multiple_of(PTR) - base;
        assert_eq!(need, pad + 1001 * PTR + 5 + 2 + g.member_block().len());
        let short = &mut backing[shift..shift + need - 1];
        short.fill(0x55);
        assert_eq!(fill_group(&g, short, base), Err(Fill::Range));
        assert!(short.iter().all(|&x| x == 0x55), "nothing written on ERANGE");
        let exact = &mut backing[shift..shift + need];
        let l = fill_group(&g, exact, base).unwrap();
        assert_eq!(l.used, need);
        let last = ptr_at(exact, l.mem + 999 * PTR) - base;
        assert_eq!(&exact[last..last + 10], b"member999\0");
        assert_eq!(ptr_at(exact, l.mem + 1000 * PTR), 0);
    }
}

/// Any flipped bit in the member block (or its offsets) is caught by the
/// record checksum: the group is unavailable, never a wrong member list.
#[test]
fn a_corrupt_member_block_is_refused() {
    let good = snap(&["alice", "bob", "carol"]);
    let (at, len) = record_of(&good, b"devs");
    let block_at = at + len - 16; // 16 bytes of block, already 4-aligned: no padding
    assert_eq!(&good[block_at..block_at + 16], b"alice\0bob\0carol\0");
    for pos in (at + group_record::NAME + 4)..(at + len) {
        for bit in 0..8 {
            let mut b = good.clone();
            b[pos] ^= 1 << bit;
            let s = Snapshot::parse(&b).unwrap();
            assert!(s.group_by_name(b"devs").is_err(), "flip at {pos} bit {bit}");
            assert!(s.group_by_gid(300_000).is_err());
        }
    }
}

/// A record whose checksum matches but whose block or offsets are wrong
/// (a hostile writer): refused when read or when laid out, never a pointer
/// outside the copied block.
#[test]
fn forged_records_are_refused_not_followed() {
    let good = snap(&["alice", "bob", "carol"]);
    let (at, len) = record_of(&good, b"devs");
    // The block's last NUL replaced: a member would run past the block.
    let mut b = good.clone();
    b[at + len - 1] = b'x';
    reseal(&mut b, at, len);
    assert!(Snapshot::parse(&b).unwrap().group_by_name(b"devs").is_err());
    // An offset past the block.
    let mut b = good.clone();
    let offs = at + (group_record::NAME + 4).next_multiple_of(ALIGN);
    b[offs + 4..offs + 8].copy_from_slice(&16u32.to_le_bytes());
    reseal(&mut b, at, len);
    let g = devs(&b);
    let mut buf = vec![0u8; 256];
    let base = buf.as_ptr() as usize;
    assert_eq!(fill_group(&g, &mut buf, base), Err(Fill::Corrupt));
    // A block length past the record.
    let mut b = good.clone();
    b[at + group_record::BLOCK_LEN..at + group_record::BLOCK_LEN + 4].copy_from_slice(&4096u32.to_le_bytes());
    reseal(&mut b, at, len);
    assert!(Snapshot::parse(&b).unwrap().group_by_name(b"devs").is_err());
}

/// A file of an older format (version 2: per-member lengths, offset-only
/// tables; 3: user records anywhere, gids inside the passwd checksum) is
/// refused as a whole, even with a valid header checksum.
#[test]
fn older_format_versions_are_refused() {
    assert_eq!(VERSION, 4);
    let good = snap(&["alice"]);
    assert!(Snapshot::parse(&good).is_ok());
    for old in [1u32, 2, 3] {
        let mut b = good.clone();
        b[header::VERSION..header::VERSION + 4].copy_from_slice(&old.to_le_bytes());
        let sum = header_sum(&b[..HEADER_LEN]);
        b[HEADER_SUM_OFFSET..HEADER_SUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
        assert!(Snapshot::parse(&b).is_err(), "version {old} accepted");
    }
}
