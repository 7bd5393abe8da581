//! Time as a dependency: retries, circuit breakers and wall-clock budgets read the clock through
//! [`Clock`] so tests run without sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of monotonic time that can also wait.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Wait for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock for tests: time only moves when someone sleeps or calls [`ManualClock::advance`];
/// every sleep is recorded.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    state: Mutex<(Duration, Vec<Duration>)>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock standing at an arbitrary origin.
    pub fn new() -> ManualClock {
        ManualClock {
            origin: Instant::now(),
            state: Mutex::new((Duration::ZERO, Vec::new())),
        }
    }

    /// A shared handle, as the wrappers take it.
    pub fn shared() -> Arc<ManualClock> {
        Arc::new(ManualClock::new())
    }

    /// Move time forward without recording a sleep.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += by;
        }
    }

    /// Every sleep requested so far.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    /// Time elapsed since the origin.
    pub fn elapsed(&self) -> Duration {
        self.state.lock().map(|s| s.0).unwrap_or_default()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }
    fn sleep(&self, duration: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += duration;
            s.1.push(duration);
        }
    }
}
