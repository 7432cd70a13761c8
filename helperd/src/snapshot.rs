//! Replace the NSS snapshot: atomic rename of the new file, then set the
//! `stale` word in the old one so every process that has it mapped re-maps on
//! its next lookup (no `stat` per lookup needed).

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let old = std::fs::OpenOptions::new().write(true).open(path).ok();
    crate::atomic::write(path, bytes, 0o644)?;
    if let Some(mut f) = old {
        f.seek(SeekFrom::Start(nss_snapshot::format::STALE_OFFSET as u64))?;
        f.write_all(&1u32.to_le_bytes())?;
    }
    Ok(())
}
