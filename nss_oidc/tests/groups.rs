//! Large groups through the entry points: the whole member list in the
//! caller's buffer, ERANGE exactly when it is one byte short (glibc then
//! retries with a bigger buffer), enumeration retrying the same entry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_oidc::format::{build, Group, User};
use nss_oidc::nss::*;
use nss_oidc::reader::{group_size, Snapshot};
use std::ffi::{CStr, CString};

fn members(gr: &libc::group) -> Vec<String> {
    let mut out = vec![];
    for i in 0.. {
        // SAFETY: SUCCESS: gr_mem is a NULL-terminated array of NUL-terminated strings in the buffer.
        let p = unsafe { *gr.gr_mem.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: as above.
        out.push(unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned());
    }
    out
}

#[test]
fn a_large_group_fits_exactly_or_is_erange() {
    let dir = std::env::temp_dir().join(format!("nss-groups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nss.snapshot");
    let names: Vec<String> = (0..1000).map(|i| format!("user{i}")).collect();
    let users: Vec<User> = vec![];
    let groups = vec![
        Group { name: "big".into(), gid: 90_000, members: names.clone() },
        Group { name: "small".into(), gid: 90_001, members: vec!["user1".into()] },
    ];
    let bytes = build(&users, &groups, 1).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    // SAFETY: the only test in this binary, and it spawns no thread.
    unsafe { std::env::set_var("NSS_OIDC_SNAPSHOT", &path) };

    let snap = Snapshot::parse(&bytes).unwrap();
    let g = snap.group_by_name(b"big").unwrap().unwrap();
    let mut backing = vec![0u8; 64 * 1024];
    let name = CString::new("big").unwrap();
    for shift in [0usize, 3] {
        let buf = &mut backing[shift..];
        let need = group_size(&g, buf.as_ptr() as usize).unwrap();
        // SAFETY: `libc::group` is integers and raw pointers: all-zero bytes is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut err = 0;
        // SAFETY: the NSS contract: name NUL-terminated; gr and err valid; buf holds need-1 writable bytes.
        let st = unsafe { _nss_oidc_getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), need - 1, &mut err) };
        assert_eq!((st, err), (nss_status::NSS_STATUS_TRYAGAIN, libc::ERANGE));
        // SAFETY: as above, with `need` bytes.
        let st = unsafe { _nss_oidc_getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), need, &mut err) };
        assert_eq!(st, nss_status::NSS_STATUS_SUCCESS);
        assert_eq!(gr.gr_gid, 90_000);
        // SAFETY: SUCCESS: gr_name and gr_passwd are NUL-terminated strings in the buffer.
        assert_eq!(unsafe { CStr::from_ptr(gr.gr_name) }.to_bytes(), b"big");
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(gr.gr_passwd) }.to_bytes(), b"*");
        assert_eq!(members(&gr), names);
        // SAFETY: the NSS contract, by gid, with the whole buffer.
        let st = unsafe { _nss_oidc_getgrgid_r(90_001, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut err) };
        assert_eq!(st, nss_status::NSS_STATUS_SUCCESS);
        assert_eq!(members(&gr), ["user1"]);
    }

    // Enumeration: ERANGE leaves the cursor on the entry; a bigger buffer gets it.
    _nss_oidc_setgrent(0);
    let mut seen = vec![];
    let mut len = 64;
    for _ in 0..100 {
        // SAFETY: `libc::group` is integers and raw pointers: all-zero bytes is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut err = 0;
        // SAFETY: the NSS contract: gr and err valid; backing holds at least `len` writable bytes.
        let st = unsafe { _nss_oidc_getgrent_r(&mut gr, backing.as_mut_ptr().cast(), len, &mut err) };
        match st {
            nss_status::NSS_STATUS_SUCCESS => {
                // SAFETY: SUCCESS: gr_name is a NUL-terminated string in the buffer.
                seen.push((unsafe { CStr::from_ptr(gr.gr_name) }.to_str().unwrap().to_owned(), members(&gr).len()))
            }
            nss_status::NSS_STATUS_TRYAGAIN => {
                assert_eq!(err, libc::ERANGE);
                len *= 2;
            }
            _ => break,
        }
    }
    _nss_oidc_endgrent();
    seen.sort();
    assert_eq!(seen, [("big".to_owned(), 1000), ("small".to_owned(), 1)]);
    std::fs::remove_dir_all(dir).unwrap();
}
