//! helperd throughput benchmark (run by scripts/bench as root).
//!
//!   helperd-bench SOCKET KIND THREADS SECONDS ISSUER
//!
//! KIND: `ping` (the cheapest request), `status` (reads every issuer's cache),
//! `login` (a verified login of a known identity: admission + pending session,
//! what every PAM authentication sends), `first-login` (a never-seen identity each
//! time: a new account, the store and the NSS snapshot written with fsync),
//! or `baseline`: the same codec and one
//! connection per request against a minimal in-process server that answers
//! Pong — the floor for any helperd on this machine, for the ratio.
//! Prints `req_per_s=… errors=…`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench tool

use oidc_core::{ipc_call, read_frame, write_frame, Request, Response};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn baseline_server() -> PathBuf {
    let p = std::env::temp_dir().join(format!("pam-oidc-bench-baseline-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let l = UnixListener::bind(&p).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(5);
                if read_frame::<Request>(&mut s, deadline).is_ok() {
                    let _ = write_frame(&mut s, &Response::Pong { version: "baseline".into() }, deadline);
                }
            });
        }
    });
    p
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (kind, threads, secs) = (a[2].as_str(), a[3].parse::<usize>().unwrap(), a[4].parse::<u64>().unwrap());
    let socket = if kind == "baseline" { baseline_server() } else { PathBuf::from(&a[1]) };
    let req = match kind {
        "ping" | "baseline" => Request::Ping,
        "status" => Request::Status,
        "login" | "first-login" => {
            integration::login_request(&a[5], "bench-sub", "benchuser", &["devs".into()], "Bench User")
        }
        other => panic!("unknown kind {other}"),
    };
    let (stop, done, errors) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let first = AtomicU64::new(0);
    let request = || {
        if kind == "first-login" {
            let n = first.fetch_add(1, Ordering::Relaxed);
            let name = format!("first{}-{n}", std::process::id());
            integration::login_request(&a[5], &format!("sub-{name}"), &name, &["devs".into()], "First Login")
        } else {
            req.clone()
        }
    };
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match ipc_call(&socket, &request(), Duration::from_secs(10)) {
                        Ok(Response::Refused { .. } | Response::Error { .. }) | Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    let rate = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    println!("req_per_s={rate:.0} errors={}", errors.load(Ordering::Relaxed));
    if kind == "baseline" {
        let _ = std::fs::remove_file(&socket);
    }
}
