//! Time, at the edge: logic takes "now" as a value or through a [`Clock`];
//! only [`SystemClock`] reads the system clock.

use std::time::Duration;

/// Unix time in seconds and a way to wait: the real clock, or a fake one
/// that tests advance (a poller's `sleep` then costs no real time).
pub trait Clock: Send + Sync {
    /// Unix time in seconds.
    fn now(&self) -> i64;
    /// Wait `d` (a fake clock advances instead).
    fn sleep(&self, d: Duration);
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        unix_now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
