//! Restarts in the middle of a bulk load, and pause/restart through the controller. Each case
//! ends in a clean status (resumed to SUCCEED, or FAILED with a reason), never in a half state:
//! - the driver restarting while DOWNLOADING resumes the download and completes;
//! - the driver restarting while INGESTING (after the replicated ingest write committed) rolls
//!   back, re-verifies, ingests again as a no-op (same load id), and a delete written in
//!   between is not undone;
//! - a replica crashing inside the ingest's apply (engine ingestion committed, its decree not
//!   yet durable) replays the entry from its own staging copy after restart — with the shared
//!   downloaded files gone — without duplicating or resurrecting anything;
//! - a secondary cut off from the group while the load ingests: the primary's ingestion waits
//!   for it (attempts time out and are proposed again, applied as no-ops where already
//!   ingested, or the ballot moves and the controller rolls back), the downloaded files stay
//!   until it caught up, and every replica ends with exactly the loaded keys;
//! - the controller pauses a table mid-download and restarts it to completion.

mod bulk_load_common;

use bulk_load_common::group::*;
use bulk_load_common::Replica as DirectReplica;
use bulk_load_common::*;
use siltdb_replica::bulk_load::metadata::BulkLoadMetadata;
use siltdb_replica::bulk_load::provider::{Fault, TestProvider};
use siltdb_replica::bulk_load::state::PartitionState;
use siltdb_replica::bulk_load::target::{IngestRequest, IngestTarget};
use siltdb_replica::bulk_load::{BulkLoadController, BulkLoadStatus, ControllerConfig};
use siltdb_replica::mutation::{ControlOp, IngestCommand, IngestFile};
use siltdb_replica::network::Router;
use siltdb_replica::replica::Replica;
use siltdb_replica::siltdb::fs::{FaultFs, FaultKind, FileSystem, IoOp};
use siltdb_replica::siltdb::{CancelToken, Db, ReadOptions};
use siltdb_replica::{Decree, Gpid, Mutation};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILES: usize = 4;
const ENTRIES: usize = 300;
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Keys of partition `p` in `db`, in the bulk-load key range.
fn bulk_keys(db: &Db, p: u32) -> usize {
    let opts = ReadOptions {
        lower_bound: Some(format!("bulk-p{p}-").into_bytes()),
        upper_bound: Some(format!("bulk-p{p}.").into_bytes()),
        ..ReadOptions::default()
    };
    let keys: Result<Vec<_>, _> = db.iter(&opts).collect();
    keys.unwrap().len()
}

#[test]
fn driver_restart_while_downloading_resumes_and_completes() {
    let rt = runtime();
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(4096));
    stage_partition(&provider, root.path(), 0, FILES, ENTRIES);
    let (fault, gate) = Fault::block(5000, true);
    provider.set_fault(0, "000003.sst", fault);
    let downloads = node(5);
    let group = Group::open(&rt, root.path(), 0, 1, |_| {}, provider.clone(), &downloads);
    let ballot = group.primary(&rt).ballot();
    group.driver.start(ballot).unwrap();
    assert!(
        gate.wait_reached(MAX_WAIT),
        "the download never reached file 3"
    );

    // The driver "process" restarts mid-download.
    let group = group.restart_driver(provider.clone(), &downloads);
    let progress = group.driver.progress();
    assert_eq!(progress.status, BulkLoadStatus::Downloading);
    assert_eq!(
        downloads.metrics().snapshot().downloading,
        0,
        "old session joined"
    );
    gate.release();
    poll_until(&group.driver, BulkLoadStatus::Downloaded, MAX_WAIT);
    group.driver.ingest().unwrap();
    assert_eq!(group.driver.status(), BulkLoadStatus::Succeed);
    let primary = group.primary(&rt);
    assert_loaded(&primary.state_machine().db(), 0, FILES, ENTRIES);
    assert!(!group.driver.bulk_load_dir().exists());
    drop(primary);
    group.close(&rt);
}

#[test]
fn driver_restart_while_ingesting_does_not_ingest_twice() {
    let rt = runtime();
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(8192));
    stage_partition(&provider, root.path(), 0, FILES, ENTRIES);
    let downloads = node(5);
    let group = Group::open(&rt, root.path(), 0, 3, |_| {}, provider.clone(), &downloads);
    let ballot = group.primary(&rt).ballot();
    group.driver.start(ballot).unwrap();
    poll_until(&group.driver, BulkLoadStatus::Downloaded, MAX_WAIT);

    // The replicated ingest write commits and applies on every replica; the driver "crashes"
    // after persisting INGESTING and before recording SUCCEED.
    let state = PartitionState::load(&group.config.replica_dir).unwrap();
    let metadata: BulkLoadMetadata = state.metadata.clone().unwrap();
    let dir = group.driver.bulk_load_dir();
    let files: Vec<_> = metadata.files.iter().map(|f| dir.join(&f.name)).collect();
    let cancel = CancelToken::new();
    let request = IngestRequest {
        ballot,
        load_id: state.load_id,
        dir: &dir,
        entries: &metadata.files,
        files: &files,
        deadline: Instant::now() + MAX_WAIT,
        cancel: &cancel,
    };
    group.target.ingest(&request).unwrap();
    let mut crashed = state.clone();
    crashed.status = BulkLoadStatus::Ingesting;
    crashed.save(&group.config.replica_dir).unwrap();
    let group = group.restart_driver(provider.clone(), &downloads);
    assert_eq!(group.driver.status(), BulkLoadStatus::Downloading);

    // Meanwhile the user deletes a loaded key (the gate is open: nothing is ingesting).
    let deleted = key(0, 1, 7);
    let mut m = Mutation::new();
    m.delete(deleted.clone());
    let primary = group.primary(&rt);
    let decree = user_write(&rt, &primary, m);

    poll_until(&group.driver, BulkLoadStatus::Downloaded, MAX_WAIT);
    group.driver.ingest().unwrap();
    assert_eq!(group.driver.status(), BulkLoadStatus::Succeed);
    for r in &group.replicas {
        rt.block_on(r.wait_applied(Decree(decree))).unwrap();
        assert_eq!(
            r.get(&deleted).unwrap(),
            None,
            "replica {} resurrected",
            r.id()
        );
        let db = r.state_machine().db();
        assert_eq!(bulk_keys(&db, 0), FILES * ENTRIES - 1, "replica {}", r.id());
        assert!(staging_dirs(r).is_empty());
    }
    drop(primary);
    group.close(&rt);
}

/// The ingest command for partition 0's files staged under `source`.
fn ingest_command(source: &Path, metadata: &BulkLoadMetadata, load_id: u64) -> Mutation {
    let files = metadata
        .files
        .iter()
        .map(|f| IngestFile {
            name: f.name.clone(),
            size: f.size,
            crc32c: f.crc32c,
        })
        .collect();
    Mutation::control(
        None,
        ControlOp::Ingest(IngestCommand {
            load_id,
            source_dir: source.to_str().unwrap().to_string(),
            files,
        }),
    )
}

/// Writes partition 0's SSTs and metadata into `dir` (a stand-in for the driver's downloads).
fn write_source(dir: &Path, scratch: &Path) -> BulkLoadMetadata {
    std::fs::create_dir_all(dir).unwrap();
    let mut entries = Vec::new();
    for f in 0..FILES {
        let (entry, bytes) = build_sst(scratch, 0, f, ENTRIES);
        std::fs::write(dir.join(&entry.name), bytes).unwrap();
        entries.push(entry);
    }
    BulkLoadMetadata::new(entries)
}

#[test]
fn crash_inside_ingest_apply_replays_from_the_staging_copy_without_resurrecting() {
    let rt = runtime();
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("downloads");
    let metadata = write_source(&source, root.path());
    let fs = FaultFs::new();
    let gpid = Gpid::new(1, 0);
    let router = Router::new(gpid);
    let gate = siltdb_replica::bulk_load::target::IngestionGate::new(node(1).metrics().clone());
    let opts = || {
        let dynfs: Arc<dyn FileSystem> = Arc::new(fs.clone());
        replica_options(root.path(), gpid, 1, &gate, Some(dynfs))
    };
    let r = rt.block_on(Replica::open(opts(), router.clone())).unwrap();
    rt.block_on(r.initialize(&[1])).unwrap();
    let r = Arc::new(r);
    wait_primary(&rt, std::slice::from_ref(&r));
    let mut m = Mutation::new();
    m.put(b"user-before".to_vec(), b"1".to_vec());
    user_write(&rt, &r, m);
    let overwritten = key(0, 2, 3);
    r.state_machine().flush().unwrap();

    // Fail the first file creation after the ingestion's own copies (FILES into staging, FILES
    // into the engine): the flush that would make the ingestion's decree durable.
    fs.fail_from_nth(IoOp::Create, 2 * FILES as u64 + 1, FaultKind::Eio);
    let write = async {
        let m = ingest_command(&source, &metadata, 42);
        tokio::time::timeout(MAX_WAIT, r.write_control(m)).await
    };
    let result = rt.block_on(write).expect("bounded");
    assert!(
        result.is_err(),
        "the apply must fail at the flush: {result:?}"
    );
    // The engine committed the ingestion; its decree is not durable.
    let db = r.state_machine().db();
    assert_eq!(db.get(&overwritten).unwrap(), Some(value(&overwritten)));
    let durable = r.state_machine().durable_decree();
    drop(db);
    let last = r.raft().metrics().borrow().last_log_index.unwrap();
    assert!(
        durable < Some(last),
        "durable {durable:?}, ingest at {last}"
    );

    // Crash; the shared downloaded files disappear meanwhile.
    fs.set_dead();
    let _ = r.state_machine().close();
    rt.block_on(Arc::try_unwrap(r).ok().unwrap().kill());
    fs.power_loss();
    let staged = root.path().join("r1").join(format!("ingest.{last}"));
    assert!(staged.is_dir(), "the staging copy survives the crash");
    std::fs::remove_dir_all(&source).unwrap();

    let r = Arc::new(rt.block_on(Replica::open(opts(), router.clone())).unwrap());
    wait_primary(&rt, std::slice::from_ref(&r));
    rt.block_on(r.wait_applied(Decree(last))).unwrap();
    assert!(r.state_machine().durable_decree() >= Some(last));
    assert!(staging_dirs(&r).is_empty(), "{:?}", staging_dirs(&r));
    assert_loaded(&r.state_machine().db(), 0, FILES, ENTRIES);
    assert_eq!(bulk_keys(&r.state_machine().db(), 0), FILES * ENTRIES);
    assert_eq!(r.get(b"user-before").unwrap().as_deref(), Some(&b"1"[..]));

    // Later writes survive another crash: the ingestion is not replayed over them.
    let mut m = Mutation::new();
    m.delete(key(0, 0, 0))
        .put(overwritten.clone(), b"newer".to_vec());
    let after = user_write(&rt, &r, m);
    fs.set_dead();
    let _ = r.state_machine().close();
    rt.block_on(Arc::try_unwrap(r).ok().unwrap().kill());
    fs.power_loss();
    let r = Arc::new(rt.block_on(Replica::open(opts(), router.clone())).unwrap());
    wait_primary(&rt, std::slice::from_ref(&r));
    rt.block_on(r.wait_applied(Decree(after))).unwrap();
    assert_eq!(r.get(&key(0, 0, 0)).unwrap(), None);
    assert_eq!(r.get(&overwritten).unwrap().as_deref(), Some(&b"newer"[..]));
    assert_eq!(bulk_keys(&r.state_machine().db(), 0), FILES * ENTRIES - 1);
    rt.block_on(Arc::try_unwrap(r).ok().unwrap().close())
        .unwrap();
}

#[test]
fn controller_pause_then_restart_completes() {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(4096));
    let downloads = node(5);
    let mut replicas = Vec::new();
    for p in 0..2 {
        stage_partition(&provider, root.path(), p, FILES, ENTRIES);
        for f in 0..FILES {
            let name = format!("{:06}.sst", f + 1);
            provider.set_fault(p, &name, Fault::Delay(Duration::from_millis(3)));
        }
        let opts = small_options();
        replicas.push(DirectReplica::open(
            root.path(),
            p,
            opts,
            provider.clone(),
            &downloads,
        ));
    }
    let controller = BulkLoadController::new(
        replicas.iter().map(|r| r.partition.clone()).collect(),
        ControllerConfig::default(),
    );
    controller.start().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let paused = controller.pause().unwrap();
    assert_eq!(paused.status, BulkLoadStatus::Paused);
    assert!(
        paused
            .partitions
            .iter()
            .any(|p| p.status == BulkLoadStatus::Paused),
        "{paused:?}"
    );
    for p in &paused.partitions {
        assert!(
            matches!(
                p.status,
                BulkLoadStatus::Paused | BulkLoadStatus::Downloaded
            ),
            "{p:?}"
        );
    }
    assert_eq!(
        downloads.metrics().snapshot().downloading,
        0,
        "downloads joined"
    );
    // Paused stays paused: nothing moves while ticking.
    let fetches = provider.fetch_count();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(controller.tick().unwrap().status, BulkLoadStatus::Paused);
    assert_eq!(provider.fetch_count(), fetches);

    controller.restart().unwrap();
    let done = controller.run(MAX_WAIT).unwrap();
    assert_eq!(done.status, BulkLoadStatus::Succeed, "{:?}", done.error);
    for (p, r) in replicas.iter().enumerate() {
        assert_loaded(&r.db, p as u32, FILES, ENTRIES);
        assert_eq!(r.partition.status(), BulkLoadStatus::Succeed);
    }
}

#[test]
fn secondary_cut_off_during_ingestion_catches_up_before_the_files_go() {
    let rt = runtime();
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(8192));
    stage_partition(&provider, root.path(), 0, FILES, ENTRIES);
    let downloads = node(5);
    let group = Group::open(&rt, root.path(), 0, 3, |_| {}, provider.clone(), &downloads);
    let group = group.restart_driver_with(provider.clone(), &downloads, |c| {
        c.ingest_attempt_timeout = Duration::from_millis(300);
        c.ingest_timeout = MAX_WAIT;
    });
    let primary = group.primary(&rt);
    let cut = group
        .replicas
        .iter()
        .find(|r| r.id() != primary.id())
        .unwrap()
        .id();
    drop(primary);
    group.router.isolate(cut);
    let healer = {
        let router = group.router.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            router.heal(cut);
        })
    };
    let controller =
        BulkLoadController::new(vec![group.driver.clone()], ControllerConfig::default());
    controller.start().unwrap();
    let done = controller.run(MAX_WAIT).unwrap();
    healer.join().unwrap();
    assert_eq!(done.status, BulkLoadStatus::Succeed, "{:?}", done.error);
    let metrics = downloads.metrics().snapshot();
    // The first attempts timed out waiting for the cut-off replica and were proposed again.
    assert!(metrics.ingest_retries > 0, "{metrics:?}");
    assert!(!group.driver.bulk_load_dir().exists());
    for r in &group.replicas {
        let db = r.state_machine().db();
        assert_eq!(bulk_keys(&db, 0), FILES * ENTRIES, "replica {}", r.id());
        assert!(staging_dirs(r).is_empty(), "replica {}", r.id());
    }
    eprintln!("cut off {cut}: {metrics:?}");
    drop(controller);
    group.close(&rt);
}

/// A table-level rollback after some partitions already ingested: one partition's ballot moves
/// between its download and the ingestion, so it reports a stale ballot while the others
/// succeed. The partitions that succeeded stay SUCCEED and are not ingested again (one
/// checkpoint each); the stale one downloads again under the new ballot and ingests; the table
/// succeeds. A partition whose metadata lists no files succeeds without ingesting.
#[test]
fn rollback_after_a_partial_ingestion_keeps_succeeded_partitions_and_empty_ones_succeed() {
    let root = tempfile::tempdir().unwrap();
    let scratch = root.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let provider = Arc::new(TestProvider::new(4096));
    let m0 = stage_partition(&provider, &scratch, 0, 2, 50);
    stage_partition(&provider, &scratch, 1, 2, 50);
    provider.put_metadata(2, BulkLoadMetadata::new(Vec::new()).to_json());
    // Partition 0's download holds until partition 1's ballot moved.
    let (fault, gate) = Fault::block(0, true);
    provider.set_fault(0, &m0.files[0].name, fault);
    let downloads = node(5);
    let replicas: Vec<DirectReplica> = (0..3)
        .map(|p| {
            DirectReplica::open(
                root.path(),
                p,
                small_options(),
                provider.clone(),
                &downloads,
            )
        })
        .collect();
    let controller = BulkLoadController::new(
        replicas.iter().map(|r| r.partition.clone()).collect(),
        ControllerConfig::default(),
    );
    controller.start().unwrap();
    assert!(gate.wait_reached(Duration::from_secs(10)));
    poll_until(
        &replicas[1].partition,
        BulkLoadStatus::Downloaded,
        Duration::from_secs(10),
    );
    replicas[1].target.set_ballot(siltdb_replica::Ballot(2));
    gate.release();
    let progress = controller.run(Duration::from_secs(30)).unwrap();
    assert_eq!(
        progress.status,
        BulkLoadStatus::Succeed,
        "{:?}",
        progress.error
    );
    let progress = controller.query().unwrap();
    assert!(
        progress
            .partitions
            .iter()
            .all(|p| p.status == BulkLoadStatus::Succeed),
        "{progress:?}"
    );
    assert_eq!(progress.partitions[1].session.ballot, 2, "downloaded again");
    for (p, r) in replicas.iter().enumerate().take(2) {
        assert_loaded(&r.db, p as u32, 2, 50);
        let checkpoint = r.target.last_checkpoint().unwrap();
        assert!(
            checkpoint.ends_with("checkpoint.1"),
            "partition {p} ingested once: {checkpoint:?}"
        );
    }
    assert_eq!(
        replicas[2].target.last_checkpoint(),
        None,
        "nothing ingested"
    );
}
