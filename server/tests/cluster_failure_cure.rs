//! Failure cure (issue 24): on a 4-node cluster with the meta service, a node killed under
//! writes is noticed by the meta leader once it has been unreachable for
//! `--node-failure-grace`, and its replicas are moved onto the live nodes with the idempotent
//! move; every partition is back to full replication within a bound and nothing acknowledged
//! is lost. When the dead node comes back, its stale replicas are removed.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn admin_ok(addr: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = silt_admin(addr, args);
    assert!(ok, "silt-admin {args:?} failed: {stdout}{stderr}");
    format!("{stdout}{stderr}")
}

/// Replicas of `table` per partition in the newest layout, and whether `dead` is among them.
async fn placement(c: &Cluster, table: &str, dead: u64) -> (Vec<usize>, bool) {
    let layout = c.client.newest_layout(table).await.expect("layout");
    let counts = (0..layout.partition_count)
        .map(|p| layout.replicas(p).len())
        .collect();
    let on_dead =
        (0..layout.partition_count).any(|p| layout.replicas(p).iter().any(|n| n.id == dead));
    (counts, on_dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_and_its_stale_replicas_removed_when_it_returns() {
    const GRACE: &str = "3s";
    let mut c = Cluster::start_bare(3, &["--node-failure-grace", GRACE]);
    let a1 = c.addr(1);
    c.init_meta();
    let n4 = c.start_extra(4);
    admin_ok(&a1, &["register-node", "--node", &format!("4={}", n4.addr)]);
    admin_ok(
        &a1,
        &[
            "create-table",
            "--name",
            TABLE,
            "--partitions",
            "8",
            "--replicas",
            "3",
        ],
    );
    let (counts, on4) = placement(&c, TABLE, 4).await;
    assert!(counts.iter().all(|&n| n == 3), "{counts:?}");
    assert!(on4, "node 4 hosts replicas before it dies");

    // Writers run through the kill and the cure; every acknowledged key is remembered.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, stop, acked) = (Arc::clone(&c.client), Arc::clone(&stop), Arc::clone(&acked));
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("w{i:06}");
                if client.put(TABLE, k.as_bytes(), k.as_bytes()).await.is_ok() {
                    acked.fetch_max(i + 1, Ordering::Relaxed);
                    i += 1;
                }
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.kill9(4);
    let killed = Instant::now();
    // Full replication again, without node 4, within a bound.
    let bound = Duration::from_secs(120);
    loop {
        let (counts, on4) = placement(&c, TABLE, 4).await;
        if !on4 && counts.iter().all(|&n| n == 3) {
            break;
        }
        assert!(
            killed.elapsed() < bound,
            "not cured after {bound:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cured_after = killed.elapsed();
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
    c.wait_converged(Duration::from_secs(60)).await;
    eprintln!("failure_cure: full replication {cured_after:?} after the kill ({written} writes)");
    for i in 0..acked.load(Ordering::Relaxed) {
        let k = format!("w{i:06}");
        assert_eq!(
            c.client.get(TABLE, k.as_bytes()).await.unwrap().as_deref(),
            Some(k.as_bytes()),
            "acknowledged {k} lost"
        );
    }

    // Node 4 comes back: its replicas of the table are stale and get removed.
    c.restart(4);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.stats(4).await;
        let stale = s.partitions.iter().filter(|p| p.table == TABLE).count();
        if stale == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 still hosts {stale} stale replicas"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for i in (0..acked.load(Ordering::Relaxed)).step_by(7) {
        let k = format!("w{i:06}");
        assert!(c.client.get(TABLE, k.as_bytes()).await.unwrap().is_some());
    }
}
