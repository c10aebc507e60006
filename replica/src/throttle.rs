//! Write throttling in Pegasus' format: `<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms>`.
//!
//! Each rule counts per wall-clock second, either requests (QPS) or bytes (by size): once the
//! second's count passes the reject threshold a request is refused (the client is told to retry
//! after `<ms>`); else past the delay threshold it is admitted after waiting `<ms>`. `K` = 1,000
//! and `M` = 1,000,000 (as in Pegasus). Reject is checked first. Only user writes are throttled;
//! control requests (bulk-load ingestion, learn) bypass it.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// One rule: past `threshold` units in a second, act with `ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Units per second above which the rule acts.
    pub threshold: u64,
    /// Delay before admission, or the retry hint of a rejection, in milliseconds.
    pub ms: u64,
}

/// A parsed throttling string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// The delay rule.
    pub delay: Option<Rule>,
    /// The reject rule.
    pub reject: Option<Rule>,
}

/// Largest delay or retry hint accepted, in milliseconds.
pub const THROTTLE_MS_MAX: u64 = 60_000;

impl ThrottleConfig {
    /// Parses `<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms>` (either part optional; empty = off).
    pub fn parse(s: &str) -> Result<ThrottleConfig> {
        let mut cfg = ThrottleConfig::default();
        let s = s.trim();
        if s.is_empty() {
            return Ok(cfg);
        }
        for part in s.split(',') {
            let bad = |why: &str| {
                Error::InvalidArgument(format!("write throttling: bad part {part:?}: {why}"))
            };
            let fields: Vec<&str> = part.trim().split('*').collect();
            let [n, kind, ms] = fields[..] else {
                return Err(bad("expected <N>[K|M]*delay|reject*<ms>"));
            };
            let threshold = parse_units(n).ok_or_else(|| bad("threshold is not <N>[K|M]"))?;
            let ms: u64 = ms.parse().map_err(|_| bad("<ms> is not a number"))?;
            if ms > THROTTLE_MS_MAX {
                return Err(bad("<ms> above 60000"));
            }
            let rule = Some(Rule { threshold, ms });
            let slot = match kind {
                "delay" => &mut cfg.delay,
                "reject" => &mut cfg.reject,
                _ => return Err(bad("type must be delay or reject")),
            };
            if slot.is_some() {
                return Err(bad("rule type given twice"));
            }
            *slot = rule;
        }
        Ok(cfg)
    }
}

fn parse_units(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1_000),
        b'M' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

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

/// Counters of throttled writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    /// Writes admitted after a delay.
    pub delayed: u64,
    /// Writes rejected.
    pub rejected: u64,
}

/// The two throttles of a table: by request count and by bytes.
#[derive(Debug)]
pub struct WriteThrottling {
    qps: Throttle,
    size: Throttle,
    stats: Mutex<ThrottleStats>,
}

impl WriteThrottling {
    /// Builds from the two Pegasus strings (`write_throttling`, `write_throttling_by_size`).
    pub fn parse(by_qps: &str, by_size: &str) -> Result<Self> {
        Ok(Self {
            qps: Throttle::new(ThrottleConfig::parse(by_qps)?),
            size: Throttle::new(ThrottleConfig::parse(by_size)?),
            stats: Mutex::default(),
        })
    }

    /// No throttling.
    pub fn off() -> Self {
        Self {
            qps: Throttle::new(ThrottleConfig::default()),
            size: Throttle::new(ThrottleConfig::default()),
            stats: Mutex::default(),
        }
    }

    /// Decides for one user write of `bytes`: `Err(Throttled)` to reject, `Ok(Some(d))` to
    /// admit after `d`, `Ok(None)` to admit at once.
    pub fn admit(&self, bytes: u64) -> Result<Option<Duration>> {
        let now = Instant::now();
        let a = self.qps.control(1, now);
        let b = self.size.control(bytes, now);
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
    fn parses_pegasus_strings() {
        let c = ThrottleConfig::parse("300*delay*100,500*reject*200").unwrap();
        assert_eq!(
            c.delay,
            Some(Rule {
                threshold: 300,
                ms: 100
            })
        );
        assert_eq!(
            c.reject,
            Some(Rule {
                threshold: 500,
                ms: 200
            })
        );
        let c = ThrottleConfig::parse("20K*delay*100").unwrap();
        assert_eq!(
            c.delay,
            Some(Rule {
                threshold: 20_000,
                ms: 100
            })
        );
        assert_eq!(c.reject, None);
        let c = ThrottleConfig::parse("2M*reject*50").unwrap();
        assert_eq!(
            c.reject,
            Some(Rule {
                threshold: 2_000_000,
                ms: 50
            })
        );
        assert_eq!(
            ThrottleConfig::parse("").unwrap(),
            ThrottleConfig::default()
        );
    }

    #[test]
    fn rejects_bad_strings_naming_the_part() {
        for (s, part) in [
            ("300*delay", "300*delay"),
            ("300*wait*100", "300*wait*100"),
            ("30G*delay*100", "30G*delay*100"),
            ("300*delay*100,x*reject*5", "x*reject*5"),
            ("1*delay*1,2*delay*2", "2*delay*2"),
            ("K*delay*1", "K*delay*1"),
            ("1*delay*-3", "1*delay*-3"),
            ("1*delay*99999999", "1*delay*99999999"),
        ] {
            let e = ThrottleConfig::parse(s).unwrap_err().to_string();
            assert!(e.contains(part), "{s}: {e}");
        }
    }

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
}
