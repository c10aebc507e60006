//! A 3-replica group in one process: failover without losing committed writes, the old primary
//! rejoining and catching up, and learning from a checkpoint when the log was purged.

mod common;

use common::*;
use siltdb_replica::network::Router;
use siltdb_replica::replica::Replica;
use siltdb_replica::Decree;
use std::path::Path;
use std::sync::Arc;

async fn start_group(dir: &Path, router: &Arc<Router>) -> Vec<Option<Replica>> {
    let mut rs = Vec::new();
    for id in 1..=3 {
        rs.push(Some(open(options(dir, id, None), router).await));
    }
    rs[0]
        .as_ref()
        .unwrap()
        .initialize(&[1, 2, 3])
        .await
        .unwrap();
    rs
}

fn live(rs: &[Option<Replica>]) -> Vec<&Replica> {
    rs.iter().flatten().collect()
}

async fn assert_same_contents(a: &Replica, b: &Replica, keys: u64, round_of: impl Fn(u64) -> u64) {
    for i in 0..keys {
        let want = Some(value(i, round_of(i)));
        assert_eq!(a.get(&key(i)).unwrap(), want, "replica {} key {i}", a.id());
        assert_eq!(b.get(&key(i)).unwrap(), want, "replica {} key {i}", b.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_no_committed_write_and_old_leader_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let mut rs = start_group(dir.path(), &router).await;
    let l = wait_leader(&live(&rs), None).await;
    let leader = rs[l].as_ref().unwrap();
    for i in 0..40 {
        write(leader, put(i, 0)).await;
    }
    // Stop the primary.
    let old_id = leader.id();
    rs[l].take().unwrap().close().await.unwrap();
    let others = live(&rs);
    let n = wait_leader(&others, Some(old_id)).await;
    let new_leader = others[n];
    assert_ne!(new_leader.id(), old_id);
    // Every committed write is on the new primary; writes continue.
    for i in 0..40 {
        assert_eq!(
            new_leader.read(&key(i)).await.unwrap(),
            Some(value(i, 0)),
            "key {i}"
        );
    }
    let mut last = 0;
    for i in 20..60 {
        last = write(new_leader, put(i, 1)).await;
    }
    // The old primary rejoins and catches up.
    let back = open(options(dir.path(), old_id, None), &router).await;
    back.wait_applied(Decree(last)).await.unwrap();
    let round_of = |i: u64| u64::from(i >= 20);
    assert_same_contents(new_leader, &back, 60, round_of).await;
    for r in rs.into_iter().flatten() {
        r.close().await.unwrap();
    }
    back.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_learns_from_a_checkpoint_while_writes_continue() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let mut rs = start_group(dir.path(), &router).await;
    let l = wait_leader(&live(&rs), None).await;
    for i in 0..20 {
        write(rs[l].as_ref().unwrap(), put(i, 0)).await;
    }
    // Stop a secondary, write on, checkpoint and purge the primary's log past it.
    let f = (l + 1) % 3;
    let f_id = rs[f].as_ref().unwrap().id();
    rs[f].take().unwrap().close().await.unwrap();
    let leader = rs[l].as_ref().unwrap();
    for i in 20..80 {
        write(leader, put(i, 0)).await;
    }
    let ck = leader.checkpoint().await.unwrap().expect("a checkpoint");
    leader.purge_log().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while leader.plog().stats().purged.map(|p| p.index) != Some(ck.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "leader log not purged to {ck:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let on_disk = leader.plog().stats().purged_on_disk.map(|p| p.index);
    assert!(
        on_disk <= leader.state_machine().durable_decree(),
        "purge mark past durable"
    );
    // The secondary comes back: its next entry is gone from the leader's log, so it learns the
    // checkpoint, then the tail, while writes continue.
    let back = open(options(dir.path(), f_id, None), &router).await;
    let mut last = 0;
    for i in 80..120 {
        last = write(leader, put(i, 0)).await;
    }
    back.wait_applied(Decree(last)).await.unwrap();
    assert!(
        back.state_machine().checkpoints().decrees().contains(&ck.0),
        "the learner installed checkpoint {ck:?}: {:?}",
        back.state_machine().checkpoints().decrees()
    );
    assert_same_contents(leader, &back, 120, |_| 0).await;
    back.close().await.unwrap();
    for r in rs.into_iter().flatten() {
        r.close().await.unwrap();
    }
}
