//! Safe, bounds-checked reading of a snapshot held in a byte slice. Every
//! offset and length is checked against the slice; every record's checksum
//! is verified before its fields are used; every loop is bounded by a table
//! or region size. Any inconsistency is `Corrupt`, never a panic.

use crate::format::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

type R<T> = Result<T, Corrupt>;

fn u32_at(b: &[u8], off: usize) -> R<u32> {
    let s = b.get(off..off.checked_add(4).ok_or(Corrupt)?).ok_or(Corrupt)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], off: usize) -> R<u16> {
    let s = b.get(off..off.checked_add(2).ok_or(Corrupt)?).ok_or(Corrupt)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

#[derive(Debug, Clone, Copy)]
struct Region {
    off: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Table {
    off: usize,
    slots: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    buf: &'a [u8],
    users: Region,
    groups: Region,
    t_uname: Table,
    t_uid: Table,
    t_gname: Table,
    t_gid: Table,
    rule: Option<Region>,
    /// The common home prefix and shell (checked when parsed): empty without a common record.
    common_home: &'a [u8],
    common_shell: &'a [u8],
    pub n_users: u32,
    pub n_groups: u32,
    pub generation: u64,
}

/// A synthesized pre-login user: uid, home template (`{name}`), shell.
#[derive(Debug, Clone, Copy)]
pub struct PreloginUser<'a> {
    pub uid: u32,
    pub home_template: &'a [u8],
    pub shell: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
pub struct UserRef<'a> {
    pub uid: u32,
    pub gid: u32,
    pub name: &'a [u8],
    pub gecos: &'a [u8],
    /// The home directory is `dir[0]` followed by `dir[1]` (the common home
    /// prefix and the name, or the record's own dir and nothing).
    dir: [&'a [u8]; 2],
    pub shell: &'a [u8],
    gids: &'a [u8],
    gsum: u32,
}

impl<'a> UserRef<'a> {
    /// The supplementary gids, their checksum verified first (the passwd
    /// fields' checksum, already verified, covers `gsum`).
    pub fn groups(&self) -> R<impl Iterator<Item = u32> + 'a> {
        if sum32(self.gids) != self.gsum {
            return Err(Corrupt);
        }
        Ok(self.gids.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
    }
    pub fn n_groups(&self) -> usize {
        self.gids.len() / 4
    }
    /// The home directory in two pieces, to be joined.
    pub fn dir_parts(&self) -> [&'a [u8]; 2] {
        self.dir
    }
    /// The home directory, joined (allocates; the NSS entry points copy the pieces).
    pub fn dir(&self) -> Vec<u8> {
        self.dir.concat()
    }
}

/// A group as the snapshot holds it: the member names are one block,
/// NUL-terminated names back to back, with an offset per member into it.
#[derive(Debug, Clone, Copy)]
pub struct GroupRef<'a> {
    pub gid: u32,
    pub name: &'a [u8],
    /// u32 LE × nmem, each < `block.len()` (checked where used).
    offsets: &'a [u8],
    block: &'a [u8],
}

impl<'a> GroupRef<'a> {
    pub fn n_members(&self) -> usize {
        self.offsets.len() / 4
    }
    /// The member names, NUL-terminated, back to back: one slice of the
    /// snapshot (a lookup copies it with one copy). Empty without members;
    /// otherwise its last byte is a NUL (checked when the record was read).
    pub fn member_block(&self) -> &'a [u8] {
        self.block
    }
    /// Each member's offset into [`Self::member_block`] (as stored; a caller
    /// checks each is `< member_block().len()` before pointing at it).
    pub fn member_offsets(&self) -> impl Iterator<Item = usize> + 'a {
        self.offsets.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
    }
    /// Member names (without their NULs); an offset outside the block gives
    /// an empty name (the entry points refuse such a record).
    pub fn members(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let block = self.block;
        self.member_offsets().map(move |o| {
            let s = block.get(o..).unwrap_or(&[]);
            let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            &s[..end]
        })
    }
    /// Bytes of the member block (names and their NULs).
    pub fn members_len(&self) -> usize {
        self.block.len()
    }
}

/// Why a group could not be laid out in a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The buffer is too small (the caller retries with a bigger one: ERANGE).
    Range,
    /// A member offset points outside the block.
    Corrupt,
}

/// Where [`fill_group`] put the entry's parts, as offsets into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLayout {
    /// The member pointer array (`n_members + 1` pointer-sized slots, the last NULL).
    pub mem: usize,
    /// The name, NUL-terminated.
    pub name: usize,
    /// `"*"`, NUL-terminated (the password field).
    pub passwd: usize,
    /// The copied member block.
    pub block: usize,
    /// Bytes of the buffer used.
    pub used: usize,
}

const PTR: usize = core::mem::size_of::<usize>();

/// The bytes [`fill_group`] needs for `g` in a buffer at address `base`.
pub fn group_size(g: &GroupRef<'_>, base: usize) -> Option<usize> {
    let mem = base.next_multiple_of(PTR) - base;
    mem.checked_add((g.n_members() + 1).checked_mul(PTR)?)?
        .checked_add(g.name.len() + 1)?
        .checked_add(2)?
        .checked_add(g.block.len())
}

/// Lay `g` out in `buf` (whose first byte is at address `base`) as glibc's
/// `struct group` wants it: the member pointer array (aligned, NULL-terminated),
/// the name, `"*"`, then the member block with one copy; each member pointer
/// is `base` + the block's place + the member's offset, written as the
/// native-endian pointer value. A buffer one byte short is [`Fill::Range`]
/// and an offset outside the block [`Fill::Corrupt`], each before any byte is
/// written; the sizes come from the bounds-checked record, so they never
/// exceed what the record holds.
pub fn fill_group(g: &GroupRef<'_>, buf: &mut [u8], base: usize) -> Result<GroupLayout, Fill> {
    let need = group_size(g, base).ok_or(Fill::Range)?;
    if need > buf.len() {
        return Err(Fill::Range);
    }
    // Every offset inside the block, checked in one pass before anything is
    // written (a max: no branch per member, so it vectorizes).
    let max = g.member_offsets().fold(0, usize::max);
    if g.n_members() > 0 && max >= g.block.len() {
        return Err(Fill::Corrupt);
    }
    let mem = base.next_multiple_of(PTR) - base;
    let n = g.n_members();
    let name = mem + (n + 1) * PTR;
    let passwd = name + g.name.len() + 1;
    let block = passwd + 2;
    let (ptrs, rest) = buf[mem..need].split_at_mut((n + 1) * PTR);
    let (strs, dst) = rest.split_at_mut(g.name.len() + 3);
    strs[..g.name.len()].copy_from_slice(g.name);
    strs[g.name.len()..].copy_from_slice(b"\0*\0");
    dst.copy_from_slice(g.block);
    let at = base + block;
    let (slots, last) = ptrs.split_at_mut(n * PTR);
    for (slot, off) in slots.chunks_exact_mut(PTR).zip(g.member_offsets()) {
        slot.copy_from_slice(&(at + off).to_ne_bytes());
    }
    last.copy_from_slice(&0usize.to_ne_bytes());
    Ok(GroupLayout { mem, name, passwd, block, used: need })
}

impl<'a> Snapshot<'a> {
    pub fn parse(buf: &'a [u8]) -> R<Snapshot<'a>> {
        let h = buf.get(..HEADER_LEN).ok_or(Corrupt)?;
        if h[header::MAGIC..header::MAGIC + MAGIC.len()] != MAGIC
            || u32_at(h, header::VERSION)? != VERSION
            || u32_at(h, header::HEADER_LEN)? as usize != HEADER_LEN
        {
            return Err(Corrupt);
        }
        if u32_at(h, header::TOTAL_LEN)? as usize != buf.len() || u32_at(h, header::SUM)? != header_sum(h) {
            return Err(Corrupt);
        }
        let region = |o: usize| -> R<Region> {
            let (off, len) = (u32_at(h, o)? as usize, u32_at(h, o + header::PAIR_SECOND)? as usize);
            let end = off.checked_add(len).ok_or(Corrupt)?;
            if off < HEADER_LEN || end > buf.len() || !off.is_multiple_of(ALIGN) {
                return Err(Corrupt);
            }
            Ok(Region { off, len })
        };
        let table = |o: usize| -> R<Table> {
            let (off, slots) = (u32_at(h, o)? as usize, u32_at(h, o + header::PAIR_SECOND)? as usize);
            let end = slots.checked_mul(TABLE_ENTRY).and_then(|n| n.checked_add(off)).ok_or(Corrupt)?;
            if !slots.is_power_of_two() || off < HEADER_LEN || end > buf.len() || !off.is_multiple_of(ALIGN) {
                return Err(Corrupt);
            }
            Ok(Table { off, slots })
        };
        let users = region(header::USERS)?;
        if !users.off.is_multiple_of(LINE) {
            return Err(Corrupt);
        }
        let (common_home, common_shell) = match u32_at(h, header::COMMON)? as usize {
            0 => (&[][..], &[][..]),
            off if off >= HEADER_LEN && off < buf.len() && off.is_multiple_of(ALIGN) => Self::common(buf, off)?,
            _ => return Err(Corrupt),
        };
        Ok(Snapshot {
            buf,
            common_home,
            common_shell,
            n_users: u32_at(h, header::N_USERS)?,
            n_groups: u32_at(h, header::N_GROUPS)?,
            users,
            groups: region(header::GROUPS)?,
            t_uname: table(header::USER_NAME_TABLE)?,
            t_uid: table(header::UID_TABLE)?,
            t_gname: table(header::GROUP_NAME_TABLE)?,
            t_gid: table(header::GID_TABLE)?,
            generation: u64::from(u32_at(h, header::GENERATION)?)
                | (u64::from(u32_at(h, header::GENERATION + 4)?) << 32),
            rule: match u32_at(h, header::RULE)? as usize {
                0 => None,
                off if off >= HEADER_LEN && off < buf.len() && off.is_multiple_of(ALIGN) => {
                    Some(Region { off, len: buf.len() - off })
                }
                _ => return Err(Corrupt),
            },
        })
    }

    /// The common strings record at `off`, checksum verified: (home prefix, shell).
    fn common(buf: &'a [u8], off: usize) -> R<(&'a [u8], &'a [u8])> {
        use common_record::*;
        let (rec, _) = Self::record_in(buf, Region { off, len: buf.len() - off }, off)?;
        Self::verify(rec)?;
        let (h, sh) = (usize::from(u16_at(rec, HOME_LEN)?), usize::from(u16_at(rec, SHELL_LEN)?));
        let home = rec.get(STRINGS..STRINGS + h).ok_or(Corrupt)?;
        let shell = rec.get(STRINGS + h..STRINGS + h + sh).ok_or(Corrupt)?;
        Ok((home, shell))
    }

    /// The record at `off` inside `region`, bounds checked (its checksum is [`Snapshot::verify`]'s): (bytes, next offset).
    fn record(&self, region: Region, off: usize) -> R<(&'a [u8], usize)> {
        Self::record_in(self.buf, region, off)
    }

    /// [`Snapshot::record`] in `buf` (also while the header is parsed).
    fn record_in(buf: &'a [u8], region: Region, off: usize) -> R<(&'a [u8], usize)> {
        let end = region.off + region.len;
        if off < region.off || !off.is_multiple_of(ALIGN) || off >= end {
            return Err(Corrupt);
        }
        let len = u32_at(buf, off + record::LEN)? as usize;
        let rend = off.checked_add(len).ok_or(Corrupt)?;
        if len < record::MIN_LEN || !len.is_multiple_of(ALIGN) || rend > end {
            return Err(Corrupt);
        }
        Ok((&buf[off..rend], rend))
    }

    /// The record's checksum; checked before any field of a record is returned.
    fn verify(rec: &[u8]) -> R<()> {
        if u32_at(rec, record::SUM)? != sum32(rec.get(record::BODY..).ok_or(Corrupt)?) {
            return Err(Corrupt);
        }
        Ok(())
    }

    fn user_at(&self, off: usize) -> R<(UserRef<'a>, usize)> {
        let (u, next, part) = self.user_unverified(off)?;
        Self::verify(part)?;
        Ok((u, next))
    }

    /// Parse a user record with bounds checks but without its checksum: only
    /// to compare the key; the match is verified before use. The third value is
    /// the passwd part its checksum covers (the record's first line when it fits).
    fn user_unverified(&self, off: usize) -> R<(UserRef<'a>, usize, &'a [u8])> {
        use user_record::*;
        if !off.is_multiple_of(LINE) {
            return Err(Corrupt);
        }
        let (rec, next) = self.record(self.users, off)?;
        if !rec.len().is_multiple_of(LINE) {
            return Err(Corrupt);
        }
        let ngroups = u32_at(rec, NGROUPS)? as usize;
        if ngroups > MAX_GROUPS_PER_USER {
            return Err(Corrupt);
        }
        let lens = [u16_at(rec, NAME_LEN)?, u16_at(rec, GECOS_LEN)?, u16_at(rec, DIR_LEN)?, u16_at(rec, SHELL_LEN)?]
            .map(usize::from);
        let mut pos = STRINGS;
        let mut s = [&[][..]; 4];
        for (i, l) in lens.iter().enumerate() {
            s[i] = rec.get(pos..pos + l).ok_or(Corrupt)?;
            pos += l;
        }
        let gids_at = pos.next_multiple_of(ALIGN);
        let gids = rec.get(gids_at..gids_at + ngroups * 4).ok_or(Corrupt)?;
        let name = s[0];
        if name.is_empty() {
            return Err(Corrupt);
        }
        // A zero length is the common string; a record that uses one the
        // file does not have is corrupt (dir and shell are never empty).
        let dir = if s[2].is_empty() { [self.common_home, name] } else { [s[2], &[][..]] };
        let shell = if s[3].is_empty() { self.common_shell } else { s[3] };
        if dir[0].is_empty() || shell.is_empty() {
            return Err(Corrupt);
        }
        let u = UserRef {
            uid: u32_at(rec, UID)?,
            gid: u32_at(rec, GID)?,
            name,
            gecos: s[1],
            dir,
            shell,
            gids,
            gsum: u32_at(rec, GSUM)?,
        };
        Ok((u, next, &rec[..gids_at]))
    }

    fn group_at(&self, off: usize) -> R<(GroupRef<'a>, usize)> {
        let (g, next, rec) = self.group_unverified(off)?;
        Self::verify(rec)?;
        Ok((g, next))
    }

    fn group_unverified(&self, off: usize) -> R<(GroupRef<'a>, usize, &'a [u8])> {
        use group_record::*;
        let (rec, next) = self.record(self.groups, off)?;
        let nmem = u32_at(rec, NMEM)? as usize;
        if nmem > MAX_MEMBERS {
            return Err(Corrupt);
        }
        let name_len = usize::from(u16_at(rec, NAME_LEN)?);
        let block_len = u32_at(rec, BLOCK_LEN)? as usize;
        let name = rec.get(NAME..NAME + name_len).ok_or(Corrupt)?;
        let offs_at = (NAME + name_len).next_multiple_of(ALIGN);
        let block_at = offs_at + nmem * 4;
        let offsets = rec.get(offs_at..block_at).ok_or(Corrupt)?;
        let block = rec.get(block_at..block_at.checked_add(block_len).ok_or(Corrupt)?).ok_or(Corrupt)?;
        // Members present: the block ends with a NUL, so every member is a
        // string that ends inside it; none: no block.
        if name.is_empty() || (nmem > 0 && block.last() != Some(&0)) || (nmem == 0 && !block.is_empty()) {
            return Err(Corrupt);
        }
        Ok((GroupRef { gid: u32_at(rec, GID)?, name, offsets, block }, next, rec))
    }

    /// Probe a table for `key`: each slot whose key matches is offered to
    /// `check` (the record is touched only then); bounded by the slot count.
    fn probe<T>(&self, t: Table, hash: u32, key: u32, mut check: impl FnMut(usize) -> R<Option<T>>) -> R<Option<T>> {
        let mask = t.slots - 1;
        let mut i = hash as usize & mask;
        for _ in 0..t.slots {
            let slot = t.off + i * TABLE_ENTRY;
            let off = u32_at(self.buf, slot + SLOT_OFFSET)?;
            if off == EMPTY {
                return Ok(None);
            }
            if u32_at(self.buf, slot)? == key {
                if let Some(x) = check(off as usize)? {
                    return Ok(Some(x));
                }
            }
            i = (i + 1) & mask;
        }
        Ok(None)
    }

    pub fn user_by_name(&self, name: &[u8]) -> R<Option<UserRef<'a>>> {
        let h = fnv32(name);
        self.probe(self.t_uname, h, h, |off| {
            let (u, _, rec) = self.user_unverified(off)?;
            if u.name == name {
                Self::verify(rec)?;
                return Ok(Some(u));
            }
            Ok(None)
        })
    }

    pub fn user_by_uid(&self, uid: u32) -> R<Option<UserRef<'a>>> {
        self.probe(self.t_uid, hash_id(uid), uid, |off| {
            let (u, _, rec) = self.user_unverified(off)?;
            if u.uid == uid {
                Self::verify(rec)?;
                return Ok(Some(u));
            }
            Ok(None)
        })
    }

    pub fn group_by_name(&self, name: &[u8]) -> R<Option<GroupRef<'a>>> {
        let h = fnv32(name);
        self.probe(self.t_gname, h, h, |off| {
            let (g, _, rec) = self.group_unverified(off)?;
            if g.name == name {
                Self::verify(rec)?;
                return Ok(Some(g));
            }
            Ok(None)
        })
    }

    pub fn group_by_gid(&self, gid: u32) -> R<Option<GroupRef<'a>>> {
        self.probe(self.t_gid, hash_id(gid), gid, |off| {
            let (g, _, rec) = self.group_unverified(off)?;
            if g.gid == gid {
                Self::verify(rec)?;
                return Ok(Some(g));
            }
            Ok(None)
        })
    }

    /// A name no record holds: does it resolve before first login? Only if it
    /// is a portable, unreserved name matching a pattern, the caller can read
    /// the id key (`key(path)`: root only), and its uid is not held by another user.
    pub fn prelogin_user(&self, name: &[u8], key: impl FnOnce(&[u8]) -> Option<IdKey>) -> R<Option<PreloginUser<'a>>> {
        let Some(region) = self.rule else { return Ok(None) };
        if !portable_name(name) || is_reserved(name) {
            return Ok(None);
        }
        let (rec, _) = self.record(region, region.off)?;
        Self::verify(rec)?;
        use rule_record::*;
        let (uid_min, uid_max) = (u32_at(rec, UID_MIN)?, u32_at(rec, UID_MAX)?);
        let lens = [u16_at(rec, KEY_FILE_LEN)?, u16_at(rec, HOME_LEN)?, u16_at(rec, SHELL_LEN)?].map(usize::from);
        let npat = usize::from(u16_at(rec, N_PATTERNS)?);
        let plens = rec.get(PATTERN_LENS..PATTERN_LENS + npat * 2).ok_or(Corrupt)?;
        let mut pos = (PATTERN_LENS + npat * 2).next_multiple_of(ALIGN);
        let mut f = [&[][..]; 3];
        for (i, l) in lens.iter().enumerate() {
            f[i] = rec.get(pos..pos + l).ok_or(Corrupt)?;
            pos += l;
        }
        let mut matched = false;
        for c in plens.chunks_exact(2) {
            let l = usize::from(u16::from_le_bytes([c[0], c[1]]));
            let pat = rec.get(pos..pos + l).ok_or(Corrupt)?;
            pos += l;
            matched |= glob(pat, name);
        }
        if !matched || uid_min > uid_max {
            return Ok(None);
        }
        let Some(key) = key(f[0]) else { return Ok(None) };
        let uid = id_hash(&key, b"user", name, uid_min, uid_max);
        if self.user_by_uid(uid)?.is_some_and(|u| u.name != name) {
            return Ok(None);
        }
        Ok(Some(PreloginUser { uid, home_template: f[1], shell: f[2] }))
    }

    /// Enumeration: the user at cursor `off` (0 = first) and the next cursor; `None` at the end.
    pub fn user_next(&self, off: usize) -> R<Option<(UserRef<'a>, usize)>> {
        let off = if off == 0 { self.users.off } else { off };
        if off >= self.users.off + self.users.len {
            return Ok(None);
        }
        self.user_at(off).map(Some)
    }

    pub fn group_next(&self, off: usize) -> R<Option<(GroupRef<'a>, usize)>> {
        let off = if off == 0 { self.groups.off } else { off };
        if off >= self.groups.off + self.groups.len {
            return Ok(None);
        }
        self.group_at(off).map(Some)
    }
}
