//! The token cache: `$XDG_CACHE_HOME/pam-oidc/` (default `~/.cache/pam-oidc`),
//! a directory only its owner may enter (0700) holding one file per issuer and
//! client (0600), each replaced atomically (a new file, fsync, rename). A lock
//! file serializes refreshes, so two logins at once never spend the same
//! rotating refresh token.

use crate::oidc::sha256;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub issuer: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The ID token has been presented to a host (each host accepts it once).
    #[serde(default)]
    pub id_token_used: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When this entry was written (Unix seconds).
    #[serde(default)]
    pub updated: i64,
}

pub struct Cache {
    pub dir: PathBuf,
}

/// A held lock (released on drop, when the file closes).
pub struct Lock(#[allow(dead_code)] File);

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl Cache {
    pub fn default_dir() -> Result<PathBuf, String> {
        let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                PathBuf::from(std::env::var_os("HOME").ok_or("neither XDG_CACHE_HOME nor HOME is set")?).join(".cache")
            }
        };
        Ok(base.join("pam-oidc"))
    }

    /// Open (creating it 0700) the cache directory. A directory of another
    /// user, or a symlink, is refused; one of ours that others may enter is
    /// made 0700.
    pub fn open(dir: &Path) -> Result<Cache, String> {
        if let Some(parent) = dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !m.is_dir() {
            return Err(format!("{}: not a directory", dir.display()));
        }
        if m.uid() != euid() {
            return Err(format!("{}: owned by uid {}, not by you", dir.display(), m.uid()));
        }
        if m.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(Cache { dir: dir.to_path_buf() })
    }

    /// The file for one issuer and client: a hash, so no URL character ends up in a path.
    pub fn path(&self, issuer: &str, client_id: &str) -> PathBuf {
        let h = sha256(format!("{issuer}\n{client_id}").as_bytes());
        let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.json"))
    }

    pub fn load(&self, issuer: &str, client_id: &str) -> Result<Option<Entry>, String> {
        let p = self.path(issuer, client_id);
        let f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        let m = f.metadata().map_err(|e| format!("{}: {e}", p.display()))?;
        if !m.is_file() || m.uid() != euid() || m.mode() & 0o077 != 0 {
            return Err(format!("{}: not a private file of yours (0600): not used", p.display()));
        }
        let e: Entry = serde_json::from_reader(std::io::BufReader::new(f).take_limited())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok((e.issuer == issuer && e.client_id == client_id).then_some(e))
    }

    /// Write `e` atomically: a new 0600 file beside the old, fsync'd, renamed over it.
    pub fn store(&self, e: &Entry) -> Result<(), String> {
        let p = self.path(&e.issuer, &e.client_id);
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            p.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            let body = zeroize::Zeroizing::new(serde_json::to_vec_pretty(e).map_err(std::io::Error::other)?);
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {err}", p.display())
        })
    }

    pub fn remove(&self, issuer: &str, client_id: &str) -> Result<bool, String> {
        let p = self.path(issuer, client_id);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    /// Hold the issuer+client's lock (flock, exclusive) until dropped.
    pub fn lock(&self, issuer: &str, client_id: &str) -> Result<Lock, String> {
        let p = self.path(issuer, client_id).with_extension("lock");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; blocks until granted.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("{}: {}", p.display(), std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }
}

/// A reader that stops after 1 MiB (a cache file is a few KB).
trait TakeLimited: std::io::Read + Sized {
    fn take_limited(self) -> std::io::Take<Self> {
        self.take(1024 * 1024)
    }
}
impl<R: std::io::Read> TakeLimited for R {}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("pam-oidc-client-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn private_dir_private_files_atomic_replace() {
        let base = tmp("cache");
        let dir = base.join("pam-oidc");
        let c = Cache::open(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let e = Entry {
            issuer: "https://i".into(),
            client_id: "c".into(),
            id_token: Some("eyJ.a.b".into()),
            refresh_token: Some("rt-1".into()),
            ..Entry::default()
        };
        c.store(&e).unwrap();
        let p = c.path("https://i", "c");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(c.load("https://i", "c").unwrap().unwrap(), e);
        // Replaced, not rewritten in place: a reader holding the old file keeps the old content.
        let old = std::fs::read_to_string(&p).unwrap();
        let inode = std::fs::metadata(&p).unwrap().ino();
        let e2 = Entry { refresh_token: Some("rt-2".into()), ..e.clone() };
        c.store(&e2).unwrap();
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), inode);
        assert!(old.contains("rt-1"));
        assert_eq!(c.load("https://i", "c").unwrap().unwrap().refresh_token.as_deref(), Some("rt-2"));
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|d| d.file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Other issuers and clients are other files.
        assert!(c.load("https://i", "d").unwrap().is_none());
        assert_ne!(c.path("https://i", "c"), c.path("https://j", "c"));
        // A file others may read is not trusted.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(c.load("https://i", "c").is_err());
        assert!(c.remove("https://i", "c").unwrap());
        assert!(!c.remove("https://i", "c").unwrap());
        // A cache dir others could enter is tightened.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Cache::open(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let _l = c.lock("https://i", "c").unwrap();
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_symlinked_cache_file_is_refused() {
        let base = tmp("symlink");
        let c = Cache::open(&base.join("pam-oidc")).unwrap();
        let target = base.join("elsewhere");
        std::fs::write(&target, "{}").unwrap();
        std::os::unix::fs::symlink(&target, c.path("https://i", "c")).unwrap();
        assert!(c.load("https://i", "c").is_err());
        let _ = std::fs::remove_dir_all(&base);
    }
}
