//! Three `silt-server` processes, a table of 8 partitions × 3 replicas: puts, deletes, batches,
//! gets and scans through the client against a model; every partition led and converged; the
//! replicas' checkpoint task (`--checkpoint-interval-ms`) checkpoints and purges the leaders' logs; SIGTERM stops every node cleanly
//! and a restart on the same addresses serves the same data.

mod common;

use common::*;
use siltdb_replica::WriteOp;
use std::collections::BTreeMap;
use std::time::Duration;

fn kv(i: u32) -> (Vec<u8>, Vec<u8>) {
    (
        format!("key{i:05}").into_bytes(),
        format!("value-{i}-{}", "v".repeat((i % 13) as usize)).into_bytes(),
    )
}

async fn check_model(c: &Cluster, model: &BTreeMap<Vec<u8>, Vec<u8>>, probe: u32) {
    for i in 0..probe {
        let (k, _) = kv(i);
        let got = c.client.get(TABLE, &k).await.unwrap();
        assert_eq!(got.as_ref(), model.get(&k), "key {i}");
    }
    let all = c.client.scan(TABLE, b"", None, 100_000).await.unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all, want, "full scan");
    // Small pages: every partition is paged through and the pages merged in key order.
    let mut o = siltdb_server::ClientOptions::new(vec![c.addr(1)]);
    o.scan_page_rows = 7;
    let paged = siltdb_server::Client::new(o);
    assert_eq!(
        paged.scan(TABLE, b"", None, usize::MAX).await.unwrap(),
        want,
        "paged scan"
    );
    let mut stream = paged.scan_stream(TABLE, b"key00050", None).await.unwrap();
    let mut streamed = Vec::new();
    while let Some(row) = stream.next().await.unwrap() {
        streamed.push(row);
    }
    let tail: Vec<(Vec<u8>, Vec<u8>)> = model
        .range(b"key00050".to_vec()..)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(streamed, tail, "streamed scan");
    let some = c
        .client
        .scan(TABLE, b"key00100", Some(b"key00200"), 30)
        .await
        .unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model
        .range(b"key00100".to_vec()..b"key00200".to_vec())
        .take(30)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(some, want, "bounded scan");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_eight_partitions_serve_the_client_and_restart_cleanly() {
    let mut c = Cluster::start_with(
        3,
        &[
            "--checkpoint-interval-ms",
            "300",
            "--checkpoint-decrees-min",
            "10",
        ],
    )
    .await;
    let mut model = BTreeMap::new();
    for i in 0..300 {
        let (k, v) = kv(i);
        c.client.put(TABLE, &k, &v).await.unwrap();
        model.insert(k, v);
    }
    for i in (0..300).step_by(7) {
        let (k, _) = kv(i);
        c.client.delete(TABLE, &k).await.unwrap();
        model.remove(&k);
    }
    // One batch over every partition: puts of new keys and deletes of old ones.
    let mut ops = Vec::new();
    for i in 300..360 {
        let (k, v) = kv(i);
        model.insert(k.clone(), v.clone());
        ops.push(WriteOp::Put { key: k, value: v });
    }
    for i in (1..300).step_by(11) {
        let (k, _) = kv(i);
        model.remove(&k);
        ops.push(WriteOp::Delete { key: k });
    }
    c.client.batch(TABLE, ops).await.unwrap();
    check_model(&c, &model, 360).await;

    // Every node hosts the 8 partitions; each partition has one leader all nodes agree on.
    let mut leaders = vec![None; PARTITIONS as usize];
    for id in c.live() {
        let s = c.stats(id).await;
        assert_eq!(s.partitions.len(), PARTITIONS as usize, "node {id}");
        assert!(s.requests.writes + s.requests.gets > 0 || id != 0);
        for p in &s.partitions {
            let l = p.leader.expect("a leader");
            let slot = &mut leaders[p.partition as usize];
            assert!(
                slot.is_none() || *slot == Some(l),
                "p{} leaders differ",
                p.partition
            );
            *slot = Some(l);
        }
    }
    c.wait_converged(Duration::from_secs(60)).await;

    // The replicas' checkpoint task: every leader replica checkpointed and purged its log.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut pending = Vec::new();
        for id in c.live() {
            for p in c.stats(id).await.partitions {
                let checkpointed = p.snapshot.is_some() && p.purged == p.snapshot;
                if p.leader == Some(id) && !checkpointed {
                    pending.push((id, p.partition, p.snapshot, p.purged));
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leaders without a checkpoint: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Graceful stop of every node, then a restart on the same addresses.
    for id in c.live() {
        assert!(c.terminate(id), "node {id} exit code after SIGTERM");
    }
    for id in 1..=3 {
        c.restart(id);
    }
    check_model(&c, &model, 360).await;
    c.wait_converged(Duration::from_secs(60)).await;
    for id in c.live() {
        assert!(c.terminate(id), "node {id} exit code after SIGTERM");
    }
}
