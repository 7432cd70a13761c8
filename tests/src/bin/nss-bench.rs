//! NSS lookup benchmark driver (run by scripts/bench inside a private mount
//! namespace whose nsswitch.conf selects the module under test).
//!
//!   nss-bench gen N DIR [everyone] write DIR/passwd, DIR/group (N users + /etc's) and DIR/nss.snapshot;
//!                                  `everyone`: also a group of that name with all N users
//!   nss-bench OP N COUNT           COUNT lookups over user0..user{N-1}; OP = pwnam | pwuid | initgroups
//!                                  | grnam | grnam-everyone through glibc, or direct-pwnam | direct-pwuid | direct-grnam
//!                                  | direct-grgid: the module's entry point called in-process
//!                                  (dlopen), without glibc's dispatch
//!
//! Prints `ns_per_op=… found=…`. User i has uid BASE+i and is in groups team{i%10}, so each of
//! the ten groups has N/10 members (10, 1,000, 10,000 at N = 100, 10k, 100k); `grnam` looks up
//! team{k%10} with `getgrnam` (glibc's own buffer, grown once and kept, as programs call it).
//! The name of user i is written from i into a stack buffer for each lookup (the same work at
//! every size), not read from an N-entry array: at 100k users that array and its strings cost
//! the driver itself ~2 L1 and ~1.7 last-level misses per lookup, which were counted as the
//! module's before.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench tool

use std::ffi::CString;
use std::time::Instant;

const BASE: u32 = 1_879_048_192;
const GBASE: u32 = 2_013_265_920;

fn gen(n: u32, dir: &str, everyone: bool) {
    use nss_snapshot::format::{build, Group, User};
    let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut group = std::fs::read_to_string("/etc/group").unwrap();
    let mut users = Vec::with_capacity(n as usize);
    let mut members: Vec<Vec<String>> = vec![vec![]; 10];
    for i in 0..n {
        let name = format!("user{i}");
        passwd.push_str(&format!("{name}:x:{}:{}:User {i}:/home/{name}:/bin/bash\n", BASE + i, BASE + i));
        members[(i % 10) as usize].push(name.clone());
        users.push(User {
            name,
            uid: BASE + i,
            gid: BASE + i,
            gecos: format!("User {i}"),
            dir: format!("/home/user{i}"),
            shell: "/bin/bash".into(),
            groups: if everyone { vec![GBASE + i % 10, GBASE + 10] } else { vec![GBASE + i % 10] },
        });
    }
    let mut groups = vec![];
    for (t, m) in members.into_iter().enumerate() {
        group.push_str(&format!("team{t}:x:{}:{}\n", GBASE + t as u32, m.join(",")));
        groups.push(Group { name: format!("team{t}"), gid: GBASE + t as u32, members: m });
    }
    if everyone {
        let all: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
        group.push_str(&format!("everyone:x:{}:{}\n", GBASE + 10, all.join(",")));
        groups.push(Group { name: "everyone".into(), gid: GBASE + 10, members: all });
    }
    std::fs::write(format!("{dir}/passwd"), passwd).unwrap();
    std::fs::write(format!("{dir}/group"), group).unwrap();
    std::fs::write(format!("{dir}/nss.snapshot"), build(&users, &groups, 1).unwrap()).unwrap();
}

/// `user{i}` NUL-terminated in `buf`; a pointer to it.
fn user_name(buf: &mut [u8; 24], mut i: u32) -> &std::ffi::CStr {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (i % 10) as u8;
        n += 1;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    buf[..4].copy_from_slice(b"user");
    for k in 0..n {
        buf[4 + k] = digits[n - 1 - k];
    }
    buf[4 + n] = 0;
    // SAFETY: one NUL, at the end.
    unsafe { std::ffi::CStr::from_bytes_with_nul_unchecked(&buf[..5 + n]) }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.get(1).map(String::as_str) == Some("gen") {
        return gen(a[2].parse().unwrap(), &a[3], a.get(4).map(String::as_str) == Some("everyone"));
    }
    let (op, n, count): (&str, u32, u32) = (&a[1], a[2].parse().unwrap(), a[3].parse().unwrap());
    // The looked-up name is written into a stack buffer from its index (`user` + decimal
    // digits), the same work at every size: a 100k-entry array of names would add the driver's
    // own cache misses (the array slot and the heap string, ~2 L1 misses per lookup at 100k
    // users) to the module's.
    let mut name_buf = [0u8; 24];
    type PwFn =
        unsafe extern "C" fn(*const libc::c_char, *mut libc::passwd, *mut libc::c_char, usize, *mut libc::c_int) -> i32;
    type UidFn =
        unsafe extern "C" fn(libc::uid_t, *mut libc::passwd, *mut libc::c_char, usize, *mut libc::c_int) -> i32;
    type GrFn =
        unsafe extern "C" fn(*const libc::c_char, *mut libc::group, *mut libc::c_char, usize, *mut libc::c_int) -> i32;
    type GidFn = unsafe extern "C" fn(libc::gid_t, *mut libc::group, *mut libc::c_char, usize, *mut libc::c_int) -> i32;
    let (mut direct_nam, mut direct_uid, mut direct_gr, mut direct_gid): (
        Option<PwFn>,
        Option<UidFn>,
        Option<GrFn>,
        Option<GidFn>,
    ) = (None, None, None, None);
    let teams: Vec<CString> = (0..10).map(|t| CString::new(format!("team{t}")).unwrap()).collect();
    if op.starts_with("direct") {
        let h = unsafe { libc::dlopen(c"libnss_oidc.so.2".as_ptr(), libc::RTLD_NOW) };
        assert!(!h.is_null(), "dlopen libnss_oidc.so.2");
        unsafe {
            direct_nam =
                Some(std::mem::transmute::<*mut libc::c_void, PwFn>(libc::dlsym(h, c"_nss_oidc_getpwnam_r".as_ptr())));
            direct_uid =
                Some(std::mem::transmute::<*mut libc::c_void, UidFn>(libc::dlsym(h, c"_nss_oidc_getpwuid_r".as_ptr())));
            direct_gr =
                Some(std::mem::transmute::<*mut libc::c_void, GrFn>(libc::dlsym(h, c"_nss_oidc_getgrnam_r".as_ptr())));
            direct_gid =
                Some(std::mem::transmute::<*mut libc::c_void, GidFn>(libc::dlsym(h, c"_nss_oidc_getgrgid_r".as_ptr())));
        }
    }
    let mut errno = 0;
    // Room for the largest group (10,000 members: pointers and names).
    let mut buf = vec![0u8; if op.contains("grnam") || op.ends_with("grgid") { 1 << 20 } else { 4096 }];
    let mut one = |k: u32| -> bool {
        let i = ((u64::from(k) * 7919) % u64::from(n)) as u32;
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        let ok = match op {
            "pwnam" => unsafe {
                let name = user_name(&mut name_buf, i);
                libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) == 0
                    && !res.is_null()
            },
            "pwuid" => unsafe {
                libc::getpwuid_r(BASE + i, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) == 0 && !res.is_null()
            },
            "direct-pwnam" => unsafe {
                let name = user_name(&mut name_buf, i);
                direct_nam.unwrap()(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut errno) == 1
            },
            "direct-pwuid" => unsafe {
                direct_uid.unwrap()(BASE + i, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut errno) == 1
            },
            "grnam" => {
                let g = unsafe { libc::getgrnam(teams[(k % 10) as usize].as_ptr()) };
                !g.is_null() && !unsafe { *(*g).gr_mem }.is_null()
            }
            "grnam-everyone" => {
                let g = unsafe { libc::getgrnam(c"everyone".as_ptr()) };
                !g.is_null() && !unsafe { *(*g).gr_mem }.is_null()
            }
            "direct-grnam" => unsafe {
                let mut gr: libc::group = std::mem::zeroed();
                let t = teams[(k % 10) as usize].as_ptr();
                direct_gr.unwrap()(t, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut errno) == 1
            },
            "direct-grgid" => unsafe {
                let mut gr: libc::group = std::mem::zeroed();
                direct_gid.unwrap()(GBASE + k % 10, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut errno) == 1
            },
            "initgroups" => {
                let name = user_name(&mut name_buf, i);
                let mut groups = [0 as libc::gid_t; 64];
                let mut ng: libc::c_int = 64;
                let r = unsafe { libc::getgrouplist(name.as_ptr(), BASE + i, groups.as_mut_ptr(), &mut ng) };
                r >= 0 && ng >= 2
            }
            _ => panic!("unknown op {op}"),
        };
        ok
    };
    // Module-only ops: a fixed number of untimed lookups first, so the timed ones do not
    // include mapping the snapshot and faulting its pages in (fixed, so it cancels out of
    // the callgrind difference of two counts).
    for k in 0..if op.starts_with("direct") { 20_000 } else { 0 } {
        one(k);
    }
    let mut found = 0u32;
    let t = Instant::now();
    for k in 0..count {
        found += u32::from(one(k));
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(count.max(1));
    println!("ns_per_op={ns:.1} found={found}");
}
