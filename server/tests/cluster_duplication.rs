//! Cluster duplication from a 3-node cluster (8 partitions × 3 replicas) to a 1-node cluster
//! (8 partitions × 1 replica): keys written before the duplication arrive through the
//! checkpoint path, later puts and deletes through the log; the follower equals the source
//! after a kill -9 of a source node leading partitions (its partitions' new leaders take the
//! duplication over) and its restart, through a restart of the follower cluster and a graceful
//! stop of a source node (whose partitions may go to the restarted victim, which then finds
//! its log purged past its stale record and copies a checkpoint: counted in the server logs,
//! not asserted, since elections decide it); after removal, writes are no longer shipped. The
//! duplication is added, queried and removed again through `silt-admin`.

mod common;

use common::*;
use siltdb_replica::WriteOp;
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::Client;
use siltdb_server::ServerError;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const FOLLOWER_TABLE: &str = "follower";

/// Runs `silt-admin` against the first node of `c`: (success, stdout, stderr).
fn admin(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    silt_admin(&c.addr(1), args)
}

/// What the source holds: every acknowledged write applied in order.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Writes `n` batches of puts (new keys and overwrites) and deletes (of keys the model holds),
/// each acknowledged, and applies them to `model`.
async fn write_round(client: &Client, model: &mut Model, tag: &str, n: usize) {
    for i in 0..n {
        let mut ops = Vec::new();
        for j in 0..6 {
            let k = format!("{tag}-{i}-{j}").into_bytes();
            let v = format!("v-{tag}-{i}-{j}").into_bytes();
            ops.push((k, Some(v)));
        }
        // Overwrite one old key and delete two, picked deterministically from the model.
        let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        if keys.len() > 10 {
            let pick = |x: usize| keys[(i * 7919 + x * 104_729) % keys.len()].clone();
            ops.push((pick(1), Some(format!("over-{tag}-{i}").into_bytes())));
            let (a, b) = (pick(2), pick(3));
            if a != pick(1) {
                ops.push((a, None));
            }
            if b != pick(1) && b != pick(2) {
                ops.push((b, None));
            }
        }
        let batch: Vec<WriteOp> = ops
            .iter()
            .map(|(k, v)| match v {
                Some(v) => WriteOp::Put {
                    key: k.clone(),
                    value: v.clone(),
                },
                None => WriteOp::Delete { key: k.clone() },
            })
            .collect();
        client
            .batch(TABLE, batch)
            .await
            .unwrap_or_else(|e| panic!("write {tag}-{i}: {e}"));
        for (k, v) in ops {
            match v {
                Some(v) => model.insert(k, v),
                None => model.remove(&k),
            };
        }
    }
}

async fn contents(client: &Client, table: &str) -> Model {
    client
        .scan(table, b"", None, usize::MAX)
        .await
        .expect("scan")
        .into_iter()
        .collect()
}

/// Waits until every partition's primary ships with no lag.
async fn wait_caught_up(src: &Cluster, id: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let report = src.client.query_duplication(TABLE).await.expect("query");
        if report.caught_up(id, PARTITIONS) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "duplication {id} not caught up: {:#?}",
                report.primaries(id, PARTITIONS)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn diff(a: &Model, b: &Model) -> String {
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
    let differ: Vec<_> = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .take(5)
        .collect();
    format!(
        "{} vs {} keys; only in source {only_a:?}; only in follower {only_b:?}; differ {differ:?}",
        a.len(),
        b.len()
    )
}

async fn assert_same(src: &Cluster, dst: &Cluster, model: &Model) {
    let s = contents(&src.client, TABLE).await;
    assert!(
        s == *model,
        "source differs from its model: {}",
        diff(model, &s)
    );
    let d = contents(&dst.client, FOLLOWER_TABLE).await;
    assert!(s == d, "follower differs: {}", diff(&s, &d));
}

/// Lines of every server log of `c` holding `needle`.
fn log_lines(c: &Cluster, needle: &str) -> usize {
    let mut n = 0;
    for p in &c.procs {
        for e in std::fs::read_dir(&p.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("server.") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                n += text.lines().filter(|l| l.contains(needle)).count();
            }
        }
    }
    n
}

/// The node leading the most partitions of the source.
async fn busiest_leader(c: &Cluster) -> u64 {
    let s = c.stats(c.live()[0]).await;
    let mut n = BTreeMap::<u64, u32>::new();
    for p in s.partitions.iter().filter(|p| p.table == TABLE) {
        if let Some(l) = p.leader {
            *n.entry(l).or_default() += 1;
        }
    }
    n.into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(l, _)| l)
        .expect("some partition has a leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplication_to_a_one_node_cluster_converges_through_kill9_and_stops_when_removed() {
    let t0 = Instant::now();
    let mut src = Cluster::start(3).await;
    let mut dst = Cluster::start_named(1, FOLLOWER_TABLE, &[]).await;
    let mut model = Model::new();

    // Before the duplication: these arrive through the checkpoint copy.
    write_round(&src.client, &mut model, "pre", 40).await;

    // A follower table with another partition count is refused up front.
    let bad = src
        .client
        .add_duplication(TABLE, &[dst.addr(1)], "no-such-table", None, None)
        .await;
    assert!(bad.is_err(), "duplication to a missing table accepted");

    // Added through the operator CLI.
    let (ok, out, err) = admin(
        &src,
        &[
            "--json",
            "add-dup",
            "--table",
            TABLE,
            "--remote-seeds",
            &dst.addr(1),
            "--remote-table",
            FOLLOWER_TABLE,
        ],
    );
    assert!(ok, "add-dup failed: {err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).expect("add-dup --json")["id"]
        .as_u64()
        .expect("an id");
    // Adding it again with its id (after a node missed it) is idempotent.
    let again = src
        .client
        .add_duplication(TABLE, &[dst.addr(1)], FOLLOWER_TABLE, None, Some(id))
        .await
        .expect("add again with the same id");
    assert_eq!(again, id);
    let wrong_remote = src
        .client
        .add_duplication(
            TABLE,
            &[dst.addr(1), dst.addr(1)],
            FOLLOWER_TABLE,
            None,
            Some(id),
        )
        .await;
    assert!(
        wrong_remote.is_err(),
        "the same id to another remote accepted"
    );
    write_round(&src.client, &mut model, "during", 60).await;
    wait_caught_up(&src, id, Duration::from_secs(40)).await;
    assert_same(&src, &dst, &model).await;
    eprintln!("caught up after add: {:?}", t0.elapsed());
    let (ok, out, err) = admin(&src, &["query-dup", "--table", TABLE]);
    assert!(ok, "query-dup failed: {err}");
    assert!(
        out.contains(&format!("duplication {id} ")) && out.contains("caught_up=true"),
        "{out}"
    );

    // Kill -9 a node leading partitions; its partitions' new leaders take the duplication
    // over (from their own records: a checkpoint copy, then the log).
    let victim = busiest_leader(&src).await;
    src.kill9(victim);
    write_round(&src.client, &mut model, "killed", 40).await;
    // The survivors checkpoint and purge their logs (down to what their duplicators still
    // need): the victim catches up by snapshot, so that its own records, were it to lead
    // again, would resume in a purged log and copy a checkpoint instead.
    wait_caught_up(&src, id, Duration::from_secs(60)).await;
    for n in src.live() {
        src.admin(
            n,
            ClientRequest::Checkpoint {
                table: TABLE.into(),
            },
        )
        .await;
    }
    src.restart(victim);
    write_round(&src.client, &mut model, "restarted", 30).await;
    wait_caught_up(&src, id, Duration::from_secs(60)).await;
    assert_same(&src, &dst, &model).await;
    let report = src.client.query_duplication(TABLE).await.expect("query");
    let shippers: Vec<(u32, u64)> = report
        .primaries(id, PARTITIONS)
        .into_iter()
        .filter_map(|(p, s)| s.map(|s| (p, s.node)))
        .collect();
    eprintln!(
        "caught up after kill -9 of node {victim}: {:?}; partition primaries {shippers:?}",
        t0.elapsed()
    );

    // The follower cluster goes away while the source takes writes: the duplicators retry
    // until it is back.
    assert!(dst.terminate(1), "follower exit code after SIGTERM");
    write_round(&src.client, &mut model, "follower-down", 20).await;
    dst.restart(1);
    wait_caught_up(&src, id, Duration::from_secs(60)).await;
    assert_same(&src, &dst, &model).await;
    eprintln!("caught up after a follower restart: {:?}", t0.elapsed());

    // A graceful stop of the node running the most duplicators joins them and exits cleanly;
    // the other nodes take over.
    let busiest = busiest_leader(&src).await;
    assert!(
        src.terminate(busiest),
        "node {busiest} exit code after SIGTERM"
    );
    write_round(&src.client, &mut model, "stopped", 20).await;
    src.restart(busiest);
    wait_caught_up(&src, id, Duration::from_secs(60)).await;
    assert_same(&src, &dst, &model).await;
    eprintln!(
        "caught up after a SIGTERM of node {busiest}: {:?}",
        t0.elapsed()
    );

    // Removal: no replica keeps the record, and later writes stay on the source.
    let removed = src
        .client
        .remove_duplication(TABLE, id)
        .await
        .expect("remove duplication");
    assert_eq!(removed, 3 * PARTITIONS, "every replica held the record");
    let report = src.client.query_duplication(TABLE).await.expect("query");
    assert!(report.replicas.is_empty(), "{report:?}");
    let follower_before = contents(&dst.client, FOLLOWER_TABLE).await;
    write_round(&src.client, &mut model, "removed", 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let follower_after = contents(&dst.client, FOLLOWER_TABLE).await;
    assert!(
        follower_before == follower_after,
        "writes shipped after removal: {}",
        diff(&follower_before, &follower_after)
    );
    // The follower fences off a deposed source leader: a duplication write from the same
    // source in a lower term than one already seen is refused.
    let key = dst.key_in(0, "fence");
    let fenced = |term: u64| ClientRequest::DuplicationWrite {
        table: FOLLOWER_TABLE.into(),
        partition: 0,
        clear: false,
        ops: vec![WriteOp::Put {
            key: key.clone(),
            value: term.to_string().into_bytes(),
        }],
        source: "fence-test".into(),
        source_term: term,
    };
    for (term, accepted) in [(5, true), (4, false), (5, true), (6, true), (5, false)] {
        let r = dst
            .client
            .call(&dst.addr(1), &fenced(term))
            .await
            .expect("duplication write");
        match r {
            ClientResponse::Written { .. } => assert!(accepted, "term {term} accepted"),
            ClientResponse::Error(ServerError::InvalidArgument(m)) if m.contains("deposed") => {
                assert!(!accepted, "term {term} refused")
            }
            other => panic!("term {term}: {other:?}"),
        }
    }

    // Removing it again fails, with a clear message and a non-zero exit.
    let (ok, _, err) = admin(
        &src,
        &["remove-dup", "--table", TABLE, "--id", &id.to_string()],
    );
    assert!(!ok && err.contains("no duplication"), "{err}");
    eprintln!(
        "done: {:?}; takeovers: {}, of which found their log purged and copied a checkpoint: {}",
        t0.elapsed(),
        log_lines(&src, "leading, duplicators started"),
        log_lines(&src, "copying a checkpoint")
    );
}
