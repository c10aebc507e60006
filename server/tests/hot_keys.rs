//! `silt-admin hotkeys` through the binaries: a key hammered among uniform traffic is the top
//! key of its partition, for reads and for writes, and bad input is refused.

mod common;

use common::*;
use std::time::Duration;

/// Requests on the hot key, and on each of the cold keys.
const HOT_REQUESTS: usize = 400;
const COLD_KEYS: usize = 200;

/// The `(partition, kind, count, key)` lines of a `hotkeys` output.
fn parse(out: &str) -> Vec<(u32, String, u64, String)> {
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            assert_eq!(f.len(), 4, "line {l:?}");
            (
                f[0].parse().expect("partition"),
                f[1].to_string(),
                f[2].parse().expect("count"),
                f[3].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hammered_key_is_the_top_key_of_its_partition() {
    let c = Cluster::start(1).await;
    let a = c.addr(1);
    let hot = b"the-hot-key".to_vec();
    let hot_p = c.layout.partition_of(&hot);
    // Uniform traffic over the cold keys, interleaved with the hot key.
    for i in 0..COLD_KEYS.max(HOT_REQUESTS) {
        if i < COLD_KEYS {
            let k = format!("cold-{i}").into_bytes();
            c.client.put(TABLE, &k, b"v").await.unwrap();
            c.client.get(TABLE, &k).await.unwrap();
        }
        if i < HOT_REQUESTS {
            c.client.put(TABLE, &hot, b"v").await.unwrap();
            c.client.get(TABLE, &hot).await.unwrap();
        }
    }

    for kind in ["read", "write"] {
        let (ok, out, err) = silt_admin(&a, &["hotkeys", "--table", TABLE, "--kind", kind]);
        assert!(ok, "{err}");
        let rows = parse(&out);
        assert!(rows.iter().all(|r| r.1 == kind), "{out}");
        let top = rows
            .iter()
            .find(|r| r.0 == hot_p)
            .unwrap_or_else(|| panic!("no {kind} report of partition {hot_p}: {out}"));
        assert_eq!(top.3, "the-hot-key", "{kind}: {out}");
        let next = rows.iter().filter(|r| r.0 == hot_p).nth(1);
        if let Some(n) = next {
            assert!(top.2 > n.2 * 3, "{kind}: the hot key stands out: {out}");
        }
        // Other partitions saw only cold keys.
        assert!(
            rows.iter()
                .all(|r| r.0 == hot_p || r.3.starts_with("cold-")),
            "{out}"
        );
    }
    // Both kinds by default; at most --top keys per partition and kind.
    let (ok, out, err) = silt_admin(&a, &["hotkeys", "--table", TABLE, "--top", "2"]);
    assert!(ok, "{err}");
    let rows = parse(&out);
    assert!(rows.iter().any(|r| r.1 == "read") && rows.iter().any(|r| r.1 == "write"));
    for p in 0..PARTITIONS {
        for kind in ["read", "write"] {
            let n = rows.iter().filter(|r| r.0 == p && r.1 == kind).count();
            assert!(n <= 2, "partition {p} {kind}: {n} rows");
        }
    }
    let (ok, out, _) = silt_admin(&a, &["--json", "hotkeys", "--table", TABLE]);
    assert!(ok && out.contains("\"partition\""), "{out}");

    let (ok, _, err) = silt_admin(&a, &["hotkeys", "--table", TABLE, "--kind", "scan"]);
    assert!(!ok && err.contains("read, write"), "{err}");
    let (ok, _, err) = silt_admin(&a, &["hotkeys", "--table", "missing"]);
    assert!(!ok, "{err}");
    // A bounded wait is all the command needs: it answers from counters in memory.
    let t0 = std::time::Instant::now();
    assert!(silt_admin(&a, &["hotkeys", "--table", TABLE]).0);
    assert!(t0.elapsed() < Duration::from_secs(20));
}
