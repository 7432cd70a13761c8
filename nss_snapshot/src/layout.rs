//! The snapshot's byte layout, named once: every header field's and every
//! record field's offset is a `pub const` here, used by both the writer
//! ([`crate::format`]) and the reader ([`crate::reader`]), as SSSD's
//! `mmap_cache.h` does for its memory caches. Little-endian; regions, records
//! and tables 4-byte aligned ([`ALIGN`]), user records on 64-byte lines ([`LINE`]). Moving any of these changes the file
//! format: bump [`VERSION`] (`tests/layout.rs` pins the bytes).
//!
//! ```text
//! header (100 bytes) magic "OIDCNSS\x01", version, header_len, total_len,
//!                    header_sum, stale, n_users, n_groups,
//!                    users (off,len), groups (off,len),
//!                    4 index tables (off,slots): user name, uid, group name, gid,
//!                    generation (u64), pre-login rule offset (0 = none),
//!                    common strings offset (0 = none)
//! (zeros up to the next 64-byte line)
//! user records       64-byte aligned, each a whole number of lines (zero padded):
//!                    len, sum, uid, gid, ngroups, gsum, 4 string lengths (u16),
//!                    name, gecos, dir, shell, pad to 4, gids[ngroups], pad to 64;
//!                    `sum` covers the passwd part (up to the gids), `gsum` the gids,
//!                    so getpw* read one line when the passwd part fits in it;
//!                    dir length 0 = the common home prefix + name, shell length 0
//!                    = the common shell (dir and shell are never empty);
//!                    in the order of their slots in the user name table
//! group records      len, sum, gid, nmem, name_len (u16), pad (u16), block_len,
//!                    name (padded), member offsets[nmem] (u32, into the block),
//!                    member block (every name NUL-terminated, back to back), pad;
//!                    in the order of their slots in the group name table
//! pre-login rule     len, sum, uid_min, uid_max, key/home/shell/npat (u16),
//!                    pattern lengths (u16, padded), key, home, shell, patterns, pad
//! common strings     len, sum, home prefix length (u16), shell length (u16),
//!                    home prefix, shell, pad (checked once, when the file is mapped)
//! index tables       slots of (key u32, absolute record offset u32): the key is
//!                    the name's fnv32 or the id itself, so a probe compares
//!                    keys inside the table and touches only the record that
//!                    matches; EMPTY offset = u32::MAX; open addressing with
//!                    linear probing, slots a power of two
//! ```
//!
//! A group's members are one block laid out as glibc's `struct group` wants
//! them (NUL-terminated names back to back): a lookup checks the record once,
//! copies the block with one copy and points `gr_mem` at the offsets.
//!
//! Locality (issue 17): a user lookup reads one index line and then its
//! record's first line; with the home directory and shell most users share kept
//! once in the common strings, and the gids after the passwd fields, a typical
//! user's passwd part is one line, which no record ever straddles.

pub const MAGIC: [u8; 8] = *b"OIDCNSS\x01";
/// 2: the pre-login rule names the root-only id key file instead of carrying a public key.
/// 3: table slots carry the key the probe compares; a group's members are one
/// NUL-separated block with an offset array; records in name-table order;
/// the record checksum runs four lanes.
/// 4: user records are 64-byte aligned lines, the passwd part (own checksum)
/// before the gids (own checksum); the common home prefix and shell are kept once.
pub const VERSION: u32 = 4;
/// A cache line: user records start on one and fill whole ones.
pub const LINE: usize = 64;
/// Alignment of every region, record and table (records are padded to it).
pub const ALIGN: usize = 4;
/// An index table slot: the key (u32) then the absolute record offset (u32), or
/// [`EMPTY`] as the offset.
pub const TABLE_ENTRY: usize = 8;
/// In a slot: where the record offset is, after the key.
pub const SLOT_OFFSET: usize = 4;
pub const EMPTY: u32 = u32::MAX;

/// Header fields: byte offsets from the start of the file. Each is a u32
/// unless noted. A region field is a pair (offset, length in bytes), a table
/// field a pair (offset, slots): the offset at the field, the second value
/// [`PAIR_SECOND`] bytes after it.
pub mod header {
    /// `[u8; 8]`, [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    /// Always [`LEN`]; a reader refuses any other.
    pub const HEADER_LEN: usize = 12;
    /// The file's length; a reader refuses a file of another length.
    pub const TOTAL_LEN: usize = 16;
    /// `header_sum`: over the header with this field and [`STALE`] read as zero.
    pub const SUM: usize = 20;
    /// The one mutable field: helperd sets it in the old file after replacing it.
    pub const STALE: usize = 24;
    pub const N_USERS: usize = 28;
    pub const N_GROUPS: usize = 32;
    /// Region of the user records.
    pub const USERS: usize = 36;
    /// Region of the group records.
    pub const GROUPS: usize = 44;
    /// Table: user name (fnv32) → user record.
    pub const USER_NAME_TABLE: usize = 52;
    /// Table: uid (`hash_id`) → user record.
    pub const UID_TABLE: usize = 60;
    /// Table: group name (fnv32) → group record.
    pub const GROUP_NAME_TABLE: usize = 68;
    /// Table: gid (`hash_id`) → group record.
    pub const GID_TABLE: usize = 76;
    /// u64.
    pub const GENERATION: usize = 84;
    /// Offset of the pre-login rule record; 0 = none.
    pub const RULE: usize = 92;
    /// Offset of the common strings record; 0 = none.
    pub const COMMON: usize = 96;
    /// The header's length.
    pub const LEN: usize = 100;
    /// In a pair field: where the length (or slot count) is, after the offset.
    pub const PAIR_SECOND: usize = 4;
}

pub const HEADER_LEN: usize = header::LEN;
pub const STALE_OFFSET: usize = header::STALE;
pub const HEADER_SUM_OFFSET: usize = header::SUM;

/// The fields every record starts with (offsets from the record's start).
pub mod record {
    /// u32: the record's length, padding included.
    pub const LEN: usize = 0;
    /// u32: `sum32` of the bytes from [`BODY`] to the end of the record.
    pub const SUM: usize = 4;
    pub const BODY: usize = 8;
    /// The shortest record a reader accepts; each kind's own fields are
    /// bounds-checked when they are read.
    pub const MIN_LEN: usize = 16;
}

/// A user record's fields (after [`record`]'s); the four lengths are u16.
/// The record starts on a [`super::LINE`] and its length is a multiple of it.
/// [`record::SUM`] covers the bytes from [`record::BODY`] to the gids (the
/// passwd part, [`GSUM`] included); [`GSUM`] covers the gids.
pub mod user_record {
    pub const UID: usize = 8;
    pub const GID: usize = 12;
    pub const NGROUPS: usize = 16;
    /// u32: `sum32` of the gids (`4 × ngroups` bytes).
    pub const GSUM: usize = 20;
    pub const NAME_LEN: usize = 24;
    pub const GECOS_LEN: usize = 26;
    /// 0: the common home prefix followed by the name.
    pub const DIR_LEN: usize = 28;
    /// 0: the common shell.
    pub const SHELL_LEN: usize = 30;
    /// name, gecos, dir, shell, padding to [`super::ALIGN`], then u32 × ngroups
    /// and zero padding to a whole line.
    pub const STRINGS: usize = 32;
}

/// The common strings record's fields (after [`record`]'s): what most users
/// share, kept once. Lengths u16.
pub mod common_record {
    pub const HOME_LEN: usize = 8;
    pub const SHELL_LEN: usize = 10;
    /// The home prefix, then the shell, then padding.
    pub const STRINGS: usize = 12;
}

/// A group record's fields (after [`record`]'s).
pub mod group_record {
    pub const GID: usize = 8;
    pub const NMEM: usize = 12;
    /// u16, followed by a zero u16.
    pub const NAME_LEN: usize = 16;
    /// u32: the member block's length in bytes (NULs included).
    pub const BLOCK_LEN: usize = 20;
    /// The name, padded to [`super::ALIGN`]; then u32 × nmem member offsets
    /// (each into the block, at the start of a NUL-terminated name), then the
    /// member block and padding.
    pub const NAME: usize = 24;
}

/// The pre-login rule record's fields (after [`record`]'s); the lengths and
/// the pattern count are u16.
pub mod rule_record {
    pub const UID_MIN: usize = 8;
    pub const UID_MAX: usize = 12;
    pub const KEY_FILE_LEN: usize = 16;
    pub const HOME_LEN: usize = 18;
    pub const SHELL_LEN: usize = 20;
    pub const N_PATTERNS: usize = 22;
    /// u16 × npat, padded to [`super::ALIGN`], then key file, home, shell,
    /// the patterns and padding.
    pub const PATTERN_LENS: usize = 24;
}
