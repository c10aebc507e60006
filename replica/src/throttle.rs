//! Write and read throttling in Pegasus' format: `<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms>`
//! (the parser is [`siltdb_client::throttling`]).
//!
//! Each rule counts per wall-clock second, either requests (QPS) or bytes (by size): once the
//! second's count passes the reject threshold a request is refused (the client is told to retry
//! after `<ms>`); else past the delay threshold it is admitted after waiting `<ms>`. `K` = 1,000
//! and `M` = 1,000,000 (as in Pegasus). Reject is checked first. Only user requests are
//! throttled; control requests (bulk-load ingestion, learn) bypass it. The rules can be
//! replaced while the replica serves ([`WriteThrottling::reconfigure`], the table's app envs),
//! keeping the counters.

use crate::error::{Error, Result};
use parking_lot::{Mutex, RwLock};
pub use siltdb_client::throttling::{Rule, ThrottleConfig, MAX_THROTTLE_MS};
use std::time::{Duration, Instant};

/// What a throttle decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admit at once.
    Pass,
    /// Admit after waiting.
    Delay(Duration),
    /// Refuse; the client may retry after the duration.
    Reject(Duration),
}

/// A per-second counter with a [`ThrottleConfig`].
#[derive(Debug)]
pub struct Throttle {
    cfg: ThrottleConfig,
    window: Mutex<(Instant, u64)>,
}

impl Throttle {
    /// A throttle applying `cfg`.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Decides for a request of `units` (1 for QPS, its bytes for size) arriving at `now`.
    pub fn control(&self, units: u64, now: Instant) -> Decision {
        let mut w = self.window.lock();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        let after = w.1.saturating_add(units);
        if let Some(r) = self.cfg.reject {
            if after > r.threshold {
                return Decision::Reject(Duration::from_millis(r.ms));
            }
        }
        w.1 = after;
        match self.cfg.delay {
            Some(r) if after > r.threshold => Decision::Delay(Duration::from_millis(r.ms)),
            _ => Decision::Pass,
        }
    }
}

/// Counters of throttled requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    /// Requests admitted after a delay.
    pub delayed: u64,
    /// Requests rejected.
    pub rejected: u64,
}

/// The two throttles of a replica's writes (or reads): by request count and by bytes.
#[derive(Debug)]
pub struct WriteThrottling {
    rules: RwLock<Rules>,
    stats: Mutex<ThrottleStats>,
}

/// The current throttles and the strings they were parsed from (a reconfiguration to the same
/// strings keeps the current second's counts).
#[derive(Debug)]
struct Rules {
    by_qps: String,
    by_size: String,
    qps: Throttle,
    size: Throttle,
}

impl Rules {
    fn parse(by_qps: &str, by_size: &str) -> Result<Rules> {
        let parse = |s: &str| {
            ThrottleConfig::parse(s).map_err(|e| match e {
                siltdb_client::Error::InvalidArgument(m) => Error::InvalidArgument(m),
                other => Error::InvalidArgument(other.to_string()),
            })
        };
        Ok(Rules {
            by_qps: by_qps.to_string(),
            by_size: by_size.to_string(),
            qps: Throttle::new(parse(by_qps)?),
            size: Throttle::new(parse(by_size)?),
        })
    }
}

impl WriteThrottling {
    /// Builds from the two Pegasus strings (`write_throttling`, `write_throttling_by_size`).
    pub fn parse(by_qps: &str, by_size: &str) -> Result<Self> {
        Ok(Self {
            rules: RwLock::new(Rules::parse(by_qps, by_size)?),
            stats: Mutex::default(),
        })
    }

    /// No throttling.
    pub fn off() -> Self {
        Self {
            rules: RwLock::new(Rules {
                by_qps: String::new(),
                by_size: String::new(),
                qps: Throttle::new(ThrottleConfig::default()),
                size: Throttle::new(ThrottleConfig::default()),
            }),
            stats: Mutex::default(),
        }
    }

    /// Replaces the rules by the two strings (unchanged strings keep their counts); a bad
    /// string is refused and the current rules stay.
    pub fn reconfigure(&self, by_qps: &str, by_size: &str) -> Result<()> {
        {
            let r = self.rules.read();
            if r.by_qps == by_qps && r.by_size == by_size {
                return Ok(());
            }
        }
        let next = Rules::parse(by_qps, by_size)?;
        *self.rules.write() = next;
        Ok(())
    }

    /// The strings of the current rules (by count, by size).
    pub fn config(&self) -> (String, String) {
        let r = self.rules.read();
        (r.by_qps.clone(), r.by_size.clone())
    }

    /// Decides for one user request of `bytes`: `Err(Throttled)` to reject, `Ok(Some(d))` to
    /// admit after `d`, `Ok(None)` to admit at once.
    pub fn admit(&self, bytes: u64) -> Result<Option<Duration>> {
        let now = Instant::now();
        let (a, b) = {
            let r = self.rules.read();
            (r.qps.control(1, now), r.size.control(bytes, now))
        };
        let mut delay = None;
        for (d, which) in [(a, "qps"), (b, "size")] {
            match d {
                Decision::Reject(ms) => {
                    self.stats.lock().rejected += 1;
                    return Err(Error::Throttled {
                        reason: format!("{which} over the reject threshold"),
                        delay_ms: ms.as_millis() as u64,
                    });
                }
                Decision::Delay(ms) => delay = delay.max(Some(ms)),
                Decision::Pass => {}
            }
        }
        if delay.is_some() {
            self.stats.lock().delayed += 1;
        }
        Ok(delay)
    }

    /// Delayed and rejected counts so far.
    pub fn stats(&self) -> ThrottleStats {
        *self.stats.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_first_then_delay_per_second() {
        let t = Throttle::new(ThrottleConfig::parse("2*delay*10,3*reject*20").unwrap());
        let t0 = Instant::now();
        assert_eq!(t.control(1, t0), Decision::Pass);
        assert_eq!(t.control(1, t0), Decision::Pass);
        assert_eq!(t.control(1, t0), Decision::Delay(Duration::from_millis(10)));
        assert_eq!(
            t.control(1, t0),
            Decision::Reject(Duration::from_millis(20))
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.control(1, t1), Decision::Pass);
    }

    #[test]
    fn reconfigure_replaces_the_rules_and_keeps_the_counters() {
        let t = WriteThrottling::off();
        assert_eq!(t.admit(10).unwrap(), None);
        t.reconfigure("1*reject*7", "").unwrap();
        assert_eq!(t.admit(10).unwrap(), None);
        assert!(matches!(
            t.admit(10),
            Err(Error::Throttled { delay_ms: 7, .. })
        ));
        assert!(t.reconfigure("x*reject*7", "").is_err());
        assert_eq!(t.config(), ("1*reject*7".to_string(), String::new()));
        t.reconfigure("", "").unwrap();
        assert_eq!(t.admit(10).unwrap(), None);
        assert_eq!(t.stats().rejected, 1);
    }
}
