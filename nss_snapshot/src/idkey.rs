//! The fleet's id key and the keyed id hash: which uid or gid a name gets,
//! the same on every host of a fleet and unguessable without the key; and
//! reading such a secret from a root-only file. Re-exported by [`crate::format`].

use zeroize::Zeroize as _;

/// The deterministic id of a name: SipHash-2-4 keyed with the fleet's secret
/// 128-bit id key over `kind 0xff name`, reduced into `[min, max]`. Stable across
/// hosts, builds and Rust versions (SipHash-2-4 is fixed; a test pins it to the
/// reference vector); this exact function is part of the fleet contract (helperd
/// allocates with it, the NSS module resolves pre-login names with it as root).
/// Without the key, nobody can compute which name lands on which id, so a
/// user who picks their own name at the IdP cannot aim at another's uid.
pub fn id_hash(key: &IdKey, kind: &[u8], name: &[u8], min: u32, max: u32) -> u32 {
    #[allow(deprecated)] // core's SipHasher *is* SipHash-2-4; deprecated only as a HashMap default
    let mut h = core::hash::SipHasher::new_with_keys(key.k0(), key.k1());
    core::hash::Hasher::write(&mut h, kind);
    core::hash::Hasher::write(&mut h, &[0xff]);
    core::hash::Hasher::write(&mut h, name);
    let span = u64::from(max.saturating_sub(min)) + 1;
    let off = core::hash::Hasher::finish(&h) % span;
    min.saturating_add(u32::try_from(off).unwrap_or(0))
}

/// The fleet's id key: 128 secret bits, kept in a root-only file as 32 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct IdKey([u8; 16]);

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKey(..)")
    }
}

impl Drop for IdKey {
    fn drop(&mut self) {
        // Volatile writes (inside zeroize): the wipe is not optimised away.
        self.0.zeroize();
    }
}

/// Default location of the id key file (0600 root).
pub const DEFAULT_ID_KEY_FILE: &str = "/etc/pam-oidc/id.key";

impl IdKey {
    pub const fn from_bytes(b: [u8; 16]) -> IdKey {
        IdKey(b)
    }

    fn k0(&self) -> u64 {
        u64::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5], self.0[6], self.0[7]])
    }

    fn k1(&self) -> u64 {
        u64::from_le_bytes([
            self.0[8], self.0[9], self.0[10], self.0[11], self.0[12], self.0[13], self.0[14], self.0[15],
        ])
    }

    /// Parse the file's text: exactly 32 hex digits, surrounding whitespace ignored.
    pub fn parse(text: &[u8]) -> Result<IdKey, String> {
        let t = text.trim_ascii();
        if t.len() != 32 {
            return Err(format!("expected 32 hex digits (128 bits), found {} bytes", t.len()));
        }
        let mut k = [0u8; 16];
        for (i, pair) in t.chunks_exact(2).enumerate() {
            let hex = |c: u8| (c as char).to_digit(16);
            match (hex(pair[0]), hex(pair[1])) {
                (Some(a), Some(b)) => k[i] = (a * 16 + b) as u8,
                _ => return Err("not hex".into()),
            }
        }
        if k.iter().all(|&b| b == 0) {
            return Err("all zero".into());
        }
        Ok(IdKey(k))
    }

    /// Read the key file ([`read_private_file`]: a root-only regular file): a
    /// readable key lets users aim at uids again.
    pub fn read(path: &std::path::Path) -> Result<IdKey, String> {
        let mut buf = read_private_file(path, 128)?;
        let k = IdKey::parse(&buf).map_err(|e| format!("{}: {e}", path.display()));
        buf.zeroize();
        k
    }
}

/// Read a secret file (the id key, an HMAC secret): a regular file — not a
/// symlink, FIFO or device (opened `O_NOFOLLOW | O_NONBLOCK`, checked on the
/// open file) — owned by root, that group and others cannot read or write;
/// at most `max` bytes, into one buffer the caller wipes.
pub fn read_private_file(path: &std::path::Path, max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let m = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if m.uid() != 0 {
        return Err(format!("{}: owned by uid {}, not root; chown root", path.display(), m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: group or others may access it (mode {:o}); chmod 600",
            path.display(),
            m.mode() & 0o777
        ));
    }
    let mut buf = Vec::with_capacity(max);
    f.take(max as u64).read_to_end(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(buf)
}
