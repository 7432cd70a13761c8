//! Format 4 users through the entry points: a home directory joined from the
//! common prefix and the name, or the record's own; ERANGE exactly when the
//! buffer is one byte short; the gids (own checksum) read by initgroups only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_oidc::format::{build, User};
use nss_oidc::nss::*;
use std::ffi::{CStr, CString};

fn user(name: &str, uid: u32, dir: &str, shell: &str, gecos: &str, groups: Vec<u32>) -> User {
    User { name: name.into(), uid, gid: uid, gecos: gecos.into(), dir: dir.into(), shell: shell.into(), groups }
}

fn s(p: *const libc::c_char) -> String {
    // SAFETY: SUCCESS: every passwd string points at a NUL-terminated string in the buffer.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

/// getpwnam and getpwuid with exactly `need` bytes (SUCCESS) and one fewer (ERANGE).
fn lookup_exact(u: &User) {
    let need = u.name.len() + 2 + u.gecos.len() + u.dir.len() + u.shell.len() + 4;
    let name = CString::new(u.name.clone()).unwrap();
    let mut buf = vec![0u8; need];
    for by_uid in [false, true] {
        for len in [need - 1, need] {
            // SAFETY: `libc::passwd` is integers and raw pointers: all-zero bytes is a valid value.
            let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
            let mut err = 0;
            // SAFETY: the NSS contract: name NUL-terminated; pw and err valid; buf holds `len` writable bytes.
            let st = unsafe {
                if by_uid {
                    _nss_oidc_getpwuid_r(u.uid, &mut pw, buf.as_mut_ptr().cast(), len, &mut err)
                } else {
                    _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), len, &mut err)
                }
            };
            if len < need {
                assert_eq!((st, err), (nss_status::NSS_STATUS_TRYAGAIN, libc::ERANGE), "{} in {len}", u.name);
                continue;
            }
            assert_eq!(st, nss_status::NSS_STATUS_SUCCESS, "{}", u.name);
            assert_eq!((s(pw.pw_name), pw.pw_uid, pw.pw_gid), (u.name.clone(), u.uid, u.gid));
            assert_eq!(
                (s(pw.pw_gecos), s(pw.pw_dir), s(pw.pw_shell)),
                (u.gecos.clone(), u.dir.clone(), u.shell.clone())
            );
        }
    }
}

/// `_nss_oidc_initgroups_dyn` for `name`: the gids it added, or the status.
fn initgroups(name: &str) -> Result<Vec<u32>, nss_status> {
    let name = CString::new(name).unwrap();
    let (mut start, mut size): (libc::c_long, libc::c_long) = (0, 4);
    // SAFETY: a malloc'ed array of `size` gids, as glibc passes it (the module may realloc it).
    let mut groups = unsafe { libc::malloc(4 * std::mem::size_of::<libc::gid_t>()) }.cast::<libc::gid_t>();
    let mut err = 0;
    // SAFETY: glibc's initgroups bookkeeping: valid pointers to start, size and the malloc'ed array.
    let st = unsafe { _nss_oidc_initgroups_dyn(name.as_ptr(), 1, &mut start, &mut size, &mut groups, 0, &mut err) };
    // SAFETY: `start` gids are initialised; the array is ours to free.
    let out = unsafe { std::slice::from_raw_parts(groups, start as usize) }.to_vec();
    // SAFETY: malloc'ed above (or realloc'ed by the module).
    unsafe { libc::free(groups.cast()) };
    if st == nss_status::NSS_STATUS_SUCCESS {
        Ok(out)
    } else {
        Err(st)
    }
}

#[test]
fn users_answer_exactly_and_gids_only_for_initgroups() {
    let dir = std::env::temp_dir().join(format!("nss-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nss.snapshot");
    let users = vec![
        user("alice", 71_001, "/home/alice", "/bin/bash", "Alice", vec![81_000, 81_001]),
        user("bob", 71_002, "/home/bob", "/bin/bash", "", vec![]),
        user("carol", 71_003, "/srv/carol", "/bin/zsh", &"Carol ".repeat(30), (0..40).map(|g| 82_000 + g).collect()),
    ];
    let good = build(&users, &[], 1).unwrap();
    std::fs::write(&path, &good).unwrap();
    // SAFETY: the only test in this binary, and it spawns no thread.
    unsafe { std::env::set_var("NSS_OIDC_SNAPSHOT", &path) };
    for u in &users {
        lookup_exact(u);
        assert_eq!(initgroups(&u.name), Ok(u.groups.clone()), "{}", u.name);
    }
    // alice's first gid flipped: getpwnam still answers (it never reads the gids),
    // initgroups is unavailable, never a wrong list.
    let snap = nss_oidc::reader::Snapshot::parse(&good).unwrap();
    let a = snap.user_by_name(b"alice").unwrap().unwrap();
    use nss_oidc::format::{user_record::STRINGS, ALIGN};
    let record = a.name.as_ptr() as usize - good.as_ptr() as usize - STRINGS;
    let gids_at = record + (STRINGS + "aliceAlice".len()).next_multiple_of(ALIGN);
    let mut bad = good.clone();
    bad[gids_at] ^= 1;
    let tmp = path.with_extension("t");
    std::fs::write(&tmp, &bad).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // The module re-stats at most once a second: wait for it to map the new file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while initgroups("alice").is_ok() {
        assert!(std::time::Instant::now() < deadline, "the flipped gid was answered");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(initgroups("alice"), Err(nss_status::NSS_STATUS_UNAVAIL));
    lookup_exact(&users[0]);
    std::fs::remove_dir_all(dir).unwrap();
}
