//! PAM authentication benchmark driver (run by scripts/bench in a private mount
//! namespace whose /etc/pam.d holds the services under test).
//!
//!   pam-bench SERVICE USER COUNT      (the replies, tokens or a password, one a line on stdin;
//!                                     transaction i answers with line i)
//!
//! Runs COUNT × pam_start + pam_authenticate + pam_end in this process (real
//! libpam, the module dlopen'ed as in sshd) with a conversation that answers
//! every prompt with the reply. Prints `ns_per_op=… ok=…`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench tool

use std::ffi::{c_char, c_int, c_void, CString};
use std::time::Instant;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata: *mut c_void,
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(service: *const c_char, user: *const c_char, conv: *const PamConv, h: *mut *mut c_void) -> c_int;
    fn pam_authenticate(h: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(h: *mut c_void, status: c_int) -> c_int;
}

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;

/// Answer every prompt with the reply (appdata: a NUL-terminated string).
extern "C" fn conv(n: c_int, msgs: *mut *const PamMessage, resp: *mut *mut PamResponse, data: *mut c_void) -> c_int {
    let n = n as usize;
    // SAFETY: libpam passes n messages and expects a malloc'd array of n responses,
    // each resp malloc'd (it frees them); `data` is the CString this program owns.
    unsafe {
        let out = libc::calloc(n, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        for i in 0..n {
            let m = *msgs.add(i);
            if matches!((*m).msg_style, PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON) {
                (*out.add(i)).resp = libc::strdup(data as *const c_char);
            }
        }
        *resp = out;
    }
    0
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (svc, user, count) =
        (CString::new(a[1].clone()).unwrap(), CString::new(a[2].clone()).unwrap(), a[3].parse::<u32>().unwrap());
    // One reply per line; transaction i answers with line i (mod the count):
    // a token logs in once per host, so each transaction needs its own.
    let replies: Vec<CString> = std::io::stdin()
        .lines()
        .map(|l| CString::new(l.unwrap().trim_end()).unwrap())
        .filter(|l| !l.as_bytes().is_empty())
        .collect();
    assert!(!replies.is_empty(), "no reply on stdin");
    let mut ok = 0;
    let t = Instant::now();
    for i in 0..count as usize {
        let c = PamConv { conv, appdata: replies[i % replies.len()].as_ptr() as *mut c_void };
        let mut h = std::ptr::null_mut();
        // SAFETY: valid C strings and conversation; the handle is ended each round.
        unsafe {
            if pam_start(svc.as_ptr(), user.as_ptr(), &c, &mut h) != 0 {
                panic!("pam_start failed");
            }
            let r = pam_authenticate(h, 0);
            ok += u32::from(r == 0);
            pam_end(h, r);
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(count);
    println!("ns_per_op={ns:.0} ok={ok}");
}
