//! Membership changes on a live 3-node cluster (8 partitions × 3 replicas) under write load:
//!
//! 1. a 4th node joins: one partition's replica moves from its current *leader* to the new
//!    node after the group checkpointed and purged its log, so the learner catches up from a
//!    checkpoint (snapshot), then becomes a voter (joint consensus);
//! 2. `silt-admin add-node` rebalances replicas onto the new node, `silt-admin drain-node`
//!    empties node 1, which is then stopped: every partition keeps serving;
//! 3. no acknowledged write is lost, every group's replicas hold identical data, removed
//!    replicas' directories are gone, and a restarted node reopens its moved-in replicas.

mod common;

use common::*;
use siltdb_server::proto::ClientRequest;
use siltdb_server::{Client, NodeInfo, TableLayout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Acknowledged writes: (key, value).
type Acked = Arc<parking_lot::Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

/// Bound on writes, whatever happens.
const MAX_WRITES: u64 = 100_000;

fn start_writer(
    client: &Arc<Client>,
    stop: &Arc<AtomicBool>,
    acked: &Acked,
) -> tokio::task::JoinHandle<()> {
    let (client, stop, acked) = (Arc::clone(client), Arc::clone(stop), Arc::clone(acked));
    tokio::spawn(async move {
        for seq in 0..MAX_WRITES {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let k = format!("m-{seq:07}").into_bytes();
            let v = format!("v{seq}").into_bytes();
            if client.put(TABLE, &k, &v).await.is_ok() {
                acked.lock().push((k, v));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

fn admin(addr: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = silt_admin(addr, args);
    assert!(ok, "silt-admin {args:?} failed: {stderr}{stdout}");
    stdout
}

async fn leader_of(c: &Cluster, layout: &TableLayout, p: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for n in layout.replicas(p) {
            if let Ok(s) = c.client.stats(&n.addr).await {
                if let Some(ps) = s
                    .partitions
                    .iter()
                    .find(|x| x.table == TABLE && x.partition == p)
                {
                    if let Some(l) = ps.leader {
                        return l;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "partition {p} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every partition's replicas (by `layout`) have the same applied decree and digest.
async fn wait_groups_converged(c: &Cluster, layout: &TableLayout, within: Duration) {
    let deadline = Instant::now() + within;
    'retry: loop {
        assert!(Instant::now() < deadline, "groups did not converge");
        for p in 0..layout.partition_count {
            let mut seen = None;
            for n in layout.replicas(p) {
                let Ok(d) = c.client.digest(&n.addr, TABLE, p).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'retry;
                };
                let now = (d.applied, d.keys, d.hash);
                if d.applied.is_none() || seen.is_some_and(|s| s != now) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'retry;
                }
                seen = Some(now);
            }
        }
        return;
    }
}

fn hosted(layout: &TableLayout, id: u64) -> usize {
    siltdb_server::membership::replica_count(layout, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_move_between_nodes_under_load() {
    let mut c = Cluster::start(3).await;
    for i in 0..200u32 {
        let k = format!("pre-{i:04}");
        c.client.put(TABLE, k.as_bytes(), b"pre").await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let writer = start_writer(&c.client, &stop, &acked);

    // 1. A new node; partition 0 moves from its leader to it, through a checkpoint.
    let n4 = c.start_extra(4);
    let layout0 = c.client.newest_layout(TABLE).await.unwrap();
    assert_eq!(layout0.epoch, 0);
    let from = leader_of(&c, &layout0, 0).await;
    for id in 1..=3 {
        c.admin(
            id,
            ClientRequest::Checkpoint {
                table: TABLE.into(),
            },
        )
        .await;
    }
    let out = c
        .client
        .move_replica(TABLE, 0, from, &n4, Duration::from_secs(60))
        .await
        .expect("move partition 0");
    assert!(!out.resumed);
    assert_eq!(out.layout.epoch, 1);
    let ids: Vec<u64> = out.layout.replicas(0).iter().map(|n| n.id).collect();
    assert!(ids.contains(&4) && !ids.contains(&from), "{ids:?}");
    // Repeating the move is a no-op that reports itself as resumed.
    let again = c
        .client
        .move_replica(TABLE, 0, from, &n4, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!(again.layout, out.layout);
    // The old leader dropped its replica and its directory.
    let s = c.stats(from).await;
    assert!(!s.partitions.iter().any(|p| p.partition == 0), "{s:?}");
    assert!(!c.proc(from).dir.join("data/replicas/1.0").exists());
    // The new replica learned the data (from the checkpoint: the log was purged).
    let s4 = c.stats(4).await;
    let p0 = s4
        .partitions
        .iter()
        .find(|p| p.partition == 0)
        .expect("node 4 hosts p0");
    assert!(p0.applied.is_some());
    for i in 0..200u32 {
        let k = format!("pre-{i:04}");
        assert_eq!(
            c.client.get(TABLE, k.as_bytes()).await.unwrap().as_deref(),
            Some(&b"pre"[..])
        );
    }

    // 2. Rebalance onto node 4 with the operator CLI, then drain node 1.
    let node4 = format!("4={}", n4.addr);
    let text = admin(
        &c.addr(2),
        &["add-node", "--table", TABLE, "--node", &node4],
    );
    assert!(text.contains("replicas moved onto it"), "{text}");
    let layout = c.client.newest_layout(TABLE).await.unwrap();
    assert_eq!(
        hosted(&layout, 4),
        6,
        "8 partitions × 3 replicas over 4 nodes"
    );
    let text = admin(&c.addr(2), &["drain-node", "--table", TABLE, "--node", "1"]);
    assert!(text.contains("drained"), "{text}");
    let layout = c.client.newest_layout(TABLE).await.unwrap();
    assert_eq!(hosted(&layout, 1), 0);
    for p in 0..layout.partition_count {
        assert_eq!(layout.replicas(p).len(), 3);
    }
    let tables = admin(&c.addr(3), &["tables"]);
    assert!(
        tables.contains(&format!("epoch={}", layout.epoch)),
        "{tables}"
    );
    // Node 1 holds nothing any more: stopping it costs no availability.
    assert!(c.stats(1).await.partitions.is_empty());
    assert!(c.terminate(1));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. Writes keep going; then nothing acknowledged is lost and the groups agree.
    let before = acked.lock().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().len() < before + 100 {
        assert!(Instant::now() < deadline, "writes stalled after the moves");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().clone();
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    // A fresh client routes by the newest layout from a node that was never moved.
    let fresh = Client::new(siltdb_server::ClientOptions::new(vec![c.addr(3)]));
    for (k, v) in &acked {
        assert_eq!(fresh.get(TABLE, k).await.unwrap().as_ref(), Some(v));
    }
    wait_groups_converged(&c, &layout, Duration::from_secs(60)).await;

    // A restarted node reopens the replicas it gained (never re-initializing them).
    assert!(c.terminate(4));
    c.restart(4);
    wait_groups_converged(&c, &layout, Duration::from_secs(60)).await;
    let s4 = c.stats(4).await;
    assert_eq!(s4.partitions.len(), hosted(&layout, 4));
    assert_eq!(hosted(&layout, 4), 8, "24 replicas over nodes 2, 3, 4");
    for p in &s4.partitions {
        assert!(p.applied.is_some(), "{p:?}");
    }
    let probe = NodeInfo {
        id: 9,
        addr: "127.0.0.1:1".into(),
    };
    // A move naming a node that is not a replica is refused with a clear error.
    let err = c
        .client
        .move_replica(TABLE, 0, 1, &probe, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a replica"), "{err}");
}
