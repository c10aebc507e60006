//! A cancel waiting for a download that ignores cancellation joins it with the partition's
//! control lock released: polls (and progress queries) keep answering meanwhile, never resume a
//! download that is being stopped, and the cancel still ends in CANCELED with no file left.

mod bulk_load_common;

use bulk_load_common::*;
use siltdb_replica::bulk_load::provider::{Fault, TestProvider};
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_replica::Ballot;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
/// How long the stuck fetch holds the cancel; polls must answer well within it.
const HOLD: Duration = Duration::from_millis(1500);
const MAX_POLL: Duration = Duration::from_millis(300);

#[test]
fn poll_proceeds_while_a_cancel_waits_for_a_stuck_download() {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(1024));
    let metadata = stage_partition(&provider, root.path(), 0, 2, 200);
    let downloads = node(2);
    let replica = Replica::open(
        root.path(),
        0,
        small_options(),
        provider.clone(),
        &downloads,
    );
    let partition = Arc::clone(&replica.partition);
    // The fetch holds and ignores cancellation until released.
    let (fault, gate) = Fault::block(0, false);
    provider.set_fault(0, &metadata.files[0].name, fault);
    partition.start(Ballot(1)).unwrap();
    assert!(gate.wait_reached(WAIT), "download never blocked");

    let canceller = {
        let partition = Arc::clone(&partition);
        std::thread::spawn(move || partition.cancel())
    };
    let releaser = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(HOLD);
            gate.release();
        })
    };
    // Let the cancel reach its join.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        let started = Instant::now();
        let progress = partition.poll().unwrap();
        let took = started.elapsed();
        assert!(
            took < MAX_POLL,
            "poll waited {took:?} behind the cancel's join: {progress:?}"
        );
        // The stopping download is not replaced by a resumed one.
        assert!(
            downloads.active() <= 1,
            "a download resumed during the stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !canceller.is_finished(),
        "the cancel should still be waiting for the stuck fetch"
    );
    canceller.join().unwrap().unwrap();
    releaser.join().unwrap();
    assert_eq!(partition.status(), BulkLoadStatus::Canceled);
    assert!(
        !partition.bulk_load_dir().exists(),
        "files left after cancel"
    );
    // The partition takes control requests again: a new load starts and downloads.
    provider.clear_fault(0, &metadata.files[0].name);
    partition.start(Ballot(1)).unwrap();
    poll_until(&partition, BulkLoadStatus::Downloaded, WAIT);
}
