//! No request may wedge a partition (issue 25), through the binaries on a 3-node cluster:
//! a bogus ingest control request (a source directory that does not exist, one shaped like a
//! download directory but empty, files that do not match, a stale ballot) is refused before it
//! is proposed; a bulk load from a source with a damaged SST file fails by name; a load whose
//! source directory vanishes right after the start finishes (succeeded or failed, never hung).
//! After each, every partition takes writes, and still does after every node was restarted,
//! with every acknowledged write readable. Then: a node whose runtime has a single async
//! worker keeps answering point reads well within the election timeout while many tables are
//! created at once.

mod common;

use common::*;
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_server::bulk_load::{BulkLoadReport, IngestMutation, ReplicaBulkOp, ReplicaBulkReply};
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::{Client, ServerError, TableLayout};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const RECORDS: usize = 2000;

async fn wait_finished(client: &Client, within: Duration) -> BulkLoadReport {
    let deadline = Instant::now() + within;
    loop {
        let r = client.query_bulk_load(TABLE).await.expect("query");
        if r.is_finished() {
            return r;
        }
        assert!(Instant::now() < deadline, "load not finished: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node leading partition `p`, and its ballot, from the replicas' own answers.
async fn leader_of(c: &Cluster, p: u32) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for id in c.live() {
            let req = ClientRequest::BulkLoadReplica {
                table: TABLE.into(),
                partition: p,
                op: ReplicaBulkOp::State,
            };
            if let Ok(ClientResponse::BulkLoadReplica(ReplicaBulkReply::State {
                node_id,
                ballot,
                leader,
                ..
            })) = c.client.call(&c.addr(id), &req).await
            {
                if leader == Some(node_id) {
                    return (node_id, ballot);
                }
            }
        }
        assert!(Instant::now() < deadline, "partition {p} has no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An ingest request for partition `p` naming `source` and one file `name`.
fn ingest_request(p: u32, ballot: u64, source: &Path, name: &str) -> ClientRequest {
    let control =
        siltdb_server::bulk_load::IngestControl::Ingest(siltdb_replica::mutation::IngestCommand {
            load_id: 0xbad,
            source_dir: source.to_str().unwrap().into(),
            files: vec![siltdb_replica::mutation::IngestFile {
                name: name.into(),
                size: 4096,
                crc32c: 0x1234_5678,
            }],
        });
    ClientRequest::BulkLoadReplica {
        table: TABLE.into(),
        partition: p,
        op: ReplicaBulkOp::Ingest {
            mutation: IngestMutation {
                ballot: Some(ballot),
                ops: Vec::new(),
                control: Some(control),
            },
            timeout_ms: u64::MAX,
        },
    }
}

/// Writes one key to every partition (acknowledged writes go into `acked`).
async fn write_every_partition(c: &Cluster, tag: &str, acked: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    for p in 0..PARTITIONS {
        let key = c.key_in(p, tag);
        let value = format!("{tag}-value-{p}").into_bytes();
        c.client
            .put(TABLE, &key, &value)
            .await
            .unwrap_or_else(|e| panic!("partition {p} does not take writes ({tag}): {e}"));
        acked.insert(key, value);
    }
}

async fn check_acked(c: &Cluster, acked: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for (k, v) in acked {
        let got = c.client.get(TABLE, k).await.expect("read");
        assert_eq!(got.as_deref(), Some(&v[..]), "key {k:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ingests_leave_every_partition_writable_across_restarts() {
    let mut c = Cluster::start(3).await;
    let work = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    write_every_partition(&c, "before", &mut acked).await;

    // Bogus ingest requests, sent straight to the leader: each is refused before it is
    // proposed, with an error that says why (and nothing about the files it names).
    let (leader, ballot) = leader_of(&c, 0).await;
    let addr = c.addr(leader);
    let shaped = work
        .path()
        .join("bulk_load")
        .join(TABLE)
        .join("0")
        .join("bulk_load");
    std::fs::create_dir_all(&shaped).unwrap();
    let secret = work.path().join("secret.bin");
    std::fs::write(&secret, vec![7u8; 4096]).unwrap();
    let cases: Vec<(&str, ClientRequest, &str)> = vec![
        (
            "missing source",
            ingest_request(0, ballot, &work.path().join("nowhere"), "000001.sst"),
            "not a bulk-load download directory",
        ),
        (
            "another directory",
            ingest_request(0, ballot, work.path(), "secret.bin"),
            "not a bulk-load download directory",
        ),
        (
            "missing file",
            ingest_request(0, ballot, &shaped, "000001.sst"),
            "cannot be read",
        ),
        (
            "traversal",
            ingest_request(0, ballot, &shaped, "../../../../secret.bin"),
            "ingest command",
        ),
    ];
    for (what, req, expected) in cases {
        match c.client.call(&addr, &req).await.expect("call") {
            ClientResponse::Error(ServerError::InvalidArgument(m)) => {
                assert!(m.contains(expected), "{what}: {m}");
                assert!(
                    !m.contains("12345678"),
                    "{what}: the command's crc echoed: {m}"
                );
            }
            other => panic!("{what}: not refused: {other:?}"),
        }
    }
    std::fs::copy(&secret, shaped.join("000001.sst")).unwrap();
    match c
        .client
        .call(&addr, &ingest_request(0, ballot, &shaped, "000001.sst"))
        .await
        .expect("call")
    {
        ClientResponse::Error(ServerError::InvalidArgument(m)) => {
            assert!(m.contains("does not match"), "{m}");
            assert!(!m.contains("4096"), "the file's size leaked: {m}");
        }
        other => panic!("a mismatching file was not refused: {other:?}"),
    }
    let stale = ingest_request(0, ballot.saturating_sub(1), &shaped, "000001.sst");
    if ballot > 0 {
        match c.client.call(&addr, &stale).await.expect("call") {
            ClientResponse::BulkLoadReplica(ReplicaBulkReply::StaleBallot { current }) => {
                assert_eq!(current, ballot)
            }
            other => panic!("a stale ballot was not refused: {other:?}"),
        }
    }
    write_every_partition(&c, "after-bogus", &mut acked).await;

    // A damaged SST file in partition 2's source: the load fails, naming the file.
    let damaged = build_n(work.path(), "damaged", RECORDS);
    let victim = std::fs::read_dir(damaged.join("2"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .expect("partition 2 has an SST file");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    c.client
        .start_bulk_load(TABLE, damaged.to_str().unwrap())
        .await
        .expect("start");
    let report = wait_finished(&c.client, Duration::from_secs(90)).await;
    assert_eq!(report.status, BulkLoadStatus::Failed, "{report:?}");
    let text = format!("{report:?}");
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(name), "the damaged file is not named: {text}");
    write_every_partition(&c, "after-damaged", &mut acked).await;

    // The source vanishes right after the start: the load ends either way, and never hangs.
    let vanishing = build_n(work.path(), "vanishing", RECORDS);
    c.client
        .start_bulk_load(TABLE, vanishing.to_str().unwrap())
        .await
        .expect("start");
    std::fs::remove_dir_all(&vanishing).unwrap();
    let report = wait_finished(&c.client, Duration::from_secs(90)).await;
    match report.status {
        BulkLoadStatus::Succeed => {
            let (k, v) = record(0);
            let got = c.client.get(TABLE, k.as_bytes()).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(v.as_bytes()),
                "a succeeded load lost a record"
            );
        }
        BulkLoadStatus::Failed => assert!(report.error.is_some(), "{report:?}"),
        other => panic!("finished as {other}: {report:?}"),
    }
    write_every_partition(&c, "after-vanished", &mut acked).await;

    // Every node restarted: every partition still takes writes, nothing acknowledged is lost.
    for id in 1..=3 {
        assert!(c.terminate(id), "node {id} did not stop cleanly");
        c.restart(id);
    }
    write_every_partition(&c, "after-restart", &mut acked).await;
    check_acked(&c, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_keeps_point_reads_within_the_election_timeout_while_tables_open() {
    /// The servers' smallest election timeout (`ServerConfig::election_min_ms`'s default).
    const ELECTION_MIN: Duration = Duration::from_millis(1500);
    const TABLES: u32 = 12;
    let c = Cluster::start_with(1, &["--worker-threads", "1"]).await;
    c.client.put(TABLE, b"probe", b"value").await.expect("put");

    let creator = {
        let client = c.client.clone();
        let nodes = c.layout.nodes.clone();
        tokio::spawn(async move {
            let mut creates = tokio::task::JoinSet::new();
            for i in 0..TABLES {
                let client = client.clone();
                let layout =
                    TableLayout::new(format!("busy{i}"), 100 + i, PARTITIONS, 1, nodes.clone());
                creates.spawn(async move { client.create_table(&layout).await });
            }
            creates.join_all().await
        })
    };
    let mut worst = Duration::ZERO;
    let mut reads = 0u32;
    while !creator.is_finished() || reads < 50 {
        let t = Instant::now();
        let v = c
            .client
            .get(TABLE, b"probe")
            .await
            .expect("read while tables open");
        assert_eq!(v.as_deref(), Some(&b"value"[..]));
        worst = worst.max(t.elapsed());
        reads += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for r in creator.await.unwrap() {
        r.expect("create table");
    }
    eprintln!("{reads} reads while {TABLES} tables opened; slowest {worst:?}");
    assert!(
        worst < ELECTION_MIN,
        "a point read took {worst:?} while tables opened (election timeout {ELECTION_MIN:?})"
    );
}
