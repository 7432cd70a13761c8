//! Connection threads, reused: a connection goes to a thread that finished
//! its last one and is waiting, when there is one, else to a new thread. So a
//! connection never waits behind another's work (the guarantee a thread per
//! connection gave), and a login no longer pays for creating and tearing down
//! a thread (stack mapping, guard page, signal stack) per connection — two per
//! PAM authentication. At most [`MAX_IDLE`] threads wait; the others end.
//!
//! `idle` counts threads committed to taking the next job. `run` hands a job
//! over only after claiming one of them (decrementing `idle`), so every job
//! sent has a thread waiting for it: the threads waiting always number `idle`
//! plus the jobs in the channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

/// Threads kept waiting for the next connection.
pub const MAX_IDLE: usize = 4;

pub type Job = Box<dyn FnOnce() + Send>;

struct Workers {
    idle: AtomicUsize,
    tx: Mutex<Sender<Job>>,
    rx: Mutex<Receiver<Job>>,
}

fn workers() -> &'static Workers {
    static W: OnceLock<Workers> = OnceLock::new();
    W.get_or_init(|| {
        let (tx, rx) = channel();
        Workers { idle: AtomicUsize::new(0), tx: Mutex::new(tx), rx: Mutex::new(rx) }
    })
}

/// Run `job` at once on a thread of its own: a waiting one, or a new one.
pub fn run(job: Job) {
    let w = workers();
    let job = if w.idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        // The receiver lives in a static: sending cannot fail; if it did, the
        // job comes back and gets a new thread (the claimed waiter stays counted out).
        match w.tx.lock().unwrap_or_else(|p| p.into_inner()).send(job) {
            Ok(()) => return,
            Err(e) => e.0,
        }
    } else {
        job
    };
    let spawned = std::thread::Builder::new().name("helperd-conn".into()).spawn(move || {
        job();
        // Then wait for the next connection, unless enough threads already do.
        while w.idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < MAX_IDLE).then_some(n + 1)).is_ok() {
            let next = w.rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            match next {
                Ok(job) => job(),
                Err(_) => return,
            }
        }
    });
    if let Err(e) = spawned {
        crate::log::error!("spawning connection thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;
    use std::time::Duration;

    /// A connection never waits behind another's work, threads are reused,
    /// and at most MAX_IDLE wait.
    #[test]
    fn jobs_run_at_once_on_reused_threads() {
        // Many jobs blocked at once: each still runs (none queues behind another).
        let n = MAX_IDLE * 3;
        let (started, started_rx) = sync_channel(n);
        let (release, release_rx) = channel::<()>();
        let release_rx = std::sync::Arc::new(Mutex::new(release_rx));
        for _ in 0..n {
            let (started, release_rx) = (started.clone(), release_rx.clone());
            run(Box::new(move || {
                started.send(std::thread::current().id()).unwrap();
                let _ = release_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            }));
        }
        for _ in 0..n {
            started_rx.recv_timeout(Duration::from_secs(5)).expect("every blocked job runs at once");
        }
        for _ in 0..n {
            release.send(()).unwrap();
        }
        // Once they are done, MAX_IDLE threads wait and take the next jobs.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while workers().idle.load(Ordering::SeqCst) != MAX_IDLE {
            assert!(std::time::Instant::now() < deadline, "threads wait for the next connection");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (ran, ran_rx) = channel();
        for _ in 0..MAX_IDLE {
            let ran = ran.clone();
            run(Box::new(move || ran.send(std::thread::current().name().map(String::from)).unwrap()));
        }
        for _ in 0..MAX_IDLE {
            let name = ran_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(name.as_deref(), Some("helperd-conn"));
        }
    }
}
