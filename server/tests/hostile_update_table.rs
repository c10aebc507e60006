//! A layout alone never deletes data (issue 25): an `UpdateTable` with a higher epoch that
//! leaves a node out of a partition does not make that node delete its replica while the
//! partition's Raft group still lists it as a voter. The replica keeps voting and serving,
//! also after that node restarts with the hostile layout stored.
//! (A real move, which changes the group first, still removes it: `cluster_membership`,
//! `cluster_quarantine` and `cluster_failure_cure`.)

mod common;

use common::*;
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::NodeInfo;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_update_table_deletes_nothing_while_the_node_is_a_voter() {
    let mut c = Cluster::start(3).await;
    for i in 0..100u32 {
        let k = format!("h{i:04}");
        c.client
            .put(TABLE, k.as_bytes(), k.as_bytes())
            .await
            .unwrap();
    }
    c.wait_converged(Duration::from_secs(60)).await;
    let layout = c.client.newest_layout(TABLE).await.unwrap();
    // Partition 0 "moves" from node 3 to a node that does not exist; only node 3 is told.
    let ghost = NodeInfo {
        id: 9,
        addr: "127.0.0.1:1".into(),
    };
    let hostile = layout.with_replica_moved(0, 3, &ghost).unwrap();
    match c
        .client
        .call(&c.addr(3), &ClientRequest::UpdateTable(hostile.clone()))
        .await
        .unwrap()
    {
        ClientResponse::Ok => {}
        other => panic!("{other:?}"),
    }
    // Sent again (a retry): still nothing deleted.
    let _ = c
        .client
        .call(&c.addr(3), &ClientRequest::UpdateTable(hostile))
        .await
        .unwrap();
    let dir = c.proc(3).dir.join("data/replicas/1.0");
    assert!(dir.exists(), "the voter's replica directory was deleted");
    // Node 3 still takes part: new writes reach its replica.
    let before_restart = still_voting(&c, 100..200, "before a restart").await;

    // Restarted with the hostile layout stored, node 3 opens the replica it kept and goes on
    // voting and applying.
    assert!(c.terminate(3), "node 3 did not stop cleanly");
    c.restart(3);
    let after = still_voting(&c, 200..300, "after a restart").await;
    assert!(after > before_restart, "no new write reached partition 0");
}

/// Node 3 hosts partition 0, and after the writes of keys `range` its replica equals node 1's:
/// the number of keys it holds.
async fn still_voting(c: &Cluster, range: std::ops::Range<u32>, when: &str) -> u64 {
    let s = c.stats(3).await;
    assert!(
        s.partitions
            .iter()
            .any(|p| p.table == TABLE && p.partition == 0),
        "{when}: node 3 does not host partition 0: {s:?}"
    );
    for i in range {
        let k = format!("h{i:04}");
        c.client
            .put(TABLE, k.as_bytes(), k.as_bytes())
            .await
            .unwrap();
    }
    c.wait_converged(Duration::from_secs(60)).await;
    let d = c.client.digest(&c.addr(3), TABLE, 0).await.unwrap();
    let d1 = c.client.digest(&c.addr(1), TABLE, 0).await.unwrap();
    assert_eq!((d.keys, d.hash), (d1.keys, d1.hash), "{when}");
    d.keys
}
