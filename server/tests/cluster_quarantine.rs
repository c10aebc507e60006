//! A replica that no longer opens (its directory is corrupt) does not take its server down: the
//! server starts, quarantines that replica (reported in stats, requests to it answered with a
//! clear error the client routes around) and serves every other partition; `move-replica` then
//! replaces the broken replica on another node, and the quarantined directory is removed.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_quarantined_and_replaced() {
    let mut c = Cluster::start(3).await;
    let keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("q{i:04}").into_bytes())
        .collect();
    for k in &keys {
        c.client.put(TABLE, k, k).await.unwrap();
    }
    c.wait_converged(Duration::from_secs(60)).await;

    // Node 3 stops; partition 2's replica on it is damaged beyond opening.
    assert!(c.terminate(3));
    let broken = c.proc(3).dir.join("data/replicas/1.2");
    let current = broken.join("DB_CURRENT");
    assert!(current.exists(), "{}", current.display());
    std::fs::write(&current, b"not a generation\n").unwrap();
    c.restart(3);

    let s = c.stats(3).await;
    assert_eq!(s.quarantined.len(), 1, "{s:?}");
    assert_eq!(
        (s.quarantined[0].table.as_str(), s.quarantined[0].partition),
        (TABLE, 2)
    );
    assert!(s.quarantined[0].error.contains("DB_CURRENT"), "{s:?}");
    assert_eq!(s.partitions.len(), PARTITIONS as usize - 1);
    // Node 3 serves its other replicas; partition 2 still has its two healthy replicas.
    let d = c.client.digest(&c.addr(3), TABLE, 0).await.unwrap();
    assert!(d.keys > 0);
    let err = c.client.digest(&c.addr(3), TABLE, 2).await.unwrap_err();
    assert!(err.to_string().contains("quarantined"), "{err}");
    for k in &keys {
        assert_eq!(c.client.get(TABLE, k).await.unwrap().as_ref(), Some(k));
    }

    // The broken replica is replaced on a new node; node 3 removes what is left of it.
    let n4 = c.start_extra(4);
    c.client
        .move_replica(TABLE, 2, 3, &n4, Duration::from_secs(60))
        .await
        .expect("replace the quarantined replica");
    let s = c.stats(3).await;
    assert!(s.quarantined.is_empty(), "{s:?}");
    assert!(!broken.exists());
    // move_replica returns once node 4 is a voter; its state machine may still be catching up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s4 = c.stats(4).await;
        if s4
            .partitions
            .iter()
            .any(|p| p.partition == 2 && p.applied.is_some())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 4 never applied partition 2: {s4:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let layout = c.client.newest_layout(TABLE).await.unwrap();
    let mut seen = None;
    for n in layout.replicas(2) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let d = loop {
            let d = c.client.digest(&n.addr, TABLE, 2).await.unwrap();
            if d.applied.is_some() && seen.is_none_or(|s: (u64, u64)| s == (d.keys, d.hash)) {
                break d;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {} not caught up",
                n.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        seen = Some((d.keys, d.hash));
    }
    for k in &keys {
        assert_eq!(c.client.get(TABLE, k).await.unwrap().as_ref(), Some(k));
    }
}
