//! The glibc NSS entry points. Each one: `catch_unwind`, null checks, then
//! safe code over [`crate::reader`]. Results are copied into the caller's
//! buffer; a buffer too small gives `NSS_STATUS_TRYAGAIN` + `ERANGE` so glibc
//! retries with a bigger one.

use crate::map::{with_snapshot, Unavail};
use crate::reader::{Fill, GroupRef, UserRef};
use libc::{c_char, c_int, c_long, gid_t, group, passwd, size_t, uid_t};
use std::ffi::CStr;
use std::sync::Mutex;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, dead_code)]
pub enum nss_status {
    NSS_STATUS_TRYAGAIN = -2,
    NSS_STATUS_UNAVAIL = -1,
    NSS_STATUS_NOTFOUND = 0,
    NSS_STATUS_SUCCESS = 1,
}
use nss_status::*;

/// Outcome of safe code, mapped to status + errno at the boundary.
enum Res {
    Found,
    NotFound,
    Unavail,
    Range,
    NoMem,
}

fn finish(r: Res, errnop: *mut c_int) -> nss_status {
    let (st, e) = match r {
        Res::Found => (NSS_STATUS_SUCCESS, 0),
        Res::NotFound => (NSS_STATUS_NOTFOUND, libc::ENOENT),
        Res::Unavail => (NSS_STATUS_UNAVAIL, libc::ENOENT),
        Res::Range => (NSS_STATUS_TRYAGAIN, libc::ERANGE),
        Res::NoMem => (NSS_STATUS_TRYAGAIN, libc::ENOMEM),
    };
    if !errnop.is_null() && e != 0 {
        // SAFETY: glibc passes a valid errno pointer; checked non-null.
        unsafe { *errnop = e };
    }
    st
}

fn guard(errnop: *mut c_int, f: impl FnOnce() -> Res) -> nss_status {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Res::Unavail);
    finish(r, errnop)
}

fn lookup<T>(
    f: impl FnOnce(&crate::reader::Snapshot<'static>) -> Result<Option<T>, crate::reader::Corrupt>,
) -> Result<Option<T>, Res> {
    match with_snapshot(f) {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(_)) | Err(Unavail::Corrupt) => Err(Res::Unavail),
        Err(Unavail::Missing) => Err(Res::Unavail),
    }
}

/// Bump allocator over the caller's buffer.
struct Buf<'a> {
    b: &'a mut [u8],
    used: usize,
}

impl Buf<'_> {
    /// Copy `s` + NUL; returns a pointer into the buffer.
    fn str(&mut self, s: &[u8]) -> Option<*mut c_char> {
        let end = self.used.checked_add(s.len())?.checked_add(1)?;
        let dst = self.b.get_mut(self.used..end)?;
        dst[..s.len()].copy_from_slice(s);
        dst[s.len()] = 0;
        let p = dst.as_mut_ptr().cast::<c_char>();
        self.used = end;
        Some(p)
    }

    /// The pieces back to back + NUL.
    fn join(&mut self, parts: [&[u8]; 2]) -> Option<*mut c_char> {
        let len = parts[0].len().checked_add(parts[1].len())?;
        let end = self.used.checked_add(len)?.checked_add(1)?;
        let dst = self.b.get_mut(self.used..end)?;
        let (a, rest) = dst.split_at_mut(parts[0].len());
        a.copy_from_slice(parts[0]);
        rest[..parts[1].len()].copy_from_slice(parts[1]);
        rest[parts[1].len()] = 0;
        let p = dst.as_mut_ptr().cast::<c_char>();
        self.used = end;
        Some(p)
    }

    /// `tpl` with each `{name}` replaced by `name`, + NUL.
    fn template(&mut self, tpl: &[u8], name: &[u8]) -> Option<*mut c_char> {
        const PH: &[u8] = b"{name}";
        let start = self.used;
        let mut i = 0;
        while i < tpl.len() {
            let (piece, step) = if tpl[i..].starts_with(PH) { (name, PH.len()) } else { (&tpl[i..i + 1], 1) };
            let end = self.used.checked_add(piece.len())?;
            self.b.get_mut(self.used..end)?.copy_from_slice(piece);
            self.used = end;
            i += step;
        }
        *self.b.get_mut(self.used)? = 0;
        self.used += 1;
        Some(self.b.get_mut(start..)?.as_mut_ptr().cast::<c_char>())
    }
}

/// # Safety
/// `buf` must point to `len` writable bytes (or be null with len 0).
unsafe fn buf<'a>(buf: *mut c_char, len: size_t) -> Option<Buf<'a>> {
    if buf.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `len` writable bytes at `buf` (non-null, checked
    // above) for 'a — glibc's buffer for this one call, which nothing else touches meanwhile.
    Some(Buf { b: unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) }, used: 0 })
}

fn fill_passwd(u: &UserRef<'_>, pw: &mut passwd, b: &mut Buf<'_>) -> Res {
    let (Some(name), Some(pass), Some(gecos), Some(dir), Some(shell)) =
        (b.str(u.name), b.str(b"*"), b.str(u.gecos), b.join(u.dir_parts()), b.str(u.shell))
    else {
        return Res::Range;
    };
    *pw = passwd {
        pw_name: name,
        pw_passwd: pass,
        pw_uid: u.uid,
        pw_gid: u.gid,
        pw_gecos: gecos,
        pw_dir: dir,
        pw_shell: shell,
    };
    Res::Found
}

/// The id key for pre-login names: readable by root only, and read only when
/// the *real* uid is root (sshd, login) — never for a setuid program run by a
/// user, nor inside a caching daemon (nscd) that would hand the answer to
/// everyone: pre-login answers and the key stay root's.
fn read_id_key(path: &[u8]) -> Option<crate::format::IdKey> {
    use std::os::unix::ffi::OsStrExt as _;
    // SAFETY: getuid has no preconditions and cannot fail.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let comm = std::fs::read("/proc/self/comm").unwrap_or_default();
    // nscd caches answers for every user; systemd-userdbd's workers answer
    // `userdbctl` for any caller (comm is cut to 15 bytes).
    if matches!(comm.trim_ascii(), b"nscd" | b"unscd") || comm.starts_with(b"systemd-userwor") {
        return None;
    }
    crate::format::IdKey::read(std::path::Path::new(std::ffi::OsStr::from_bytes(path))).ok()
}

/// A pre-login user: the uid it will keep, its own uid as primary gid.
fn fill_prelogin(name: &[u8], p: &crate::reader::PreloginUser<'_>, pw: &mut passwd, b: &mut Buf<'_>) -> Res {
    let (Some(n), Some(pass), Some(gecos), Some(dir), Some(shell)) =
        (b.str(name), b.str(b"*"), b.str(b""), b.template(p.home_template, name), b.str(p.shell))
    else {
        return Res::Range;
    };
    *pw = passwd {
        pw_name: n,
        pw_passwd: pass,
        pw_uid: p.uid,
        pw_gid: p.uid,
        pw_gecos: gecos,
        pw_dir: dir,
        pw_shell: shell,
    };
    Res::Found
}

/// One bounds check, one copy of the member block, then the member pointers
/// ([`crate::reader::fill_group`], safe code: it writes the pointer values).
fn fill_group(g: &GroupRef<'_>, gr: &mut group, b: &mut Buf<'_>) -> Res {
    let Some(dst) = b.b.get_mut(b.used..) else { return Res::Range };
    // The address only (the member pointers are computed from it); the raw
    // pointer below is taken after fill_group has finished with `dst`.
    let addr = dst.as_ptr() as usize;
    let l = match crate::reader::fill_group(g, dst, addr) {
        Ok(l) => l,
        Err(Fill::Range) => return Res::Range,
        Err(Fill::Corrupt) => return Res::Unavail,
    };
    let base = dst.as_mut_ptr();
    b.used += l.used;
    // SAFETY: the offsets are inside `dst` (fill_group wrote that many bytes
    // from `base`); `mem` is pointer-aligned and holds n_members()+1 pointers
    // into the copied block, the last NULL; name and passwd are NUL-terminated.
    *gr = unsafe {
        group {
            gr_name: base.add(l.name).cast::<c_char>(),
            gr_passwd: base.add(l.passwd).cast::<c_char>(),
            gr_gid: g.gid,
            gr_mem: base.add(l.mem).cast::<*mut c_char>(),
        }
    };
    Res::Found
}

fn cstr<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: glibc passes NUL-terminated names; checked non-null.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

type Snap = crate::reader::Snapshot<'static>;
type Found = Result<Option<Res>, crate::reader::Corrupt>;

/// One keyed lookup: `catch_unwind`, null checks, the caller's buffer, then
/// `f` on the snapshot (`Ok(None)`: not found).
///
/// # Safety
/// `out` is null or valid for writes; `b` holds `len` writable bytes.
unsafe fn entry<T>(
    out: *mut T,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
    f: impl FnOnce(&Snap, &mut T, &mut Buf<'_>) -> Found,
) -> nss_status {
    guard(errnop, || {
        // SAFETY: glibc passes a valid result pointer; checked non-null.
        let Some(out) = (unsafe { out.as_mut() }) else { return Res::Unavail };
        // SAFETY: `entry`'s contract is `buf`'s: `b` holds `len` writable bytes.
        let Some(mut b) = (unsafe { buf(b, len) }) else { return Res::Range };
        match lookup(|s| f(s, out, &mut b)) {
            Ok(Some(r)) => r,
            Ok(None) => Res::NotFound,
            Err(r) => r,
        }
    })
}

/// # Safety
/// glibc NSS calling convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_getpwnam_r(
    name: *const c_char,
    pw: *mut passwd,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
) -> nss_status {
    let Some(name) = cstr(name) else { return finish(Res::NotFound, errnop) };
    // SAFETY: glibc's NSS contract is `entry`'s: the result struct pointer is null or
    // writable, `b` holds `len` writable bytes, errnop is null or writable.
    unsafe {
        entry(pw, b, len, errnop, |s, pw, b| match s.user_by_name(name)? {
            Some(u) => Ok(Some(fill_passwd(&u, pw, b))),
            None => Ok(s.prelogin_user(name, read_id_key)?.map(|p| fill_prelogin(name, &p, pw, b))),
        })
    }
}

/// # Safety
/// glibc NSS calling convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_getpwuid_r(
    uid: uid_t,
    pw: *mut passwd,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
) -> nss_status {
    // SAFETY: glibc's NSS contract is `entry`'s: the result struct pointer is null or
    // writable, `b` holds `len` writable bytes, errnop is null or writable.
    unsafe { entry(pw, b, len, errnop, |s, pw, b| Ok(s.user_by_uid(uid)?.map(|u| fill_passwd(&u, pw, b)))) }
}

/// # Safety
/// glibc NSS calling convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_getgrnam_r(
    name: *const c_char,
    gr: *mut group,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
) -> nss_status {
    let Some(name) = cstr(name) else { return finish(Res::NotFound, errnop) };
    // SAFETY: glibc's NSS contract is `entry`'s: the result struct pointer is null or
    // writable, `b` holds `len` writable bytes, errnop is null or writable.
    unsafe { entry(gr, b, len, errnop, |s, gr, b| Ok(s.group_by_name(name)?.map(|g| fill_group(&g, gr, b)))) }
}

/// # Safety
/// glibc NSS calling convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_getgrgid_r(
    gid: gid_t,
    gr: *mut group,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
) -> nss_status {
    // SAFETY: glibc's NSS contract is `entry`'s: the result struct pointer is null or
    // writable, `b` holds `len` writable bytes, errnop is null or writable.
    unsafe { entry(gr, b, len, errnop, |s, gr, b| Ok(s.group_by_gid(gid)?.map(|g| fill_group(&g, gr, b)))) }
}

/// Supplementary groups of `user` (glibc's `initgroups`, `id`, sshd, sudo).
///
/// # Safety
/// glibc NSS calling convention: `*groupsp` is a malloc'ed array of `*size`
/// gids, `*start` used; we may realloc it, never beyond `limit` (if > 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_initgroups_dyn(
    user: *const c_char,
    skip: gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut gid_t,
    limit: c_long,
    errnop: *mut c_int,
) -> nss_status {
    guard(errnop, || {
        let Some(user) = cstr(user) else {
            return Res::NotFound;
        };
        if start.is_null() || size.is_null() || groupsp.is_null() {
            return Res::Unavail;
        }
        let mut gids = [0u32; 64];
        let found = lookup(|s| {
            let Some(u) = s.user_by_name(user)? else { return Ok(None) };
            let mut n = 0;
            let mut extra = vec![];
            for g in u.groups()? {
                if n < gids.len() {
                    gids[n] = g;
                    n += 1;
                } else {
                    extra.push(g);
                }
            }
            Ok(Some((n, extra)))
        });
        let (n, extra) = match found {
            Ok(Some(x)) => x,
            Ok(None) => return Res::NotFound,
            Err(r) => return r,
        };
        for g in gids[..n].iter().copied().chain(extra) {
            // SAFETY: pointers checked non-null above; glibc owns the array and
            // its bookkeeping, which we update exactly as glibc's own modules do.
            match unsafe { add_group(g, skip, start, size, groupsp, limit) } {
                Ok(true) => {}
                Ok(false) => break, // limit reached
                Err(()) => return Res::NoMem,
            }
        }
        Res::Found
    })
}

/// Append `g` unless skipped or present. Ok(false): the limit is reached.
///
/// # Safety
/// Valid glibc initgroups bookkeeping pointers.
unsafe fn add_group(
    g: gid_t,
    skip: gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut gid_t,
    limit: c_long,
) -> Result<bool, ()> {
    if g == skip {
        return Ok(true);
    }
    // SAFETY: the contract: start, size and groupsp are glibc's non-null, valid
    // initgroups pointers (the caller checked them non-null).
    let (st, sz, arr) = unsafe { (*start, *size, *groupsp) };
    if st < 0 || sz < st || (arr.is_null() && sz > 0) {
        return Err(());
    }
    // SAFETY: arr has `sz` >= `st` initialised gids.
    if !arr.is_null() && unsafe { std::slice::from_raw_parts(arr, st as usize) }.contains(&g) {
        return Ok(true);
    }
    if limit > 0 && st >= limit {
        return Ok(false);
    }
    let mut arr = arr;
    if st == sz {
        let mut new = sz.max(1).checked_mul(2).ok_or(())?;
        if limit > 0 {
            new = new.min(limit);
        }
        let bytes = usize::try_from(new).map_err(|_| ())?.checked_mul(std::mem::size_of::<gid_t>()).ok_or(())?;
        // SAFETY: arr is glibc's malloc'ed array (or NULL); realloc keeps it on failure.
        let p = unsafe { libc::realloc(arr.cast(), bytes) }.cast::<gid_t>();
        if p.is_null() {
            return Err(());
        }
        arr = p;
        // SAFETY: groupsp and size are valid and writable (the contract); `p` replaces
        // the array realloc just moved, so glibc's bookkeeping stays consistent.
        unsafe {
            *groupsp = p;
            *size = new;
        }
    }
    // SAFETY: st < size after growth; arr has room.
    unsafe {
        *arr.add(st as usize) = g;
        *start = st + 1;
    }
    Ok(true)
}

/// Enumeration cursors (glibc serialises set/get/end per database).
static PW_CURSOR: Mutex<usize> = Mutex::new(0);
static GR_CURSOR: Mutex<usize> = Mutex::new(0);

fn reset(c: &Mutex<usize>) {
    *c.lock().unwrap_or_else(|p| p.into_inner()) = 0;
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_oidc_setpwent(_stayopen: c_int) -> nss_status {
    reset(&PW_CURSOR);
    NSS_STATUS_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_oidc_endpwent() -> nss_status {
    reset(&PW_CURSOR);
    NSS_STATUS_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_oidc_setgrent(_stayopen: c_int) -> nss_status {
    reset(&GR_CURSOR);
    NSS_STATUS_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_oidc_endgrent() -> nss_status {
    reset(&GR_CURSOR);
    NSS_STATUS_SUCCESS
}

/// The next entry of an enumeration; the cursor only advances when the entry
/// fit the buffer (after ERANGE glibc retries the same entry with more room).
///
/// # Safety
/// As [`entry`].
unsafe fn next_entry<T>(
    cursor: &Mutex<usize>,
    out: *mut T,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
    next: impl FnOnce(&Snap, usize, &mut T, &mut Buf<'_>) -> Result<Option<(Res, usize)>, crate::reader::Corrupt>,
) -> nss_status {
    let mut cur = cursor.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: `next_entry`'s contract is `entry`'s; the pointers pass through unchanged.
    unsafe {
        entry(out, b, len, errnop, |s, out, b| {
            Ok(next(s, *cur, out, b)?.map(|(r, n)| {
                if matches!(r, Res::Found) {
                    *cur = n;
                }
                r
            }))
        })
    }
}

/// # Safety
/// glibc NSS calling convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_getpwent_r(
    pw: *mut passwd,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
) -> nss_status {
    // SAFETY: glibc's NSS contract is `entry`'s: the result struct pointer is null or
    // writable, `b` holds `len` writable bytes, errnop is null or writable.
    unsafe {
        next_entry(&PW_CURSOR, pw, b, len, errnop, |s, cur, pw, b| {
            Ok(s.user_next(cur)?.map(|(u, n)| (fill_passwd(&u, pw, b), n)))
        })
    }
}

/// # Safety
/// glibc NSS calling convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_oidc_getgrent_r(
    gr: *mut group,
    b: *mut c_char,
    len: size_t,
    errnop: *mut c_int,
) -> nss_status {
    // SAFETY: glibc's NSS contract is `entry`'s: the result struct pointer is null or
    // writable, `b` holds `len` writable bytes, errnop is null or writable.
    unsafe {
        next_entry(&GR_CURSOR, gr, b, len, errnop, |s, cur, gr, b| {
            Ok(s.group_next(cur)?.map(|(g, n)| (fill_group(&g, gr, b), n)))
        })
    }
}
