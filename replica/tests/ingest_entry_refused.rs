//! Issue #25: applying a committed bulk-load ingest entry is deterministic and total. An entry
//! that cannot take effect (its source directory is missing, or a file does not match the
//! command) is applied on every replica as a recorded failure — never as a storage error that
//! stops the state machine and repeats after a restart — and the group stays writable and
//! readable, also after a restart.

mod common;

use common::*;
use siltdb_replica::mutation::{ControlOp, IngestCommand, IngestFile};
use siltdb_replica::network::Router;
use siltdb_replica::replica::Replica;
use siltdb_replica::{Decree, Mutation};
use std::path::Path;
use std::time::Duration;

const MAX_WAIT: Duration = Duration::from_secs(20);

fn ingest(source: &Path, load_id: u64, name: &str, size: u64, crc32c: u32) -> Mutation {
    Mutation::control(
        None,
        ControlOp::Ingest(IngestCommand {
            load_id,
            source_dir: source.to_str().unwrap().to_string(),
            files: vec![IngestFile {
                name: name.into(),
                size,
                crc32c,
            }],
        }),
    )
}

async fn start(dir: &Path, router: &std::sync::Arc<Router>) -> Vec<Replica> {
    let mut rs = Vec::new();
    for id in 1..=3 {
        rs.push(open(options(dir, id, None), router).await);
    }
    rs
}

async fn write_control(r: &Replica, m: Mutation) -> siltdb_replica::MutationResp {
    tokio::time::timeout(MAX_WAIT, r.write_control(m))
        .await
        .expect("bounded")
        .expect("a refused ingestion still applies")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_ingest_entry_is_a_recorded_failure_and_the_group_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let rs = start(dir.path(), &router).await;
    rs[0].initialize(&[1, 2, 3]).await.unwrap();
    let l = wait_leader(&rs.iter().collect::<Vec<_>>(), None).await;
    write(&rs[l], put(1, 0)).await;

    // A source directory that does not exist.
    let missing = dir.path().join("no-such-downloads");
    let resp = write_control(&rs[l], ingest(&missing, 7, "000001.sst", 10, 0)).await;
    let reason = resp
        .ingest_failure
        .expect("the refusal reaches the proposer");
    assert!(reason.contains("000001.sst"), "{reason}");
    let first = resp.decree;

    // A file that exists but does not match: the reason says so without its size or crc.
    let source = dir.path().join("downloads");
    std::fs::create_dir_all(&source).unwrap();
    let secret = b"not an sst at all, and nobody's business";
    std::fs::write(source.join("000002.sst"), secret).unwrap();
    let resp = write_control(&rs[l], ingest(&source, 8, "000002.sst", 3, 0)).await;
    let reason = resp.ingest_failure.expect("refused");
    let rest = reason.replace(source.to_str().unwrap(), "<src>");
    assert!(rest.contains("does not match"), "{reason}");
    assert!(!rest.contains(&secret.len().to_string()), "{reason}");
    let crc = format!("{:x}", crc32c::crc32c(secret));
    assert!(!rest.to_lowercase().contains(&crc), "{reason}");
    let second = resp.decree;

    // Still writable and readable; every replica applied both entries the same way.
    let after = write(&rs[l], put(2, 0)).await;
    for r in &rs {
        r.wait_applied(Decree(after)).await.unwrap();
        assert_eq!(
            r.get(&key(1)).unwrap(),
            Some(value(1, 0)),
            "replica {}",
            r.id()
        );
        assert_eq!(
            r.get(&key(2)).unwrap(),
            Some(value(2, 0)),
            "replica {}",
            r.id()
        );
        let f = r
            .state_machine()
            .ingest_failure()
            .unwrap()
            .expect("recorded");
        assert_eq!((f.load_id, f.decree), (8, second), "replica {}", r.id());
        assert_eq!(f.reason, reason, "replica {}", r.id());
    }
    assert!(first < second);

    // Restart every replica: nothing is replayed into an error, the failure is still visible.
    for r in rs {
        r.close().await.unwrap();
    }
    let rs = start(dir.path(), &router).await;
    let l = wait_leader(&rs.iter().collect::<Vec<_>>(), None).await;
    let last = write(&rs[l], put(3, 0)).await;
    for r in &rs {
        r.wait_applied(Decree(last)).await.unwrap();
        for i in 1..=3 {
            assert_eq!(
                r.get(&key(i)).unwrap(),
                Some(value(i, 0)),
                "replica {}",
                r.id()
            );
        }
        let f = r
            .state_machine()
            .ingest_failure()
            .unwrap()
            .expect("recorded");
        assert_eq!((f.load_id, f.decree), (8, second), "replica {}", r.id());
        let ingested = r
            .state_machine()
            .db()
            .get(siltdb_replica::bulk_load::apply::INGESTED_KEY)
            .unwrap();
        assert_ne!(
            ingested.as_deref(),
            Some(&8u64.to_le_bytes()[..]),
            "a refused load was recorded as ingested"
        );
    }
    for r in rs {
        r.close().await.unwrap();
    }
}
