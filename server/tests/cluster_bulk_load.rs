//! Bulk load end to end on a 3-node cluster (8 partitions × 3 replicas): records built with
//! `sst-ingest build --partitions 8` (the tool's own command line, in process), loaded through
//! the client (two concurrent starts: one refused) while a writer keeps writing other keys,
//! its status shown by `silt-admin bulk-load-status`; every loaded key
//! readable with its value, no acknowledged write lost, the three replicas of every partition
//! equal; the coordinator killed with SIGKILL and restarted still has the data and still
//! reports the load; a load whose coordinator dies mid-ingestion is reported FAILED
//! (interrupted) after the restart, and started again it succeeds. Refusals first, through
//! `silt-admin start-bulk-load [--wait]`: a source lacking a partition is refused at once, and a
//! partition with bad metadata fails the load by name with nothing ingested. A second table
//! most of whose partitions get no key loads too (empty partitions succeed at once).

mod common;

use common::*;
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_server::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORDS: usize = 4000;

/// [`build_n`] of all [`RECORDS`].
fn build(root: &Path, name: &str) -> PathBuf {
    build_n(root, name, RECORDS)
}

/// `silt-admin --addr <node 1> args...`: (success, stdout, stderr).
fn admin(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    silt_admin(&c.addr(1), args)
}

/// Every row of the table whose key starts with `prefix`.
async fn rows(client: &Client, prefix: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    client
        .scan(TABLE, prefix.as_bytes(), Some(&end), 1_000_000)
        .await
        .expect("scan")
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_load_on_three_nodes_under_writes_survives_kill9_of_the_coordinator() {
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    let work = tempfile::tempdir().unwrap();
    let client = Arc::clone(&c.client);

    // Refused at once: a partition directory is missing.
    let missing = build(work.path(), "missing");
    std::fs::remove_dir_all(missing.join("5")).unwrap();
    let dir = missing.to_str().unwrap();
    let (ok, _, err) = admin(&c, &["start-bulk-load", "--table", TABLE, "--dir", dir]);
    assert!(!ok, "{err}");
    assert!(err.contains("partition(s) 5"), "{err}");
    let e = client.query_bulk_load(TABLE).await.unwrap_err();
    assert!(e.to_string().contains("no bulk load"), "{e}");

    // Fails by name: bad metadata in partition 3; the other partitions are not ingested.
    let bad = build(work.path(), "bad");
    std::fs::write(bad.join("3").join("bulk_load_metadata.json"), b"{not json").unwrap();
    let dir = bad.to_str().unwrap();
    let (ok, out, err) = admin(
        &c,
        &["start-bulk-load", "--table", TABLE, "--dir", dir, "--wait"],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("FAILED"), "{err}");
    assert!(err.contains("bulk_load_metadata.json"), "{err}");
    assert!(out.contains("partition   3 FAILED"), "{out}");
    assert!(rows(&client, "bulk:").await.is_empty(), "nothing ingested");

    // A writer writes other keys throughout the load.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = Arc::clone(&client);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let key = format!("w:{i:06}").into_bytes();
                let value = format!("written-{i}").into_bytes();
                if client.put(TABLE, &key, &value).await.is_ok() {
                    acked.insert(key, value);
                }
                i += 1;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let good = build(work.path(), "good");
    let dir = good.to_str().unwrap();
    // Two starts at once: the coordinator serializes them, and the second finds the first
    // running and is refused.
    let (a, b) = tokio::join!(
        client.start_bulk_load(TABLE, dir),
        client.start_bulk_load(TABLE, dir)
    );
    let (started_report, refused) = match (a, b) {
        (Ok(r), Err(e)) | (Err(e), Ok(r)) => (r, e),
        other => panic!("exactly one of two concurrent starts must succeed: {other:?}"),
    };
    assert_ne!(
        started_report.status,
        BulkLoadStatus::Failed,
        "{started_report:?}"
    );
    assert!(refused.to_string().contains("already running"), "{refused}");
    let (ok, out, err) = admin(&c, &["bulk-load-status", "--table", TABLE]);
    assert!(ok && out.contains("partition   7"), "{out}{err}");

    let report = wait_bulk_load_finished(&client, TABLE, Duration::from_secs(60)).await;
    assert_eq!(report.status, BulkLoadStatus::Succeed, "{report:?}");
    let (done, total) = report.bytes();
    assert!(total > 0 && done == total, "{report:?}");
    assert!(report
        .partitions
        .iter()
        .all(|p| p.status == BulkLoadStatus::Succeed));
    stop.store(true, Ordering::Release);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 10,
        "the writer made progress: {}",
        acked.len()
    );
    eprintln!(
        "load done after {:?}, {} writes",
        started.elapsed(),
        acked.len()
    );

    let expected: BTreeMap<Vec<u8>, Vec<u8>> = (0..RECORDS)
        .map(record)
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect();
    assert_eq!(rows(&client, "bulk:").await, expected);
    let written = rows(&client, "w:").await;
    for (k, v) in &acked {
        assert_eq!(written.get(k), Some(v), "{}", String::from_utf8_lossy(k));
    }
    c.wait_converged(Duration::from_secs(30)).await;

    // A table most of whose partitions get no key: those succeed without ingesting.
    let mut small = c.layout.clone();
    small.name = "small".into();
    small.app_id = 2;
    c.client.create_table(&small).await.unwrap();
    let few = build_n(work.path(), "few", 3);
    let report = client
        .start_bulk_load("small", few.to_str().unwrap())
        .await
        .unwrap();
    assert_ne!(report.status, BulkLoadStatus::Failed, "{report:?}");
    let report = wait_bulk_load_finished(&client, "small", Duration::from_secs(30)).await;
    assert_eq!(report.status, BulkLoadStatus::Succeed, "{report:?}");
    assert!(report.partitions.iter().any(|p| p.total_bytes == 0));
    for (k, v) in (0..3).map(record) {
        let got = client.get("small", k.as_bytes()).await.unwrap();
        assert_eq!(got.as_deref(), Some(v.as_bytes()));
    }

    // The coordinator dies; restarted, it has the data and still reports the load.
    c.kill9(1);
    client.put(TABLE, b"w:after-kill", b"x").await.unwrap();
    c.restart(1);
    c.wait_converged(Duration::from_secs(60)).await;
    let mut keys = 0;
    for p in 0..PARTITIONS {
        keys += c.client.digest(&c.addr(1), TABLE, p).await.unwrap().keys;
    }
    assert!(
        keys >= (RECORDS + acked.len() + 1) as u64,
        "node 1 holds {keys} keys"
    );
    let report = client.query_bulk_load(TABLE).await.unwrap();
    assert_eq!(report.status, BulkLoadStatus::Succeed, "{report:?}");
    assert!(!report.running);
    assert_eq!(rows(&client, "bulk:").await, expected);

    // A load interrupted by the coordinator's death: with node 3 down no ingestion can finish
    // (every replica must apply it). Restarted, the coordinator reports the load FAILED
    // (interrupted); a new start waits for node 3 to catch up, then succeeds.
    c.kill9(3);
    let few_dir = few.to_str().unwrap();
    client.start_bulk_load("small", few_dir).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.query_bulk_load("small").await.unwrap();
        if r.partitions
            .iter()
            .any(|p| p.status == BulkLoadStatus::Ingesting)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no partition ingesting: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.kill9(1);
    c.restart(1);
    let report = client.query_bulk_load("small").await.unwrap();
    assert_eq!(report.status, BulkLoadStatus::Failed, "{report:?}");
    assert!(!report.running);
    let reason = report.error.clone().unwrap_or_default();
    assert!(reason.contains("interrupted"), "{reason}");
    c.restart(3);
    client.start_bulk_load("small", few_dir).await.unwrap();
    let report = wait_bulk_load_finished(&client, "small", Duration::from_secs(90)).await;
    assert_eq!(report.status, BulkLoadStatus::Succeed, "{report:?}");
    for (k, v) in (0..3).map(record) {
        let got = client.get("small", k.as_bytes()).await.unwrap();
        assert_eq!(got.as_deref(), Some(v.as_bytes()));
    }
    c.wait_converged(Duration::from_secs(60)).await;
    eprintln!("cluster bulk load test in {:?}", started.elapsed());
}
