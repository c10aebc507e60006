//! Kill -9 of a node under write load: no acknowledged write is lost, every partition accepts
//! writes again after the election, and the restarted node catches up by snapshot (the
//! survivors checkpointed and purged their logs past it) until all replicas hold the same data.
//! `SILT_SOAK=1` repeats the kill/restart cycle on every node in turn.

mod common;

use common::*;
use siltdb_server::Client;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on writes per writer, whatever happens.
const MAX_WRITES_PER_WRITER: u64 = 200_000;

/// Acknowledged writes: (key, value).
type Acked = Arc<parking_lot::Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

struct Load {
    stop: Arc<AtomicBool>,
    acked: Acked,
    count: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(client: &Arc<Client>, writers: u32, round: u32) -> Load {
    let load = Load {
        stop: Arc::default(),
        acked: Arc::default(),
        count: Arc::default(),
        failed: Arc::default(),
        tasks: Vec::new(),
    };
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, stop) = (Arc::clone(client), Arc::clone(&load.stop));
        let (acked, count, failed) = (
            Arc::clone(&load.acked),
            Arc::clone(&load.count),
            Arc::clone(&load.failed),
        );
        tasks.push(tokio::spawn(async move {
            for seq in 0..MAX_WRITES_PER_WRITER {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let k = format!("r{round}-w{w}-{seq:07}").into_bytes();
                let v = format!("v{seq}").into_bytes();
                match client.put(TABLE, &k, &v).await {
                    Ok(()) => {
                        acked.lock().push((k, v));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    // Unknown outcome: neither required nor forbidden afterwards.
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    Load { tasks, ..load }
}

async fn wait_count(load: &Load, at_least: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while load.count.load(Ordering::Relaxed) < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} acknowledged writes (wanted {at_least}), {} failed",
            load.count.load(Ordering::Relaxed),
            load.failed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop_load(load: Load) -> Vec<(Vec<u8>, Vec<u8>)> {
    load.stop.store(true, Ordering::Relaxed);
    for t in load.tasks {
        tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .expect("writer stops")
            .unwrap();
    }
    let acked = load.acked.lock().clone();
    acked
}

/// The node leading the most partitions.
async fn busiest_leader(c: &Cluster) -> u64 {
    let id = c.live()[0];
    let s = c.stats(id).await;
    let mut n = std::collections::BTreeMap::<u64, u32>::new();
    for p in &s.partitions {
        if let Some(l) = p.leader {
            *n.entry(l).or_default() += 1;
        }
    }
    n.into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(l, _)| l)
        .unwrap_or(id)
}

async fn kill_cycle(c: &mut Cluster, round: u32, victim: Option<u64>) {
    let load = start_load(&c.client, 3, round);
    wait_count(&load, 60, Duration::from_secs(60)).await;
    let victim = match victim {
        Some(v) => v,
        None => busiest_leader(c).await,
    };
    c.kill9(victim);
    let at_kill = load.count.load(Ordering::Relaxed);
    // Availability resumes: the load goes on, and every partition takes a write.
    wait_count(&load, at_kill + 60, Duration::from_secs(90)).await;
    for p in 0..PARTITIONS {
        let k = c.key_in(p, &format!("after-kill-{round}"));
        c.client
            .put(TABLE, &k, b"x")
            .await
            .expect("partition writable after the kill");
    }
    // The survivors checkpoint and purge their logs past what the victim has.
    for id in c.live() {
        c.admin(
            id,
            siltdb_server::proto::ClientRequest::Checkpoint {
                table: TABLE.into(),
            },
        )
        .await;
    }
    // Wait until those purges happened (a leader may defer one while a replication task
    // reads the log), so the victim's next entries are gone and it must learn a snapshot.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut pending = Vec::new();
        for id in c.live() {
            for p in c.stats(id).await.partitions {
                if p.leader == Some(id) && (p.snapshot.is_none() || p.purged != p.snapshot) {
                    pending.push((id, p.partition, p.snapshot));
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "logs not purged: {pending:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A leader elected since the checkpoint request has none: it checkpoints now. (Asking
        // the others again would move their snapshots ahead of the purge being waited for.)
        let mut nodes: Vec<u64> = pending
            .iter()
            .filter(|(_, _, snapshot)| snapshot.is_none())
            .map(|(id, _, _)| *id)
            .collect();
        nodes.dedup();
        for id in nodes {
            c.admin(
                id,
                siltdb_server::proto::ClientRequest::Checkpoint {
                    table: TABLE.into(),
                },
            )
            .await;
        }
    }
    let before = c.client.stats(&c.addr(victim)).await.ok();
    assert!(before.is_none(), "the killed node still answers");
    c.restart(victim);
    let at_restart = load.count.load(Ordering::Relaxed);
    wait_count(&load, at_restart + 60, Duration::from_secs(90)).await;
    let acked = stop_load(load).await;
    c.wait_converged(Duration::from_secs(120)).await;
    let s = c.stats(victim).await;
    assert!(
        s.transport.snapshots_received >= 1,
        "node {victim} caught up without a snapshot: {:?}",
        s.transport
    );
    // One linearizable scan of this round's keys instead of a get per key.
    let prefix = format!("r{round}-");
    let end = format!("r{round}.");
    let stored: std::collections::HashMap<Vec<u8>, Vec<u8>> = c
        .client
        .scan(TABLE, prefix.as_bytes(), Some(end.as_bytes()), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (k, v) in &acked {
        assert_eq!(stored.get(k), Some(v), "acknowledged write {k:?} lost");
    }
    eprintln!(
        "round {round}: killed node {victim}, {} acknowledged writes verified",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_no_acknowledged_write_and_the_node_catches_up() {
    let mut c = Cluster::start(3).await;
    kill_cycle(&mut c, 0, None).await;
    if common::soak() {
        for round in 1..=6u32 {
            kill_cycle(&mut c, round, Some(u64::from(round % 3) + 1)).await;
        }
    }
    for id in c.live() {
        assert!(c.terminate(id), "node {id} exit code after SIGTERM");
    }
}
