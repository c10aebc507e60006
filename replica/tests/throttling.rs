//! Write throttling measured against the configured rates.

use siltdb_replica::throttle::WriteThrottling;
use siltdb_replica::Error;
use std::time::{Duration, Instant};

/// Offers writes as fast as possible for `run`, honouring delays; returns (admitted, rejected)
/// per second of wall time.
fn offer(t: &WriteThrottling, bytes: u64, run: Duration) -> (f64, f64) {
    let start = Instant::now();
    let (mut ok, mut rejected) = (0u64, 0u64);
    while start.elapsed() < run {
        match t.admit(bytes) {
            Ok(Some(d)) => {
                std::thread::sleep(d);
                ok += 1;
            }
            Ok(None) => ok += 1,
            Err(Error::Throttled { .. }) => {
                rejected += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (ok as f64 / secs, rejected as f64 / secs)
}

#[test]
fn reject_mode_caps_qps_at_the_threshold() {
    let t = WriteThrottling::parse("200*reject*10", "").unwrap();
    let (ok, rejected) = offer(&t, 10, Duration::from_millis(2_100));
    // 200 per started second: at most 3 windows in 2.1 s.
    assert!(ok <= 200.0 * 3.0 / 2.1 + 1.0, "admitted {ok}/s");
    assert!(ok >= 150.0, "admitted {ok}/s");
    assert!(rejected > 0.0);
    assert!(t.stats().rejected > 0);
}

#[test]
fn delay_mode_slows_writes_past_the_threshold() {
    // Past 50 writes in a second each write waits 20 ms: at most ~50 more per second.
    let t = WriteThrottling::parse("50*delay*20", "").unwrap();
    let (ok, rejected) = offer(&t, 10, Duration::from_millis(2_000));
    assert_eq!(rejected, 0.0);
    assert!(ok <= 50.0 + 1000.0 / 20.0 + 5.0, "admitted {ok}/s");
    assert!(ok >= 50.0, "admitted {ok}/s");
    assert!(t.stats().delayed > 0);
}

#[test]
fn size_rule_counts_bytes() {
    // 10 KB/s reject threshold with 1 KB writes: about 10 writes per second.
    let t = WriteThrottling::parse("", "10K*reject*5").unwrap();
    let (ok, _) = offer(&t, 1_000, Duration::from_millis(2_100));
    assert!(ok <= 30.0 / 2.1 + 1.0, "admitted {ok}/s");
    assert!(ok >= 5.0, "admitted {ok}/s");
}
