//! Partition split through the binaries: `silt-admin split` doubles a table's partition count
//! under concurrent plain and data-model writes, with a model check (every acknowledged write
//! is readable afterwards with its latest value, scans return every key exactly once, the new
//! partitions serve), a second split, a restart of every node, bad `--partitions`, and a
//! split that fails on a node that is down (the old layout stays usable, the retry finishes).

mod common;

use common::*;
use siltdb_server::pegasus::Ttl;
use siltdb_server::TableLayout;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPLIT_TABLE: &str = "s";
const KEYS_PER_WRITER: usize = 60;

/// What a writer knows of one key: the value of its last acknowledged write, and the values
/// of the writes after it that failed (any of them may have been applied).
#[derive(Debug, Default, Clone)]
struct KeyModel {
    acked: Option<String>,
    uncertain: Vec<String>,
}

impl KeyModel {
    fn allows(&self, got: Option<&str>) -> bool {
        match got {
            None => self.acked.is_none(),
            Some(v) => self.acked.as_deref() == Some(v) || self.uncertain.iter().any(|u| u == v),
        }
    }
}

type Model = BTreeMap<Vec<u8>, KeyModel>;

fn plain_key(w: usize, i: usize) -> Vec<u8> {
    format!("w{w}-key-{i:04}").into_bytes()
}

fn record_hash_key(i: usize) -> Vec<u8> {
    format!("user-{i:04}").into_bytes()
}

/// Writes rounds of values to its own keys until `stop`, recording what was acknowledged.
async fn plain_writer(c: Arc<siltdb_server::Client>, w: usize, stop: Arc<AtomicBool>) -> Model {
    let mut model = Model::new();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..KEYS_PER_WRITER {
            let key = plain_key(w, i);
            let value = format!("v{round}");
            let m = model.entry(key.clone()).or_default();
            match c.put(SPLIT_TABLE, &key, value.as_bytes()).await {
                Ok(()) => {
                    m.acked = Some(value);
                    m.uncertain.clear();
                }
                Err(_) => m.uncertain.push(value),
            }
        }
        round += 1;
    }
    model
}

/// The data-model writer: one record per hash key, rewritten in rounds.
async fn record_writer(c: Arc<siltdb_server::Client>, stop: Arc<AtomicBool>) -> Model {
    let mut model = Model::new();
    let mut round = 0u64;
    let pg = c.pegasus(SPLIT_TABLE);
    while !stop.load(Ordering::Relaxed) {
        for i in 0..KEYS_PER_WRITER {
            let h = record_hash_key(i);
            let value = format!("r{round}");
            let m = model.entry(h.clone()).or_default();
            match pg.set(&h, b"s", value.as_bytes(), Ttl::Never).await {
                Ok(()) => {
                    m.acked = Some(value);
                    m.uncertain.clear();
                }
                Err(_) => m.uncertain.push(value),
            }
        }
        round += 1;
    }
    model
}

/// Checks every key of the models against the cluster: gets, a plain scan (each plain key
/// once), a data-model scan (each record once).
async fn check_models(c: &siltdb_server::Client, plain: &Model, records: &Model) {
    for (k, m) in plain {
        let got = c.get(SPLIT_TABLE, k).await.expect("get");
        let got = got.as_deref().map(|v| std::str::from_utf8(v).unwrap());
        assert!(m.allows(got), "key {k:?}: {got:?}, model {m:?}");
    }
    let pg = c.pegasus(SPLIT_TABLE);
    for (h, m) in records {
        let got = pg.get(h, b"s").await.expect("pegasus get");
        let got = got.as_deref().map(|v| std::str::from_utf8(v).unwrap());
        assert!(m.allows(got), "record {h:?}: {got:?}, model {m:?}");
    }
    // The plain scan sees the plain keys (the records' engine keys start with a length and
    // sort before every "w…" key) each exactly once.
    let rows = c
        .scan(SPLIT_TABLE, b"w", None, 1_000_000)
        .await
        .expect("scan");
    let keys: Vec<&Vec<u8>> = rows.iter().map(|(k, _)| k).collect();
    let unique: BTreeSet<&Vec<u8>> = keys.iter().copied().collect();
    assert_eq!(keys.len(), unique.len(), "a key scanned twice");
    for (k, v) in &rows {
        let m = plain
            .get(k)
            .unwrap_or_else(|| panic!("unknown key {k:?} scanned"));
        assert!(m.allows(Some(std::str::from_utf8(v).unwrap())), "{k:?}");
    }
    for (k, m) in plain {
        if m.acked.is_some() {
            assert!(
                unique.contains(k),
                "acknowledged key {k:?} missing from the scan"
            );
        }
    }
    let all = pg.scan_all(1_000_000).await.expect("scan_all");
    let mut seen = BTreeSet::new();
    for r in &all {
        assert!(
            seen.insert(r.hash_key.clone()),
            "record {:?} twice",
            r.hash_key
        );
        let m = records
            .get(&r.hash_key)
            .unwrap_or_else(|| panic!("unknown record {:?}", r.hash_key));
        assert!(m.allows(Some(std::str::from_utf8(&r.value).unwrap())));
    }
    for (h, m) in records {
        if m.acked.is_some() {
            assert!(
                seen.contains(h),
                "acknowledged record {h:?} missing from scan_all"
            );
        }
    }
}

/// The table's layout as node `id` stores it.
async fn stored_layout(c: &Cluster, id: u64) -> TableLayout {
    let addr = c.addr(id);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(siltdb_server::proto::ClientResponse::Tables(ts)) = c
            .client
            .call(&addr, &siltdb_server::proto::ClientRequest::ListTables)
            .await
        {
            if let Some(t) = ts.into_iter().find(|t| t.name == SPLIT_TABLE) {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {id} does not list the table"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node `id`'s replicas of the table with an applied decree, by partition.
async fn serving_partitions(c: &Cluster, id: u64) -> BTreeSet<u32> {
    c.stats(id)
        .await
        .partitions
        .iter()
        .filter(|p| p.table == SPLIT_TABLE && p.applied.is_some())
        .map(|p| p.partition)
        .collect()
}

/// Waits until every partition of the table has the same applied decree and data digest on
/// every node.
async fn wait_converged(c: &Cluster, partitions: u32, within: Duration) {
    let deadline = Instant::now() + within;
    'retry: loop {
        assert!(Instant::now() < deadline, "replicas did not converge");
        for p in 0..partitions {
            let mut seen = None;
            for id in c.live() {
                let Ok(d) = c.client.digest(&c.addr(id), SPLIT_TABLE, p).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'retry;
                };
                let now = (d.applied, d.keys, d.hash);
                if d.applied.is_none() || seen.is_some_and(|s| s != now) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'retry;
                }
                seen = Some(now);
            }
        }
        return;
    }
}

fn split(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["split", "--table", SPLIT_TABLE, "--timeout", "90s"];
    all.extend_from_slice(args);
    silt_admin(&c.addr(1), &all)
}

async fn create_split_table(c: &Cluster, partitions: u32) {
    let layout = TableLayout::new(SPLIT_TABLE, 7, partitions, 3, c.layout.nodes.clone());
    c.client.create_table(&layout).await.expect("create table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_under_writes_then_again_then_restart() {
    let mut c = Cluster::start_bare(3, &[]);
    create_split_table(&c, 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| tokio::spawn(plain_writer(Arc::clone(&c.client), w, Arc::clone(&stop))))
        .collect();
    let records = tokio::spawn(record_writer(Arc::clone(&c.client), Arc::clone(&stop)));
    // Some data first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A bad count is refused before anything changes.
    let (ok, _, err) = split(&c, &["--partitions", "6"]);
    assert!(!ok, "split to 6 accepted");
    assert!(err.contains("from 2 to 4"), "{err}");

    let started = Instant::now();
    let (ok, out, err) = split(&c, &[]);
    assert!(ok, "split failed: {err}");
    assert_eq!(out.trim(), "4", "{out}");
    eprintln!("split 2 -> 4 under writes took {:?}", started.elapsed());
    // Writes go on against the new layout for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut plain = Model::new();
    for w in writers {
        plain.extend(w.await.unwrap());
    }
    let records = records.await.unwrap();
    assert!(plain.values().filter(|m| m.acked.is_some()).count() > 50);

    for id in 1..=3 {
        let l = stored_layout(&c, id).await;
        assert_eq!((l.partition_count, l.splits), (4, 1), "node {id}");
    }
    // Every partition of the new layout is served, by each of its replicas.
    for id in 1..=3 {
        assert_eq!(serving_partitions(&c, id).await, (0..4).collect());
    }
    // A client that never saw the old layout routes keys to the children.
    let fresh = siltdb_server::Client::new(siltdb_server::ClientOptions::new(vec![c.addr(2)]));
    let l = fresh.layout(SPLIT_TABLE).await.unwrap();
    assert_eq!(l.partition_count, 4);
    let moved = plain.keys().filter(|k| l.partition_of(k) >= 2).count();
    assert!(moved > 0, "no key routes to a child");
    check_models(&fresh, &plain, &records).await;
    // The client that wrote during the split follows the new layout too.
    check_models(&c.client, &plain, &records).await;

    // The second split (4 -> 8), with the explicit count, then writes to every partition.
    let (ok, out, err) = split(&c, &["--partitions", "8"]);
    assert!(ok, "second split failed: {err}");
    assert_eq!(out.trim(), "8");
    for i in 0..KEYS_PER_WRITER {
        let k = plain_key(0, i);
        c.client.put(SPLIT_TABLE, &k, b"after").await.unwrap();
        let m = plain.get_mut(&k).unwrap();
        m.acked = Some("after".into());
        m.uncertain.clear();
    }
    check_models(&c.client, &plain, &records).await;
    wait_converged(&c, 8, Duration::from_secs(60)).await;

    // Every node restarts: the split table comes back with 8 partitions and its data.
    for id in 1..=3 {
        assert!(c.terminate(id), "node {id} did not stop cleanly");
    }
    for id in 1..=3 {
        c.restart(id);
    }
    for id in 1..=3 {
        let l = stored_layout(&c, id).await;
        assert_eq!(
            (l.partition_count, l.splits),
            (8, 2),
            "node {id} after restart"
        );
    }
    let after = siltdb_server::Client::new(siltdb_server::ClientOptions::new(vec![c.addr(3)]));
    check_models(&after, &plain, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_with_a_node_down_fails_cleanly_and_the_retry_finishes() {
    let mut c = Cluster::start_bare(3, &[]);
    create_split_table(&c, 2).await;
    let mut plain = Model::new();
    for i in 0..40 {
        let k = plain_key(0, i);
        c.client.put(SPLIT_TABLE, &k, b"one").await.unwrap();
        plain.entry(k).or_default().acked = Some("one".into());
    }
    c.kill9(3);
    let (ok, _, err) = silt_admin(
        &c.addr(1),
        &["split", "--table", SPLIT_TABLE, "--timeout", "8s"],
    );
    assert!(!ok, "split with a node down succeeded");
    assert!(!err.is_empty());
    // The old layout still serves reads and writes.
    for id in 1..=2 {
        let l = stored_layout(&c, id).await;
        assert_eq!(l.partition_count, 2, "node {id}");
    }
    for i in 0..40 {
        let k = plain_key(0, i);
        c.client.put(SPLIT_TABLE, &k, b"two").await.unwrap();
        plain.get_mut(&k).unwrap().acked = Some("two".into());
    }
    c.restart(3);
    let (ok, out, err) = split(&c, &[]);
    assert!(ok, "retried split failed: {err}");
    assert_eq!(out.trim(), "4");
    check_models(&c.client, &plain, &Model::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_through_the_meta_service_is_recorded_in_the_catalog() {
    let c = Cluster::start_bare(3, &[]);
    c.init_meta();
    let (ok, _, err) = silt_admin(
        &c.addr(1),
        &[
            "create-table",
            "--name",
            SPLIT_TABLE,
            "--partitions",
            "2",
            "--replicas",
            "3",
        ],
    );
    assert!(ok, "{err}");
    let mut plain = Model::new();
    for i in 0..40 {
        let k = plain_key(1, i);
        c.client.put(SPLIT_TABLE, &k, b"m").await.unwrap();
        plain.entry(k).or_default().acked = Some("m".into());
    }
    let (ok, out, err) = split(&c, &[]);
    assert!(ok, "split via meta failed: {err}");
    assert_eq!(out.trim(), "4");
    let req = siltdb_server::meta::MetaRequest::Catalog;
    let catalog = match c.client.meta(req, Duration::from_secs(10)).await.unwrap() {
        siltdb_server::proto::ClientResponse::Catalog(cat) => cat,
        other => panic!("catalog: {other:?}"),
    };
    let t = catalog
        .tables
        .iter()
        .find(|t| t.name == SPLIT_TABLE)
        .expect("table in the catalog");
    assert_eq!((t.partition_count, t.splits), (4, 1));
    // A reconcile pushes the recorded layout again: every node keeps it.
    let req = siltdb_server::meta::MetaRequest::ReconcileTables;
    c.client.meta(req, Duration::from_secs(30)).await.unwrap();
    for id in 1..=3 {
        assert_eq!(stored_layout(&c, id).await.partition_count, 4);
    }
    check_models(&c.client, &plain, &Model::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_the_split_leaves_a_usable_table_and_a_rerun_finishes() {
    let mut c = Cluster::start_bare(3, &[]);
    create_split_table(&c, 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(plain_writer(Arc::clone(&c.client), 0, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let addr = c.addr(1);
    let split_run = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_silt-admin"))
            .args(["--addr", &addr, "split", "--table", SPLIT_TABLE])
            .args(["--timeout", "12s"])
            .output()
            .expect("run silt-admin")
    });
    // Node 3 dies at some point of the split (which one depends on the machine's speed).
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill9(3);
    let out = tokio::task::spawn_blocking(move || split_run.join().unwrap())
        .await
        .unwrap();
    let first_ok = out.status.success();
    eprintln!(
        "split with node 3 killed: ok={first_ok} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.restart(3);
    if !first_ok {
        // A failed split either aborted (the old layout serves) or switched some nodes: the
        // rerun resumes or starts it, and finishes.
        let (ok, out, err) = split(&c, &[]);
        assert!(ok, "rerun failed: {err}");
        assert_eq!(out.trim(), "4");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let plain = writer.await.unwrap();
    for id in 1..=3 {
        let l = stored_layout(&c, id).await;
        assert_eq!(l.partition_count, 4, "node {id}");
    }
    check_models(&c.client, &plain, &Model::new()).await;
}
