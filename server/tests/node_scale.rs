//! A node hosting hundreds of partitions (issue 24): every replica's engine shares the node's
//! one block cache, background pool and write-buffer budget, so the node's threads do not
//! grow with its partitions and its memory stays within the configured budget.
//!
//! Prints the figures (threads, RSS) at 8 and 256 partitions for the closing note.

mod common;

use common::*;
use siltdb_server::TableLayout;
use std::time::{Duration, Instant};

/// (threads, RSS bytes) of process `pid`, from /proc.
fn threads_and_rss(pid: u32) -> (usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("Threads:") as usize, field("VmRSS:") * 1024)
}

/// Writes `per_partition` keys of 1 KiB into every partition of `layout`.
async fn fill(c: &Cluster, layout: &TableLayout, per_partition: usize) {
    let value = vec![b'x'; 1024];
    let deadline = Instant::now() + Duration::from_secs(240);
    for p in 0..layout.partition_count {
        let mut written = 0;
        let mut i = 0u64;
        while written < per_partition {
            let k = format!("k{p}-{i}").into_bytes();
            i += 1;
            if layout.partition_of(&k) != p {
                continue;
            }
            c.client.put(&layout.name, &k, &value).await.expect("put");
            written += 1;
        }
        assert!(Instant::now() < deadline, "filling took too long");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_and_memory_stay_flat_from_8_to_256_partitions() {
    let c = Cluster::start_bare(
        1,
        &[
            "--block-cache-size",
            "32MiB",
            "--write-buffer-size",
            "64MiB",
            "--background-jobs",
            "2",
        ],
    );
    let nodes = c.layout.nodes.clone();
    let small = TableLayout::new("small", 1, 8, 1, nodes.clone());
    c.client.create_table(&small).await.expect("create small");
    fill(&c, &small, 64).await;
    let (t8, rss8) = threads_and_rss(c.pid(1));
    let big = TableLayout::new("big", 2, 248, 1, nodes);
    c.client.create_table(&big).await.expect("create big");
    let (_, rss_empty) = threads_and_rss(c.pid(1));
    eprintln!(
        "node_scale: 256 partitions before writes: {} MiB RSS",
        rss_empty >> 20
    );
    fill(&c, &big, 64).await;
    let (t256, rss256) = threads_and_rss(c.pid(1));
    let s = c.stats(1).await;
    assert_eq!(s.partitions.len(), 256, "{:?}", s.quarantined);
    eprintln!(
        "node_scale: 8 partitions: {t8} threads, {} MiB RSS; 256 partitions: {t256} threads, \
         {} MiB RSS",
        rss8 >> 20,
        rss256 >> 20
    );
    // Replicas run on the node's shared pool and the tokio runtime: 31x the partitions adds
    // no per-partition thread.
    assert!(t256 <= t8 + 8, "threads grew from {t8} to {t256}");
    // The budget: 32 MiB of cache + 64 MiB of memtables (at most twice that while flushes
    // catch up) + per-replica bookkeeping (about 0.7 MiB: openraft, plog, engine); far below
    // 256 private 64 MiB caches (measured: about 280 MiB).
    assert!(rss256 < 512 << 20, "RSS {} MiB", rss256 >> 20);
    // Everything written is there.
    for (layout, p) in [(&small, 3), (&big, 200)] {
        let k = (0u64..)
            .map(|i| format!("k{p}-{i}").into_bytes())
            .find(|k| layout.partition_of(k) == p)
            .unwrap();
        assert!(c.client.get(&layout.name, &k).await.unwrap().is_some());
    }
}
