//! A network partition made by the transport's fault hook: the node leading the most
//! partitions is cut off from the two others, so stale leaders are on the minority side. The minority side refuses writes and linearizable reads for every partition (nothing it
//! was sent becomes visible); the majority keeps serving; after healing every replica converges
//! to the same data.

mod common;

use common::*;
use siltdb_server::proto::{ClientRequest, ClientResponse};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_refuses_writes_and_healing_converges() {
    let c = Cluster::start(3).await;
    let mut written = Vec::new();
    for i in 0..80 {
        let k = format!("before-{i}").into_bytes();
        c.client.put(TABLE, &k, b"1").await.unwrap();
        written.push(k);
    }
    for p in 0..PARTITIONS {
        let k = c.key_in(p, "before");
        c.client.put(TABLE, &k, b"1").await.unwrap();
        written.push(k);
    }
    // Every partition has a leader now; isolate the node leading the most (at least 3 of 8).
    let s = c.stats(1).await;
    let mut led = std::collections::BTreeMap::<u64, u32>::new();
    for p in &s.partitions {
        *led.entry(p.leader.expect("a leader")).or_default() += 1;
    }
    let (minority, n) = led.into_iter().max_by_key(|(_, n)| *n).unwrap();
    assert!(n >= 3, "node {minority} leads {n} partitions");
    let majority: Vec<u64> = (1..=3).filter(|&id| id != minority).collect();
    c.admin(
        minority,
        ClientRequest::Partition {
            peers: majority.clone(),
        },
    )
    .await;

    // Every partition, asked directly on the minority node: writes and reads are refused.
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let client = std::sync::Arc::clone(&c.client);
        let addr = c.addr(minority);
        let key = c.key_in(p, "minority");
        tasks.push(tokio::spawn(async move {
            let write = ClientRequest::Write {
                table: TABLE.into(),
                partition: p,
                ops: vec![siltdb_replica::WriteOp::Put {
                    key: key.clone(),
                    value: b"minority".to_vec(),
                }],
            };
            let w = client
                .call_with_timeout(&addr, &write, Duration::from_secs(20))
                .await;
            let read = ClientRequest::Get {
                table: TABLE.into(),
                partition: p,
                key: key.clone(),
            };
            let r = client
                .call_with_timeout(&addr, &read, Duration::from_secs(20))
                .await;
            (p, key, w, r)
        }));
    }
    let mut minority_keys = Vec::new();
    for t in tasks {
        let (p, key, w, r) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("minority requests answer")
            .unwrap();
        assert!(
            matches!(w, Ok(ClientResponse::Error(_))),
            "p{p}: the minority answered a write with {w:?}"
        );
        assert!(
            matches!(r, Ok(ClientResponse::Error(_))),
            "p{p}: the minority answered a linearizable read with {r:?}"
        );
        minority_keys.push(key);
    }

    // The majority serves every partition.
    for i in 0..80 {
        let k = format!("during-{i}").into_bytes();
        c.client.put(TABLE, &k, b"2").await.unwrap();
        written.push(k);
    }
    let s = c.stats(minority).await;
    assert!(s.transport.rpcs_dropped > 0, "{:?}", s.transport);
    let pairs: Vec<(u64, u64)> = majority
        .iter()
        .map(|&m| (m.min(minority), m.max(minority)))
        .collect();
    assert_eq!(s.partitioned, pairs);

    c.admin(minority, ClientRequest::Heal).await;
    c.wait_converged(Duration::from_secs(120)).await;
    for k in &written {
        assert!(
            c.client.get(TABLE, k).await.unwrap().is_some(),
            "{k:?} lost"
        );
    }
    for k in &minority_keys {
        assert_eq!(c.client.get(TABLE, k).await.unwrap(), None, "{k:?} leaked");
    }
}
