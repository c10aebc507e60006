//! Seed S3: bulk load under write pressure must never hang. Ingestion bypasses user write
//! throttling (it is a control request), its "ingesting" flag is set only around the engine
//! call and cleared on every path, and the engine's "busy" is retried with backoff under a
//! deadline. Here: a saturating writer against an engine held at its L0 stop trigger, with
//! user writes throttled hard (delay mode, then reject mode) by a test-local throttle standing
//! in for the replica's.

mod bulk_load_common;

use bulk_load_common::*;
use siltdb_replica::bulk_load::provider::TestProvider;
use siltdb_replica::bulk_load::target::TargetError;
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_replica::siltdb::Options;
use siltdb_replica::Ballot;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILES: usize = 4;
const ENTRIES: usize = 500;
/// The load must finish (or fail with a reason) within this.
const LOAD_BOUND: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Throttle {
    /// Every user write waits 2 ms before it is admitted.
    Delay,
    /// Every other user write is rejected as busy.
    Reject,
}

fn stalled_options() -> Options {
    Options {
        create_if_missing: true,
        l0_stop_trigger: 4,
        l0_slowdown_trigger: 3,
        l0_compaction_trigger: 2,
        memtable_size_bytes: 4096,
        max_write_stall_ms: 200,
        ..Options::default()
    }
}

fn run(throttle: Throttle) {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(8192));
    stage_partition(&provider, root.path(), 0, FILES, ENTRIES);
    let downloads = node(5);
    let replica = Replica::open(root.path(), 0, stalled_options(), provider, &downloads);

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let writer = {
        let (target, stop) = (replica.target.clone(), stop.clone());
        let (accepted, refused) = (accepted.clone(), refused.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                // The test-local throttle applies to user writes only.
                match throttle {
                    Throttle::Delay => std::thread::sleep(Duration::from_millis(2)),
                    Throttle::Reject if n.is_multiple_of(2) => {
                        refused.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    Throttle::Reject => {}
                }
                let key = format!("user-{n:08}");
                match target.user_put(key.as_bytes(), &[b'x'; 200]) {
                    Ok(()) => accepted.fetch_add(1, Ordering::AcqRel),
                    Err(TargetError::Retryable(_)) => refused.fetch_add(1, Ordering::AcqRel),
                    Err(e) => panic!("user write failed: {e}"),
                };
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let partition = &replica.partition;
    partition.start(Ballot(1)).unwrap();
    poll_until(
        partition,
        BulkLoadStatus::Downloaded,
        Duration::from_secs(30),
    );
    let result = partition.ingest();
    let took = started.elapsed();
    assert!(took < LOAD_BOUND, "{throttle:?}: the load took {took:?}");
    match &result {
        Ok(()) => assert_eq!(partition.status(), BulkLoadStatus::Succeed),
        Err(e) => {
            // Allowed only as a clear failure with the reason, never a hang.
            let progress = partition.progress();
            assert_eq!(progress.status, BulkLoadStatus::Failed, "{e}");
            assert!(progress.error.unwrap().contains("busy"), "{e}");
        }
    }
    // The flag is down whatever happened, and user writes resume.
    assert!(!replica.gate.is_ingesting());
    assert_eq!(downloads.metrics().snapshot().ingesting, 0);
    let before = accepted.load(Ordering::Acquire);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.load(Ordering::Acquire) < before + 20 {
        assert!(
            Instant::now() < deadline,
            "{throttle:?}: user writes did not resume"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    if result.is_ok() {
        assert_loaded(&replica.db, 0, FILES, ENTRIES);
        assert!(replica.target.last_checkpoint().is_some_and(|c| c.exists()));
    }
    let metrics = downloads.metrics().snapshot();
    eprintln!(
        "{throttle:?}: load {took:?}, result {result:?}, user writes accepted {}, refused {} \
         (by ingestion {}), ingest retries {}",
        accepted.load(Ordering::Acquire),
        refused.load(Ordering::Acquire),
        metrics.user_writes_refused,
        metrics.ingest_retries
    );
}

#[test]
fn s3_bulk_load_under_write_throttling() {
    run(Throttle::Delay);
    run(Throttle::Reject);
}

#[test]
fn s3_busy_engine_is_retried_until_the_deadline_then_fails_with_a_reason() {
    // The engine is always busy: an ingestion deadline far below what it needs.
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(8192));
    stage_partition(&provider, root.path(), 0, 2, 100);
    let downloads = node(5);
    let replica_dir = root.path().join("replica-0");
    std::fs::create_dir_all(&replica_dir).unwrap();
    let db = Arc::new(
        siltdb_replica::siltdb::Db::open(replica_dir.join("db"), small_options()).unwrap(),
    );
    let busy = Arc::new(AlwaysBusy);
    let gate = siltdb_replica::bulk_load::target::IngestionGate::new(downloads.metrics().clone());
    let mut config = siltdb_replica::bulk_load::PartitionConfig::new(
        siltdb_replica::Gpid::new(1, 0),
        &replica_dir,
    );
    config.ingest_timeout = Duration::from_millis(300);
    let partition = siltdb_replica::bulk_load::PartitionBulkLoad::open(
        config,
        provider,
        busy,
        gate.clone(),
        downloads.clone(),
    )
    .unwrap();
    partition.start(Ballot(1)).unwrap();
    poll_until(
        &partition,
        BulkLoadStatus::Downloaded,
        Duration::from_secs(30),
    );
    let started = Instant::now();
    let err = partition.ingest().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("still busy"), "{err}");
    assert_eq!(partition.status(), BulkLoadStatus::Failed);
    assert!(!gate.is_ingesting());
    assert!(downloads.metrics().snapshot().ingest_retries >= 2);
    assert!(!partition.bulk_load_dir().exists());
    db.put(b"k", b"v").unwrap();
}

struct AlwaysBusy;

impl siltdb_replica::bulk_load::target::IngestTarget for AlwaysBusy {
    fn ballot(&self) -> Ballot {
        Ballot(1)
    }
    fn ingest(
        &self,
        _request: &siltdb_replica::bulk_load::target::IngestRequest<'_>,
    ) -> Result<(), TargetError> {
        Err(TargetError::Retryable(
            "busy: write leadership not available".into(),
        ))
    }
    fn checkpoint(&self) -> Result<(), TargetError> {
        Ok(())
    }
    fn is_serving_writes(&self) -> bool {
        true
    }
}
