//! The engine's durable decree, shared between the state machine (which advances it) and the
//! plog (which may persist a purge mark and delete segments only up to it, mapping §7).

use parking_lot::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The largest decree whose mutation is durable in the engine's SSTs. Only moves forward.
#[derive(Debug, Default)]
pub struct DurableMark {
    decree: Mutex<Option<u64>>,
    cv: Condvar,
}

impl DurableMark {
    /// A mark at `decree` (`None`: nothing durable yet).
    pub fn new(decree: Option<u64>) -> Self {
        Self {
            decree: Mutex::new(decree),
            cv: Condvar::new(),
        }
    }

    /// The durable decree.
    pub fn get(&self) -> Option<u64> {
        *self.decree.lock()
    }

    /// Raises the mark to `decree` (never lowers it) and wakes waiters.
    pub fn advance(&self, decree: Option<u64>) {
        let mut d = self.decree.lock();
        if decree > *d {
            *d = decree;
            self.cv.notify_all();
        }
    }

    /// Waits until the mark reaches `decree`, at most `wait_max`. True when it did.
    pub fn wait_for(&self, decree: u64, wait_max: Duration) -> bool {
        let deadline = Instant::now() + wait_max;
        let mut d = self.decree.lock();
        while *d < Some(decree) {
            if self.cv.wait_until(&mut d, deadline).timed_out() {
                return *d >= Some(decree);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn advances_monotonically_and_wakes_waiters() {
        let m = Arc::new(DurableMark::new(Some(5)));
        m.advance(Some(3));
        assert_eq!(m.get(), Some(5));
        assert!(!m.wait_for(6, Duration::from_millis(10)));
        let m2 = Arc::clone(&m);
        let t = std::thread::spawn(move || m2.wait_for(9, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        m.advance(Some(9));
        assert!(t.join().unwrap());
    }
}
