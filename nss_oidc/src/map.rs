//! The process-wide read-only mapping of the snapshot.
//!
//! A lookup takes a read lock and uses the mapping as it is, unless the file
//! was marked stale by helperd (one memory read) or a second has passed since
//! the last `stat` (a vDSO clock read); then the path is re-`stat`ed and, if
//! the inode changed, re-mapped under the write lock. A mapping is unmapped
//! only under the write lock, so no reader ever sees freed memory.

use crate::format::STALE_OFFSET;
use crate::reader::Snapshot;
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::RwLock;

/// Why a lookup could not be answered from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavail {
    /// No snapshot file (helperd never ran, or not installed).
    Missing,
    /// The file is unreadable, truncated or corrupt.
    Corrupt,
}

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    dev: u64,
    ino: u64,
    snap: Snapshot<'static>,
}

// SAFETY: the mapping is read-only shared memory; the raw pointer is only
// dereferenced through `snap` (immutable bytes) or atomically (the stale flag).
unsafe impl Send for Mapping {}
// SAFETY: as above; no interior mutability through &Mapping except atomics.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn stale(&self) -> bool {
        // SAFETY: len >= HEADER_LEN (checked by Snapshot::parse) and the
        // offset is 4-aligned in a page-aligned mapping; helperd may write this
        // word concurrently, hence the atomic load.
        let flag = unsafe { &*(self.ptr.cast::<u8>().add(STALE_OFFSET).cast::<AtomicU32>()) };
        flag.load(Ordering::Relaxed) != 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap and are unmapped once;
        // Drop runs under the write lock (or at exit), when no reader holds `snap`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

unsafe extern "C" {
    /// glibc: NULL in setuid/setgid (AT_SECURE) processes.
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

static STATE: RwLock<Option<Mapping>> = RwLock::new(None);
static LAST_STAT: AtomicI64 = AtomicI64::new(i64::MIN);

/// [`crate::format::PATH_ENV`] as a C string (no allocation on a lookup).
const PATH_ENV: &CStr = c"NSS_OIDC_SNAPSHOT";

fn path() -> &'static CStr {
    // secure_getenv: ignored in setuid/setgid programs (sudo, su), so a user
    // cannot point them at a fake user database.
    // SAFETY: a NUL-terminated literal; the returned pointer (if any) points
    // into the environment, which lives for the process.
    let p = unsafe { secure_getenv(PATH_ENV.as_ptr()) };
    if p.is_null() {
        return c"/var/cache/pam-oidc/nss.snapshot";
    }
    // SAFETY: non-NULL secure_getenv results are NUL-terminated environment strings.
    unsafe { CStr::from_ptr(p) }
}

fn coarse_now() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer; CLOCK_MONOTONIC_COARSE is served by the vDSO.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec
}

fn stat_path(p: &CStr) -> Option<(u64, u64)> {
    // SAFETY: zeroed `stat` is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: p is NUL-terminated; st is a valid out-pointer.
    if unsafe { libc::stat(p.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

fn map_file(p: &CStr) -> Result<Mapping, Unavail> {
    // SAFETY: p is NUL-terminated.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Unavail::Missing);
    }
    // SAFETY: `libc::stat` is a plain C struct of integers: all zero bytes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open (checked >= 0 above, closed only below); &mut st is a
    // valid, writable `struct stat` for fstat to fill.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    let len = usize::try_from(st.st_size).unwrap_or(0);
    if !ok || len < crate::format::HEADER_LEN || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        // SAFETY: fd is open and closed once.
        unsafe { libc::close(fd) };
        return Err(Unavail::Corrupt);
    }
    // SAFETY: read-only shared mapping of a regular file of `len` bytes; the fd
    // may be closed afterwards (the mapping keeps the inode).
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
    // SAFETY: fd is open and closed once.
    unsafe { libc::close(fd) };
    if ptr == libc::MAP_FAILED {
        return Err(Unavail::Corrupt);
    }
    if len >= crate::format::PAD_TO {
        // A hint, its result ignored: where the file system caches files in
        // large folios (ext4 since Linux 6.16, xfs), faults on this mapping
        // read the file in 2 MiB folios and map them with 2 MiB pages, so a
        // lookup in a large snapshot takes no TLB miss (the writer pads such
        // files to whole 2 MiB). Measured at 100k users on Linux 6.18 with the
        // page cache refilled by faults: getpwuid 107–117 ns with it, 130–134
        // without; MADV_RANDOM (147) and MADV_WILLNEED (126; with this hint,
        // 138: its read-ahead fills small folios first) do not help.
        // SAFETY: ptr/len are the mapping just made; madvise only changes how
        // the kernel backs it.
        unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
    }
    // SAFETY: ptr..ptr+len is mapped readable until munmap in Mapping::drop,
    // which only runs under the write lock when no `Snapshot` borrow is live.
    // Note: a file truncated by someone else after mapping would SIGBUS; helperd
    // never truncates (it replaces by rename), and the state dir is root-only.
    let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    match Snapshot::parse(bytes) {
        Ok(snap) => Ok(Mapping { ptr, len, dev: st.st_dev, ino: st.st_ino, snap }),
        Err(_) => {
            // SAFETY: unmapping what we just mapped; `bytes` is not used after this.
            unsafe { libc::munmap(ptr, len) };
            Err(Unavail::Corrupt)
        }
    }
}

/// Run `f` on the current snapshot.
pub fn with_snapshot<T>(f: impl FnOnce(&Snapshot<'static>) -> T) -> Result<T, Unavail> {
    let now = coarse_now();
    let due = LAST_STAT.load(Ordering::Relaxed) != now;
    if !due {
        let guard = STATE.read().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = guard.as_ref().filter(|m| !m.stale()) {
            return Ok(f(&m.snap));
        }
    }
    let mut guard = STATE.write().unwrap_or_else(|p| p.into_inner());
    LAST_STAT.store(now, Ordering::Relaxed);
    let p = path();
    let current = stat_path(p);
    let keep = match (guard.as_ref(), current) {
        (Some(m), Some((dev, ino))) => m.dev == dev && m.ino == ino && !m.stale(),
        _ => false,
    };
    if !keep {
        *guard = None;
        if current.is_none() {
            return Err(Unavail::Missing);
        }
        *guard = Some(map_file(p)?);
    }
    match guard.as_ref() {
        Some(m) => Ok(f(&m.snap)),
        None => Err(Unavail::Missing),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_path_matches_format() {
        assert_eq!(super::path().to_str().ok(), Some(crate::format::DEFAULT_PATH));
        assert_eq!(super::PATH_ENV.to_str().ok(), Some(crate::format::PATH_ENV));
    }
}
