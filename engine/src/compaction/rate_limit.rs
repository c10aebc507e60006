//! A token bucket shared by background writers (flush and compaction output).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Limits background write bytes per second; 0 = unlimited.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    bytes_per_sec: AtomicU64,
    state: Mutex<(Instant, f64)>,
}

/// Longest a single request sleeps (so shutdown is never delayed long).
const MAX_SLEEP: Duration = Duration::from_millis(200);

impl RateLimiter {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        RateLimiter {
            bytes_per_sec: AtomicU64::new(bytes_per_sec),
            state: Mutex::new((Instant::now(), bytes_per_sec as f64)),
        }
    }

    /// Changes the rate (0 = unlimited) from the next request on.
    pub(crate) fn set_rate(&self, bytes_per_sec: u64) {
        self.bytes_per_sec.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Takes `bytes` tokens, sleeping (bounded) while the bucket is empty.
    pub(crate) fn request(&self, bytes: u64) {
        let bytes_per_sec = self.bytes_per_sec.load(Ordering::Relaxed);
        if bytes_per_sec == 0 {
            return;
        }
        let wait = {
            let mut s = self.state.lock();
            let now = Instant::now();
            let rate = bytes_per_sec as f64;
            let refill = now.duration_since(s.0).as_secs_f64() * rate;
            s.1 = (s.1 + refill).min(rate);
            s.0 = now;
            s.1 -= bytes as f64;
            if s.1 >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-s.1 / rate)
        };
        std::thread::sleep(wait.min(MAX_SLEEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_sleeps_and_limited_paces() {
        let r = RateLimiter::new(0);
        let t = Instant::now();
        for _ in 0..1000 {
            r.request(1 << 20);
        }
        assert!(t.elapsed() < Duration::from_secs(1));
        let r = RateLimiter::new(1 << 20);
        let t = Instant::now();
        r.request(1 << 20); // the bucket starts full
        r.request(256 << 10); // needs ~250 ms of refill
        assert!(t.elapsed() >= Duration::from_millis(150));
    }
}
