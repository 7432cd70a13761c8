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
    // SAFETY (test): set before any lookup reads the environment.
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
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut err = 0;
        let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert!(ok_status(st), "{st:?}");
        if st == nss_status::NSS_STATUS_SUCCESS {
            answered += 1;
            assert_eq!(pw.pw_uid, 70_000 + i, "wrong answer from mutation {n}");
            assert_eq!(unsafe { CStr::from_ptr(pw.pw_dir) }.to_str().unwrap(), format!("/home/u{i}"));
        } else {
            refused += 1;
        }
        let st = unsafe { _nss_oidc_getpwuid_r(70_000 + i, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert!(ok_status(st));
        if st == nss_status::NSS_STATUS_SUCCESS {
            assert_eq!(unsafe { CStr::from_ptr(pw.pw_name) }.to_bytes(), name.as_bytes());
        }
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let st = unsafe { _nss_oidc_getgrgid_r(80_001, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert!(ok_status(st));
        if st == nss_status::NSS_STATUS_SUCCESS {
            assert_eq!(unsafe { CStr::from_ptr(gr.gr_name) }.to_bytes(), b"g1");
            assert_eq!(unsafe { CStr::from_ptr(*gr.gr_mem) }.to_bytes(), b"u1");
            assert!(unsafe { *gr.gr_mem.add(1) }.is_null());
        }
        // initgroups on a malloc'ed array, as glibc calls it.
        let mut start: libc::c_long = 1;
        let mut size: libc::c_long = 1;
        let mut arr = unsafe { libc::malloc(std::mem::size_of::<libc::gid_t>()) }.cast::<libc::gid_t>();
        unsafe { *arr = 70_000 + i };
        let st = unsafe {
            _nss_oidc_initgroups_dyn(name.as_ptr(), 70_000 + i, &mut start, &mut size, &mut arr, 0, &mut err)
        };
        assert!(ok_status(st));
        if st == nss_status::NSS_STATUS_SUCCESS {
            let got = unsafe { std::slice::from_raw_parts(arr, start as usize) }.to_vec();
            assert_eq!(got, [70_000 + i, 80_000, 80_001]);
        }
        unsafe { libc::free(arr.cast()) };
        // Enumeration terminates.
        _nss_oidc_setpwent(0);
        for _ in 0..100 {
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
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut err = 0;
    let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), 8, &mut err) };
    assert_eq!((st, err), (nss_status::NSS_STATUS_TRYAGAIN, libc::ERANGE));
    let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
    assert_eq!(st, nss_status::NSS_STATUS_SUCCESS);
    std::fs::remove_file(&path).unwrap();
    let st = unsafe { _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
    assert!(
        matches!(st, nss_status::NSS_STATUS_SUCCESS | nss_status::NSS_STATUS_UNAVAIL),
        "deleted: stale mapping until the next stat, then UNAVAIL"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
