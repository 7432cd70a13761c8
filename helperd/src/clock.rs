//! Time, passed in: the wall clock (unix seconds), a monotonic clock and
//! `sleep`, behind one small trait so the device poller, the AWS broker,
//! sessions and the replay cache are tested without waiting (a fake clock's
//! `sleep` advances it at once).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

pub use oidc_core::{unix_now, SystemClock};

/// oidc_core's clock (unix seconds `now`, `sleep`) plus a monotonic reading
/// for elapsed times and sub-second deadlines (STS backoff, pending logins,
/// the device poller), which a wall-clock step must not move.
pub trait Clock: oidc_core::Clock {
    /// Monotonic time since an arbitrary origin.
    fn mono(&self) -> Duration;
}

static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Clock for SystemClock {
    fn mono(&self) -> Duration {
        ORIGIN.elapsed()
    }
}

/// A clock that moves only when told to, or when someone sleeps on it
/// (the sleep returns at once, the clock is that much later).
#[cfg(test)]
pub struct FakeClock {
    /// (unix seconds at mono 0, mono now)
    state: std::sync::Mutex<(i64, Duration)>,
    sleeps: std::sync::Mutex<Vec<Duration>>,
}

#[cfg(test)]
impl FakeClock {
    pub fn at(unix: i64) -> std::sync::Arc<FakeClock> {
        std::sync::Arc::new(FakeClock {
            state: std::sync::Mutex::new((unix, Duration::ZERO)),
            sleeps: std::sync::Mutex::new(vec![]),
        })
    }
    pub fn advance(&self, d: Duration) {
        self.state.lock().unwrap().1 += d;
    }
    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

#[cfg(test)]
impl Clock for FakeClock {
    fn mono(&self) -> Duration {
        self.state.lock().unwrap().1
    }
}

#[cfg(test)]
impl oidc_core::Clock for FakeClock {
    fn now(&self) -> i64 {
        let s = self.state.lock().unwrap();
        s.0 + i64::try_from(s.1.as_secs()).unwrap()
    }
    fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
        self.advance(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oidc_core::Clock as _;

    #[test]
    fn a_fake_clock_moves_when_slept_on() {
        let c = FakeClock::at(1_000);
        c.sleep(Duration::from_secs(5));
        c.advance(Duration::from_secs(2));
        assert_eq!((c.now(), c.mono(), c.sleeps()), (1_007, Duration::from_secs(7), vec![Duration::from_secs(5)]));
        let real = SystemClock;
        assert!(real.mono() <= real.mono() && real.now() > 1_700_000_000);
    }
}
