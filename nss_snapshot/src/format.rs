//! The NSS snapshot file: one immutable file, written by helperd (atomic
//! rename), mapped read-only by every process. The byte layout (every offset,
//! named) is [`crate::layout`], re-exported here.
//!
//! Integrity: the header has a checksum; every record has a checksum checked
//! when it is read, so a flipped byte yields "unavailable", never a wrong answer.
//! `stale` is the one mutable field: helperd sets it in the old file after
//! replacing it, so readers re-map without a syscall per lookup.

pub use crate::idkey::{id_hash, read_private_file, IdKey, DEFAULT_ID_KEY_FILE};
pub use crate::layout::*;
/// Default location; helperd writes it, the module maps it.
pub const DEFAULT_PATH: &str = "/var/cache/pam-oidc/nss.snapshot";
/// The variable that moves the snapshot libnss_oidc.so.2 reads (tests). It
/// must be read with `secure_getenv`, so setuid programs (sudo, su) ignore it.
pub const PATH_ENV: &str = "NSS_OIDC_SNAPSHOT";

/// The path rule of the NSS module, in one place: `$NSS_OIDC_SNAPSHOT` (as
/// `secure_getenv` returns it: absent in setuid programs) or [`DEFAULT_PATH`].
/// The PAM module and `helperd doctor` use it to see what NSS sees.
pub fn snapshot_path(env: Option<&[u8]>) -> std::path::PathBuf {
    match env {
        Some(v) => std::path::PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(v)),
        None => std::path::PathBuf::from(DEFAULT_PATH),
    }
}
/// Limits that keep every length in its field and every loop bounded.
pub const MAX_STRING: usize = 4096;
pub const MAX_GROUPS_PER_USER: usize = 4096;
pub const MAX_MEMBERS: usize = 65535;

pub use crate::names::{glob, is_reserved, portable_name, skeleton, wildcard, RESERVED, RESERVED_PREFIXES};

/// FNV-1a, 32 bits: the snapshot's name index (not keyed; the index is
/// probed, never trusted). The one home of FNV in the workspace.
pub fn fnv32(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ u32::from(x)).wrapping_mul(0x0100_0193))
}

/// FNV-1a, 64 bits: stable file names (the JWKS cache's per-issuer file).
pub fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}

/// One checksum step: a bijection of the state for a fixed word, and of the
/// word for a fixed state.
#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 32)
}

fn word(c: &[u8]) -> u64 {
    u64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap_or_default())
}

/// Record checksum: four independent lanes over 32-byte blocks (so the
/// multiplies of a large group's record overlap instead of waiting on each
/// other), folded into one state, then the tail word by word. Every step is a
/// bijection of its lane, and the fold a bijection of each lane in turn, so
/// any change of one word always changes the 64-bit state.
pub fn sum32(b: &[u8]) -> u32 {
    let seed = 0x9E37_79B9_7F4A_7C15 ^ b.len() as u64;
    let mut l = [seed, seed ^ 0x5555_5555_5555_5555, seed ^ 0xAAAA_AAAA_AAAA_AAAA, !seed];
    let mut blocks = b.chunks_exact(32);
    for c in &mut blocks {
        l[0] = mix(l[0], word(&c[..8]));
        l[1] = mix(l[1], word(&c[8..16]));
        l[2] = mix(l[2], word(&c[16..24]));
        l[3] = mix(l[3], word(&c[24..]));
    }
    let mut h = mix(mix(mix(l[0], l[1]), l[2]), l[3]);
    let mut chunks = blocks.remainder().chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, word(c));
    }
    for &x in chunks.remainder() {
        h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 29)) as u32
}

/// Pre-login resolution: names matching a pattern resolve (by name) to the uid
/// they will get at first login, before helperd has seen them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prelogin {
    /// The id key file (root-only): only root callers (sshd, login) can
    /// resolve pre-login names; everyone else sees logged-in users only.
    pub key_file: String,
    pub uid_min: u32,
    pub uid_max: u32,
    /// `{name}` is replaced by the login name.
    pub home: String,
    pub shell: String,
    pub patterns: Vec<String>,
}

pub fn hash_id(id: u32) -> u32 {
    let x = id.wrapping_mul(0x9E37_79B1);
    x ^ (x >> 16)
}

/// Sum over the header with the `header_sum` and `stale` fields read as zero.
pub fn header_sum(h: &[u8]) -> u32 {
    let mut c = [0u8; HEADER_LEN];
    c.copy_from_slice(&h[..HEADER_LEN]);
    set32(&mut c, header::SUM, 0);
    set32(&mut c, header::STALE, 0);
    fnv32(&c)
}

/// A user as helperd hands it to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub dir: String,
    pub shell: String,
    /// Supplementary groups (for initgroups).
    pub groups: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

fn check_str(what: &str, s: &str, allow_empty: bool) -> Result<(), String> {
    if (!allow_empty && s.is_empty()) || s.len() > MAX_STRING {
        return Err(format!("{what} {s:?}: empty or too long"));
    }
    if s.bytes().any(|b| b == 0 || b == b':' || b == b'\n' || b < 0x20 || b == 0x7f) {
        return Err(format!("{what} {s:?}: NUL, ':' or control character"));
    }
    Ok(())
}

/// Write a u32 at a named offset of a buffer already that long.
fn set32(b: &mut [u8], off: usize, x: u32) {
    b[off..off + 4].copy_from_slice(&x.to_le_bytes());
}

fn set16(b: &mut [u8], off: usize, x: u16) {
    b[off..off + 2].copy_from_slice(&x.to_le_bytes());
}

/// A header region or table field: (offset, length or slots).
fn set_pair(b: &mut [u8], field: usize, off: u32, second: u32) {
    set32(b, field, off);
    set32(b, field + header::PAIR_SECOND, second);
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(ALIGN) {
        v.push(0);
    }
}

fn len16(s: &str) -> u16 {
    u16::try_from(s.len()).unwrap_or(u16::MAX)
}

fn seal(rec: &mut [u8]) {
    let len = u32::try_from(rec.len()).unwrap_or(u32::MAX);
    set32(rec, record::LEN, len);
    let sum = sum32(&rec[record::BODY..]);
    set32(rec, record::SUM, sum);
}

/// What most users share, written once ([`common_record`]): a user whose
/// dir is this prefix + its name, or whose shell is this shell, stores a zero
/// length instead.
#[derive(Debug, Default)]
struct Common {
    home: String,
    shell: String,
}

impl Common {
    /// The most frequent home prefix (a dir that is prefix + name) and shell;
    /// ties broken by the smaller string, so the file is deterministic.
    fn of(users: &[User]) -> Option<Common> {
        let most = |it: &mut dyn Iterator<Item = &str>| {
            let mut n = std::collections::BTreeMap::<&str, usize>::new();
            for s in it {
                *n.entry(s).or_default() += 1;
            }
            n.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))).map(|(s, _)| s.to_string())
        };
        let home =
            most(&mut users.iter().filter_map(|u| u.dir.strip_suffix(u.name.as_str()).filter(|p| !p.is_empty())));
        let shell = most(&mut users.iter().map(|u| u.shell.as_str()));
        match (home, shell) {
            (None, None) => None,
            (h, s) => Some(Common { home: h.unwrap_or_default(), shell: s.unwrap_or_default() }),
        }
    }
}

fn encode_common(c: &Common) -> Result<Vec<u8>, String> {
    check_str("home prefix", &c.home, true)?;
    check_str("shell", &c.shell, true)?;
    use common_record::*;
    let mut r = vec![0u8; STRINGS];
    set16(&mut r, HOME_LEN, len16(&c.home));
    set16(&mut r, SHELL_LEN, len16(&c.shell));
    r.extend_from_slice(c.home.as_bytes());
    r.extend_from_slice(c.shell.as_bytes());
    pad4(&mut r);
    seal(&mut r);
    Ok(r)
}

/// A user record: the passwd part (sealed by `sum`), the gids (sealed by
/// `gsum`, which the passwd part holds), zero padding to a whole line.
fn encode_user(u: &User, common: Option<&Common>) -> Result<Vec<u8>, String> {
    check_str("user name", &u.name, false)?;
    check_str("gecos", &u.gecos, true)?;
    check_str("home", &u.dir, false)?;
    check_str("shell", &u.shell, false)?;
    if u.groups.len() > MAX_GROUPS_PER_USER {
        return Err(format!("user {}: more than {MAX_GROUPS_PER_USER} groups", u.name));
    }
    use user_record::*;
    let home_is_common =
        common.is_some_and(|c| !c.home.is_empty() && u.dir.strip_prefix(c.home.as_str()) == Some(u.name.as_str()));
    let shell_is_common = common.is_some_and(|c| !c.shell.is_empty() && c.shell == u.shell);
    let dir = if home_is_common { "" } else { u.dir.as_str() };
    let shell = if shell_is_common { "" } else { u.shell.as_str() };
    let mut r = vec![0u8; STRINGS];
    set32(&mut r, UID, u.uid);
    set32(&mut r, GID, u.gid);
    set32(&mut r, NGROUPS, u.groups.len() as u32);
    for (field, s) in [(NAME_LEN, u.name.as_str()), (GECOS_LEN, &u.gecos), (DIR_LEN, dir), (SHELL_LEN, shell)] {
        set16(&mut r, field, len16(s));
    }
    for s in [u.name.as_str(), &u.gecos, dir, shell] {
        r.extend_from_slice(s.as_bytes());
    }
    pad4(&mut r);
    let gids_at = r.len();
    for g in &u.groups {
        put32(&mut r, *g);
    }
    let gsum = sum32(&r[gids_at..]);
    set32(&mut r, GSUM, gsum);
    let sum = sum32(&r[record::BODY..gids_at]);
    set32(&mut r, record::SUM, sum);
    r.resize(r.len().next_multiple_of(LINE), 0);
    let len = u32::try_from(r.len()).map_err(|_| format!("user {}: record too long", u.name))?;
    set32(&mut r, record::LEN, len);
    Ok(r)
}

fn encode_group(g: &Group) -> Result<Vec<u8>, String> {
    check_str("group name", &g.name, false)?;
    if g.members.len() > MAX_MEMBERS {
        return Err(format!("group {}: too many members", g.name));
    }
    use group_record::*;
    let mut block = Vec::with_capacity(g.members.iter().map(|m| m.len() + 1).sum());
    let mut offsets = Vec::with_capacity(g.members.len());
    for m in &g.members {
        check_str("member", m, false)?;
        offsets.push(u32::try_from(block.len()).map_err(|_| format!("group {}: members too long", g.name))?);
        block.extend_from_slice(m.as_bytes());
        block.push(0);
    }
    let mut r = vec![0u8; NAME];
    set32(&mut r, GID, g.gid);
    set32(&mut r, NMEM, g.members.len() as u32);
    set16(&mut r, NAME_LEN, len16(&g.name));
    set32(&mut r, BLOCK_LEN, u32::try_from(block.len()).map_err(|_| format!("group {}: members too long", g.name))?);
    r.extend_from_slice(g.name.as_bytes());
    pad4(&mut r);
    for o in offsets {
        put32(&mut r, o);
    }
    r.extend_from_slice(&block);
    pad4(&mut r);
    seal(&mut r);
    Ok(r)
}

fn encode_rule(p: &Prelogin) -> Result<Vec<u8>, String> {
    check_str("key file", &p.key_file, false)?;
    check_str("home", &p.home, false)?;
    check_str("shell", &p.shell, false)?;
    if p.patterns.len() > 256 {
        return Err("more than 256 pre-login patterns".into());
    }
    use rule_record::*;
    let mut r = vec![0u8; PATTERN_LENS];
    set32(&mut r, UID_MIN, p.uid_min);
    set32(&mut r, UID_MAX, p.uid_max);
    for (field, s) in [(KEY_FILE_LEN, &p.key_file), (HOME_LEN, &p.home), (SHELL_LEN, &p.shell)] {
        set16(&mut r, field, len16(s));
    }
    set16(&mut r, N_PATTERNS, p.patterns.len() as u16);
    for pat in &p.patterns {
        check_str("pattern", pat, false)?;
        put16(&mut r, len16(pat));
    }
    pad4(&mut r);
    for s in [&p.key_file, &p.home, &p.shell] {
        r.extend_from_slice(s.as_bytes());
    }
    for pat in &p.patterns {
        r.extend_from_slice(pat.as_bytes());
    }
    pad4(&mut r);
    seal(&mut r);
    Ok(r)
}

/// Slots of an open-addressing table (linear probing) for `hashes`: the slot
/// count and each entry's slot, in input order. Load factor 0.4–0.8: a probe
/// compares the keys in the slots (eight to a cache line), so a longer run
/// costs little, and a smaller table stays in cache at 100k users.
fn place(hashes: &[u32]) -> (usize, Vec<usize>) {
    let slots = table_slots(hashes.len());
    let mask = slots - 1;
    let mut used = vec![false; slots];
    let at = hashes
        .iter()
        .map(|&h| {
            let mut i = h as usize & mask;
            while used[i] {
                i = (i + 1) & mask;
            }
            used[i] = true;
            i
        })
        .collect();
    (slots, at)
}

/// The slot count of a table for `n` keys.
fn table_slots(n: usize) -> usize {
    (n + n / 4 + 1).max(8).next_power_of_two()
}

/// Files this large or larger are zero-padded to a whole number of these: the
/// kernel can then map all of a file it caches in 2 MiB folios with 2 MiB
/// pages (no 4 KiB tail; the module asks for them with `MADV_HUGEPAGE`), so a
/// lookup at 100k users takes no TLB miss. Costs at most 2 MiB of zeros, only
/// in files of 2 MiB or more (~25k users).
pub const PAD_TO: usize = 2 << 20;

/// A table's bytes: (key, record offset) at each placed slot, EMPTY elsewhere.
fn table_bytes(slots: usize, at: &[usize], keys: &[u32], offs: &[u32]) -> Vec<u8> {
    let mut t = vec![0u8; slots * TABLE_ENTRY];
    for i in 0..slots {
        set32(&mut t, i * TABLE_ENTRY + SLOT_OFFSET, EMPTY);
    }
    for ((&slot, &key), &off) in at.iter().zip(keys).zip(offs) {
        set32(&mut t, slot * TABLE_ENTRY, key);
        set32(&mut t, slot * TABLE_ENTRY + SLOT_OFFSET, off);
    }
    t
}

/// A region's bytes: its records, its name table, its id table, and the
/// slot counts of the two tables.
struct RegionBytes {
    records: Vec<u8>,
    name_table: Vec<u8>,
    id_table: Vec<u8>,
    slots: [u32; 2],
}

/// Records in the order of their name-table slots (a lookup's table line and
/// its record's neighbours sit in the same order), then both tables.
fn region(
    names: &[&str],
    ids: &[u32],
    base: usize,
    encode: impl Fn(usize) -> Result<Vec<u8>, String>,
) -> Result<RegionBytes, String> {
    let name_keys: Vec<u32> = names.iter().map(|n| fnv32(n.as_bytes())).collect();
    let (name_slots, name_at) = place(&name_keys);
    let (id_slots, id_at) = place(&ids.iter().map(|&id| hash_id(id)).collect::<Vec<_>>());
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_unstable_by_key(|&i| name_at[i]);
    let mut offs = vec![0u32; names.len()];
    let mut out = vec![];
    for i in order {
        offs[i] = u32::try_from(base + out.len()).map_err(|_| "snapshot larger than 4 GiB")?;
        out.extend_from_slice(&encode(i)?);
    }
    let name_t = table_bytes(name_slots, &name_at, &name_keys, &offs);
    let id_t = table_bytes(id_slots, &id_at, ids, &offs);
    let slots = [name_slots, id_slots].map(|s| u32::try_from(s).unwrap_or(u32::MAX));
    Ok(RegionBytes { records: out, name_table: name_t, id_table: id_t, slots })
}

/// Build a snapshot. Names and ids must be unique (helperd guarantees it; checked here too).
pub fn build(users: &[User], groups: &[Group], generation: u64) -> Result<Vec<u8>, String> {
    build_with(users, groups, None, generation)
}

/// [`build`] with an optional pre-login rule.
pub fn build_with(
    users: &[User],
    groups: &[Group],
    prelogin: Option<&Prelogin>,
    generation: u64,
) -> Result<Vec<u8>, String> {
    let mut seen = std::collections::HashSet::new();
    for u in users {
        if !seen.insert(("u", u.name.clone())) || !seen.insert(("uid", u.uid.to_string())) {
            return Err(format!("duplicate user name or uid: {} {}", u.name, u.uid));
        }
    }
    for g in groups {
        if !seen.insert(("g", g.name.clone())) || !seen.insert(("gid", g.gid.to_string())) {
            return Err(format!("duplicate group name or gid: {} {}", g.name, g.gid));
        }
    }
    // Header, the four tables (every lookup reads them: first, so that they
    // sit in the file's first huge pages), then the user records from a line
    // boundary, the group records, the rule and the common strings.
    let table_bytes_of = |n: usize| table_slots(n) * TABLE_ENTRY;
    let tables_len = 2 * table_bytes_of(users.len()) + 2 * table_bytes_of(groups.len());
    let users_off = (HEADER_LEN + tables_len).next_multiple_of(LINE);
    let common = Common::of(users);
    let unames: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let uids: Vec<u32> = users.iter().map(|u| u.uid).collect();
    let u = region(&unames, &uids, users_off, |i| encode_user(&users[i], common.as_ref()))?;
    let groups_off = users_off + u.records.len();
    let gnames: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let gids: Vec<u32> = groups.iter().map(|g| g.gid).collect();
    let g = region(&gnames, &gids, groups_off, |i| encode_group(&groups[i]))?;
    let mut out = Vec::with_capacity(groups_off + g.records.len() + 4096);
    out.resize(HEADER_LEN, 0);
    let mut tables = [(0u32, 0u32); 4];
    let slots = [u.slots[0], u.slots[1], g.slots[0], g.slots[1]];
    for (i, t) in [u.name_table, u.id_table, g.name_table, g.id_table].iter().enumerate() {
        tables[i] = (u32::try_from(out.len()).map_err(|_| "too large")?, slots[i]);
        out.extend_from_slice(t);
    }
    out.resize(users_off, 0);
    out.extend_from_slice(&u.records);
    out.extend_from_slice(&g.records);
    let groups_end = out.len();
    let rule_off = match prelogin {
        Some(p) => {
            let off = u32::try_from(out.len()).map_err(|_| "too large")?;
            out.extend_from_slice(&encode_rule(p)?);
            off
        }
        None => 0,
    };
    let common_off = match &common {
        Some(c) => {
            let off = u32::try_from(out.len()).map_err(|_| "too large")?;
            out.extend_from_slice(&encode_common(c)?);
            off
        }
        None => 0,
    };
    if out.len() >= PAD_TO {
        out.resize(out.len().next_multiple_of(PAD_TO), 0);
    }
    let total = u32::try_from(out.len()).map_err(|_| "snapshot larger than 4 GiB")?;
    let h = &mut out[..HEADER_LEN];
    h[header::MAGIC..header::MAGIC + MAGIC.len()].copy_from_slice(&MAGIC);
    set32(h, header::VERSION, VERSION);
    set32(h, header::HEADER_LEN, HEADER_LEN as u32);
    set32(h, header::TOTAL_LEN, total);
    // header::SUM below, over the rest; header::STALE starts at 0.
    set32(h, header::N_USERS, users.len() as u32);
    set32(h, header::N_GROUPS, groups.len() as u32);
    set_pair(h, header::USERS, users_off as u32, (groups_off - users_off) as u32);
    set_pair(h, header::GROUPS, groups_off as u32, (groups_end - groups_off) as u32);
    let fields = [header::USER_NAME_TABLE, header::UID_TABLE, header::GROUP_NAME_TABLE, header::GID_TABLE];
    for (field, (off, slots)) in fields.into_iter().zip(tables) {
        set_pair(h, field, off, slots);
    }
    h[header::GENERATION..header::GENERATION + 8].copy_from_slice(&generation.to_le_bytes());
    set32(h, header::RULE, rule_off);
    set32(h, header::COMMON, common_off);
    let sum = header_sum(h);
    set32(h, header::SUM, sum);
    Ok(out)
}
