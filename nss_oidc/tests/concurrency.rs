//! 8 threads × 100k lookups through the NSS entry points while another thread
//! keeps replacing the snapshot (rename, then mark the old file stale, as
//! helperd does): no crash, and every answer is one consistent record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use nss_oidc::format::{build, Group, User};
use nss_oidc::nss::{_nss_oidc_getpwnam_r, _nss_oidc_getpwuid_r, nss_status};
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn snapshot(gen: u32) -> Vec<u8> {
    // In generation g, userN has uid 100000*g + N and gecos "g:N".
    let users: Vec<User> = (0..200)
        .map(|n| User {
            name: format!("user{n}"),
            uid: 100_000 * (gen % 10 + 1) + n,
            gid: 5000,
            gecos: format!("{}-{n}", gen % 10 + 1),
            dir: format!("/home/user{n}"),
            shell: "/bin/sh".into(),
            groups: vec![],
        })
        .collect();
    build(&users, &[Group { name: "g".into(), gid: 5000, members: vec![] }], u64::from(gen)).unwrap()
}

fn replace(path: &std::path::Path, gen: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let old = std::fs::OpenOptions::new().write(true).open(path).ok();
    let tmp = path.with_extension(format!("tmp{gen}"));
    std::fs::write(&tmp, snapshot(gen)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    if let Some(mut f) = old {
        f.seek(SeekFrom::Start(nss_oidc::format::STALE_OFFSET as u64)).unwrap();
        f.write_all(&1u32.to_le_bytes()).unwrap();
    }
}

#[test]
fn lookups_during_replacement() {
    let dir = std::env::temp_dir().join(format!("nss-conc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nss.snapshot");
    replace(&path, 0);
    // SAFETY: the only test in this binary, before it spawns any thread: nothing reads or writes
    // the environment concurrently with this set_var.
    unsafe { std::env::set_var("NSS_OIDC_SNAPSHOT", &path) };
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut g = 1;
            while !stop.load(Ordering::Relaxed) {
                replace(&path, g);
                g += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            g
        })
    };
    let readers: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1024];
                let mut found = 0u32;
                for i in 0..100_000u32 {
                    let n = (i * 7 + t) % 200;
                    let name = CString::new(format!("user{n}")).unwrap();
                    // SAFETY: `libc::passwd` is integers and raw pointers: all-zero bytes (null pointers) is a valid
                    // value.
                    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
                    let mut err = 0;
                    let st = if i % 2 == 0 {
                        // SAFETY: the NSS contract: name is a live NUL-terminated CString; the result struct and err
                        // are valid out-pointers and buf holds at least the length passed in writable bytes, all
                        // outliving the call.
                        unsafe {
                            _nss_oidc_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err)
                        }
                    } else {
                        let uid = 100_000 * ((i / 2) % 10 + 1) + n;
                        // SAFETY: the NSS contract: a uid by value; the result struct and err are valid out-pointers
                        // and buf holds at least the length passed in writable bytes, all outliving the call.
                        unsafe { _nss_oidc_getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut err) }
                    };
                    if st != nss_status::NSS_STATUS_SUCCESS {
                        assert!(
                            matches!(st, nss_status::NSS_STATUS_NOTFOUND | nss_status::NSS_STATUS_UNAVAIL),
                            "{st:?}"
                        );
                        continue;
                    }
                    found += 1;
                    // SAFETY: SUCCESS: pw_name points at a NUL-terminated copy inside `buf`, alive and untouched since.
                    let pname = unsafe { CStr::from_ptr(pw.pw_name) }.to_str().unwrap();
                    // SAFETY: as above, for pw_gecos.
                    let gecos = unsafe { CStr::from_ptr(pw.pw_gecos) }.to_str().unwrap();
                    let (g, num) = gecos.split_once('-').unwrap();
                    let (g, num): (u32, u32) = (g.parse().unwrap(), num.parse().unwrap());
                    assert_eq!(pname, format!("user{num}"), "torn record");
                    assert_eq!(pw.pw_uid, 100_000 * g + num, "torn record");
                }
                found
            })
        })
        .collect();
    let found: u32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    let generations = writer.join().unwrap();
    assert!(found > 400_000, "most lookups answered ({found})");
    assert!(generations > 5, "the snapshot was replaced while reading ({generations})");
    std::fs::remove_dir_all(dir).unwrap();
}
