//! Many mutated snapshot files through the real mapping and entry points:
//! random truncations and byte flips never crash, never hang, never answer wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_oidc::format::{build, Group, User};
use nss_oidc::nss::*;
use std::ffi::{CStr, CString};
use std::io::{Seek, SeekFrom, Write};

fn data() -> (Vec<User>, Vec<Group>) {
    let users = (0..40)
        .map(|i| User {
            name: format!("u{i}"),
            uid: 70_000 + i,
            gid: 70_000 + i,
            gecos: format!("User {i}"),
            dir: format!("/home/u{i}"),
            shell: "/bin/sh".into(),
            groups: vec![80_000, 80_001],
        })
        .collect();
    let groups = vec![
        Group { name: "g0".into(), gid: 80_000, members: (0..40).map(|i| format!("u{i}")).collect() },
        Group { name: "g1".into(), gid: 80_001, members: vec!["u1".into()] },
    ];
    (users, groups)
}

fn replace(path: &std::path::Path, bytes: &[u8], n: usize) {
    let old = std::fs::OpenOptions::new().write(true).open(path).ok();
    let tmp = path.with_extension(format!("t{n}"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    if let Some(mut f) = old {
        if f.seek(SeekFrom::Start(nss_oidc::format::STALE_OFFSET as u64)).is_ok() {
            let _ = f.write_all(&1u32.to_le_bytes());
        }
    }
}

fn ok_status(st: nss_status) -> bool {
    matches!(st, nss_status::NSS_STATUS_SUCCESS | nss_status::NSS_STATUS_NOTFOUND | nss_status::NSS_STATUS_UNAVAIL)
}

#[test]
fn mutated_files_never_crash_or_lie() {
    let dir = std::env::temp_dir().join(format!("nss-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nss.snapshot");
    // SAFETY: the only test in this binary, and it spawns no thread: nothing reads or writes the
    // environment concurrently with this set_var.
    unsafe { std::env::set_var("NSS_OIDC_SNAPSHOT", &path) };
    let (users, groups) = data();
    let good = build(&users, &groups, 1).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 8192];
    let (mut answered, mut refused) = (0, 0);
    for n in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = good.clone();
        if n % 3 == 0 {
            b.truncate((seed as usize) % good.len());
        } else {
            for k in 0..(1 + seed % 3) {
                let pos = ((seed >> (k * 16)) as usize) % b.len();
                b[pos] ^= 1 << ((seed >> 50) % 8);
            }
        }
        replace(&path, &b, n);
        let i = (seed % 40) as u32;
        let name = CString::new(format!("u{i}")).unwrap();
        // SAFETY: `libc::passwd` is integers and raw pointers: all-zero bytes (null pointers) is a valid value.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut err = 0;
        // SAFETY: the NSS contract: name is a live NUL-terminated CString; the result struct and err are valid
        // out-pointers and buf holds at least the length passed in writable bytes, all outliving the call.
        let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert!(ok_status(st), "{st:?}");
        if st == nss_status::NSS_STATUS_SUCCESS {
            answered += 1;
            assert_eq!(pw.pw_uid, 70_000 + i, "wrong answer from mutation {n}");
            // SAFETY: SUCCESS: pw_dir points at a NUL-terminated copy inside `buf`, alive and untouched since.
            assert_eq!(unsafe { CStr::from_ptr(pw.pw_dir) }.to_str().unwrap(), format!("/home/u{i}"));
        } else {
            refused += 1;
        }
        // SAFETY: the NSS contract: a uid by value; the result struct and err are valid out-pointers and
        // buf holds at least the length passed in writable bytes, all outliving the call.
        let st = unsafe { _nss_oidc_getpwuid_r(70_000 + i, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert!(ok_status(st));
        if st == nss_status::NSS_STATUS_SUCCESS {
            // SAFETY: SUCCESS: pw_name points at a NUL-terminated copy inside `buf`, alive and untouched since.
            assert_eq!(unsafe { CStr::from_ptr(pw.pw_name) }.to_bytes(), name.as_bytes());
        }
        // SAFETY: `libc::group` is integers and raw pointers: all-zero bytes (null pointers) is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        // SAFETY: the NSS contract: a gid by value; the result struct and err are valid out-pointers and
        // buf holds at least the length passed in writable bytes, all outliving the call.
        let st = unsafe { _nss_oidc_getgrgid_r(80_001, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert!(ok_status(st));
        if st == nss_status::NSS_STATUS_SUCCESS {
            // SAFETY: SUCCESS: gr_name points at a NUL-terminated copy inside `buf`.
            assert_eq!(unsafe { CStr::from_ptr(gr.gr_name) }.to_bytes(), b"g1");
            // SAFETY: SUCCESS: gr_mem is a NULL-terminated array inside `buf`; g1's one member is a
            // NUL-terminated string there.
            assert_eq!(unsafe { CStr::from_ptr(*gr.gr_mem) }.to_bytes(), b"u1");
            // SAFETY: g1 has one member, so gr_mem[1] is the array's NULL terminator, in bounds.
            assert!(unsafe { *gr.gr_mem.add(1) }.is_null());
        }
        // initgroups on a malloc'ed array, as glibc calls it.
        let mut start: libc::c_long = 1;
        let mut size: libc::c_long = 1;
        // SAFETY: malloc has no preconditions; the result is checked before use.
        let mut arr = unsafe { libc::malloc(std::mem::size_of::<libc::gid_t>()) }.cast::<libc::gid_t>();
        assert!(!arr.is_null());
        // SAFETY: arr is non-null (asserted above) and a fresh malloc'ed block, sized and aligned for one gid_t.
        unsafe { *arr = 70_000 + i };
        // SAFETY: glibc's initgroups_dyn contract: name NUL-terminated; arr a malloc'ed array of
        // `size` (1) gids with `start` (1) used, which the module may realloc; start, size, arr, err valid.
        let st = unsafe {
            _nss_oidc_initgroups_dyn(name.as_ptr(), 70_000 + i, &mut start, &mut size, &mut arr, 0, &mut err)
        };
        assert!(ok_status(st));
        if st == nss_status::NSS_STATUS_SUCCESS {
            // SAFETY: SUCCESS: arr (possibly realloc'ed by the module) holds `start` initialised gids.
            let got = unsafe { std::slice::from_raw_parts(arr, start as usize) }.to_vec();
            assert_eq!(got, [70_000 + i, 80_000, 80_001]);
        }
        // SAFETY: arr is the live block from malloc or the module's realloc of it, freed once.
        unsafe { libc::free(arr.cast()) };
        // Enumeration terminates.
        _nss_oidc_setpwent(0);
        for _ in 0..100 {
            // SAFETY: pw and err are valid out-pointers and buf holds buf.len() writable bytes, outliving the call.
            let st = unsafe { _nss_oidc_getpwent_r(&mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
            if st != nss_status::NSS_STATUS_SUCCESS {
                break;
            }
        }
        _nss_oidc_endpwent();
    }
    assert!(answered > 100 && refused > 100, "both outcomes exercised ({answered} answered, {refused} refused)");
    // A too-small buffer is ERANGE, and the good file answers again.
    replace(&path, &good, 9999);
    let name = CString::new("u3").unwrap();
    // SAFETY: `libc::passwd` is integers and raw pointers: all-zero bytes (null pointers) is a valid value.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut err = 0;
    // SAFETY: the NSS contract: name is a live NUL-terminated CString; the result struct and err are
    // valid out-pointers and buf holds more than the 8 bytes passed, all outliving the call.
    let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), 8, &mut err) };
    assert_eq!((st, err), (nss_status::NSS_STATUS_TRYAGAIN, libc::ERANGE));
    // SAFETY: the NSS contract: name is a live NUL-terminated CString; the result struct and err are valid out-pointers
    // and buf holds at least the length passed in writable bytes, all outliving the call.
    let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
    assert_eq!(st, nss_status::NSS_STATUS_SUCCESS);
    std::fs::remove_file(&path).unwrap();
    // SAFETY: the NSS contract: name is a live NUL-terminated CString; the result struct and err are valid out-pointers
    // and buf holds at least the length passed in writable bytes, all outliving the call.
    let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
    assert!(
        matches!(st, nss_status::NSS_STATUS_SUCCESS | nss_status::NSS_STATUS_UNAVAIL),
        "deleted: stale mapping until the next stat, then UNAVAIL"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
