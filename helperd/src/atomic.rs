//! Replace a file so that readers see the old or the new content, never a
//! torn one: write a temp file in the same directory, fsync, rename, fsync the
//! directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    put(path, bytes, mode, true)
}

/// [`write`] without the fsyncs: for state that only has to survive a
/// restart of helperd, not of the machine (live sessions die with it).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    put(path, bytes, mode, false)
}

fn put(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("path has no parent"))?;
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, path)?;
        if sync {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp() {
        let d = std::env::temp_dir().join(format!("helperd-atomic-{}", std::process::id()));
        let p = d.join("sub/x.json");
        write(&p, b"one", 0o644).unwrap();
        write(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.join("sub")).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        fs::remove_dir_all(d).unwrap();
    }
}
