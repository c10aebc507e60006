//! The Pegasus throttling string, `<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms>`: its parser, shared
//! by the replica layer (which applies it, `siltdb_replica::throttle`) and the app envs that
//! carry it ([`crate::envs`]), so that a bad string is refused before it reaches a replica.
//!
//! `K` = 1,000 and `M` = 1,000,000 (as in Pegasus); either rule may be left out; the empty
//! string means no throttling.

use crate::error::{Error, Result};

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
pub const MAX_THROTTLE_MS: u64 = 60_000;

impl ThrottleConfig {
    /// Parses `<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms>` (either part optional; empty = off).
    pub fn parse(s: &str) -> Result<ThrottleConfig> {
        let mut cfg = ThrottleConfig::default();
        let s = s.trim();
        if s.is_empty() {
            return Ok(cfg);
        }
        for part in s.split(',') {
            let bad =
                |why: &str| Error::InvalidArgument(format!("throttling: bad part {part:?}: {why}"));
            let fields: Vec<&str> = part.trim().split('*').collect();
            let [n, kind, ms] = fields[..] else {
                return Err(bad("expected <N>[K|M]*delay|reject*<ms>"));
            };
            let threshold = parse_units(n).ok_or_else(|| bad("threshold is not <N>[K|M]"))?;
            let ms: u64 = ms.parse().map_err(|_| bad("<ms> is not a number"))?;
            if ms > MAX_THROTTLE_MS {
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
}
