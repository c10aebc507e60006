//! Jepsen-style check: 4 clients read and write one register (one key) through the client
//! while a nemesis kills -9 a random node and restarts it, one node down at a time; the
//! recorded history must be linearizable (`siltdb_server::lincheck`). Writes that failed are
//! "unknown" (they may apply later or never); failed reads are dropped. The seed is printed;
//! `SILT_SEED=<n>` replays the same nemesis schedule and op mix, `SILT_SOAK=1` runs longer.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use siltdb_server::lincheck::{self, Operation, RegisterOp, Verdict};
use siltdb_server::{Client, ClientOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &[u8] = b"register";
const CLIENTS: u32 = 4;

fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

async fn client_loop(
    client: Arc<Client>,
    id: u32,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
    ops_max: u32,
) -> Vec<Operation> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ u64::from(id));
    let mut history = Vec::new();
    for seq in 0..ops_max {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let invoked = micros(start);
        if rng.gen_bool(0.5) {
            let v = u64::from(id) * 1_000_000 + u64::from(seq);
            let r = client.put(TABLE, KEY, &v.to_le_bytes()).await;
            history.push(Operation {
                client: id,
                invoked,
                completed: r.is_ok().then(|| micros(start)),
                op: RegisterOp::Write(v),
            });
        } else if let Ok(got) = client.get(TABLE, KEY).await {
            let value = got.map(|b| {
                let bytes: [u8; 8] = b.as_slice().try_into().expect("8-byte register value");
                u64::from_le_bytes(bytes)
            });
            history.push(Operation {
                client: id,
                invoked,
                completed: Some(micros(start)),
                op: RegisterOp::Read(value),
            });
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
    }
    history
}

/// The leader of the register's partition, as a live node reports it.
async fn register_leader(c: &Cluster) -> Option<u64> {
    let p = c.layout.partition_of(KEY);
    let id = *c.live().first()?;
    let s = c.client.stats(&c.addr(id)).await.ok()?;
    s.partitions.iter().find(|x| x.partition == p)?.leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_register_is_linearizable_under_random_kills() {
    let seed: u64 = std::env::var("SILT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let soak = common::soak();
    eprintln!("SILT_SEED={seed}");
    let mut c = Cluster::start(3).await;
    // A client with a deadline shorter than an election, so operations around a kill of the
    // leader fail and writes get unknown outcomes instead of waiting it out.
    let mut opts = ClientOptions::new(c.procs.iter().map(|p| p.addr.clone()).collect());
    opts.deadline = Duration::from_millis(1200);
    opts.rpc_timeout = Duration::from_millis(600);
    let client = Arc::new(Client::new(opts));
    c.client.put(TABLE, KEY, &0u64.to_le_bytes()).await.unwrap();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ops_max = if soak { 5_000 } else { 400 };
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client_loop(
                Arc::clone(&client),
                id,
                seed,
                start,
                Arc::clone(&stop),
                ops_max,
            ))
        })
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let kills = if soak { 12 } else { 3 };
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1000..2500))).await;
        // Half of the kills hit the register's leader, the others a random node.
        let leader = register_leader(&c).await;
        let victim = match leader {
            Some(l) if rng.gen_bool(0.5) => l,
            _ => rng.gen_range(1..=3u64),
        };
        eprintln!("nemesis {k}: kill -9 node {victim}");
        tokio::task::block_in_place(|| c.kill9(victim));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
        tokio::task::block_in_place(|| c.restart(victim));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut history = vec![Operation {
        client: u32::MAX,
        invoked: 0,
        completed: Some(0),
        op: RegisterOp::Write(0),
    }];
    for t in tasks {
        let h = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("client stops")
            .unwrap();
        history.extend(h);
    }
    let completed = history.iter().filter(|o| o.completed.is_some()).count();
    let unknown = history.len() - completed;
    eprintln!(
        "{} operations: {completed} completed, {unknown} unknown",
        history.len()
    );
    assert!(completed >= 50, "too few operations completed: {completed}");
    let verdict = tokio::task::spawn_blocking(move || {
        let v = lincheck::check(&history);
        (v, history)
    })
    .await
    .unwrap();
    match verdict {
        (Verdict::Linearizable, _) => {}
        (Verdict::Unknown, _) => panic!("checker gave up (seed {seed})"),
        (Verdict::NotLinearizable { deepest }, history) => {
            let tail: Vec<&Operation> = deepest
                .iter()
                .rev()
                .take(20)
                .map(|&i| &history[i])
                .collect();
            panic!("not linearizable (seed {seed}); last linearized ops: {tail:#?}");
        }
    }
    for id in c.live() {
        assert!(c.terminate(id), "node {id} exit code after SIGTERM");
    }
}
