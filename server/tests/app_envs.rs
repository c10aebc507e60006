//! App envs through the binaries: `silt-admin set-env/get-env/del-env` applied live on every
//! replica — a default TTL changes new writes only, write and read throttling engage and
//! release, a manual compaction runs on every replica — bad keys and values are refused, and
//! envs recorded by the meta service survive a restart of every node.

mod common;

use common::*;
use siltdb_server::pegasus::{Record, Ttl};
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::{ServerError, TableLayout};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous bound on anything the tests wait for (a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(45);

fn set_env(addr: &str, table: &str, key: &str, value: &str) {
    let (ok, out, err) = silt_admin(
        addr,
        &["set-env", "--table", table, "--key", key, "--value", value],
    );
    assert!(ok, "set-env {key}={value}: {out}{err}");
}

fn del_env(addr: &str, table: &str, key: &str) {
    let (ok, out, err) = silt_admin(addr, &["del-env", "--table", table, "--key", key]);
    assert!(ok, "del-env {key}: {out}{err}");
}

fn get_env(addr: &str, table: &str) -> String {
    let (ok, out, err) = silt_admin(addr, &["get-env", "--table", table]);
    assert!(ok, "get-env: {err}");
    out
}

async fn record(c: &Cluster, table: &str, hash_key: &str) -> Option<Record> {
    c.client
        .pegasus(table)
        .get_record(hash_key.as_bytes(), b"")
        .await
        .expect("get record")
}

/// The address of partition `p`'s leader (polled until one is known).
async fn leader_of(c: &Cluster, table: &str, p: u32) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        for id in c.live() {
            let s = c.stats(id).await;
            let known = s
                .partitions
                .iter()
                .find(|x| x.table == table && x.partition == p)
                .and_then(|x| x.leader);
            if let Some(l) = known {
                return c.addr(l);
            }
        }
        assert!(Instant::now() < deadline, "no leader of {table}.{p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `n` copies of `req` at once straight to `addr` (no client retries) and counts the
/// answers that are throttled and the ones that succeeded.
async fn burst(c: &Cluster, addr: &str, req: &ClientRequest, n: usize) -> (usize, usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, addr, req) = (Arc::clone(&c.client), addr.to_string(), req.clone());
        set.spawn(async move { client.call(&addr, &req).await });
    }
    let mut throttled = 0;
    let mut ok = 0;
    while let Some(a) = set.join_next().await {
        match a.expect("task").expect("call") {
            ClientResponse::Error(ServerError::Throttled { .. }) => throttled += 1,
            ClientResponse::Error(e) => panic!("unexpected error {e}"),
            _ => ok += 1,
        }
    }
    (throttled, ok)
}

/// Repeats a burst until `want` holds for its (throttled, ok) counts, bounded by [`WAIT`].
async fn burst_until(
    c: &Cluster,
    addr: &str,
    req: &ClientRequest,
    want: impl Fn(usize, usize) -> bool,
    what: &str,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (throttled, ok) = burst(c, addr, req, 8).await;
        if want(throttled, ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last burst {throttled} throttled, {ok} ok"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envs_apply_live_and_bad_ones_are_refused() {
    let c = Cluster::start(3).await;
    let a = c.addr(1);
    let run = |args: &[&str]| silt_admin(&a, args);
    assert_eq!(get_env(&a, TABLE), "", "a new table has no envs");

    // Default TTL: writes after the env expire, writes before it keep no TTL.
    let (ok, _, err) = run(&["put", "--table", TABLE, "before", "v"]);
    assert!(ok, "{err}");
    set_env(&a, TABLE, "default_ttl", "3");
    assert_eq!(get_env(&a, TABLE), "default_ttl=3\n");
    let (ok, _, err) = run(&["put", "--table", TABLE, "after", "v"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["put", "--table", TABLE, "--ttl", "0", "never", "v"]);
    assert!(ok, "{err}");
    let after = record(&c, TABLE, "after").await.expect("after is live");
    assert!(after.expire_ms > 0, "a new write takes the default TTL");
    assert_eq!(record(&c, TABLE, "before").await.unwrap().expire_ms, 0);
    assert_eq!(record(&c, TABLE, "never").await.unwrap().expire_ms, 0);
    // The in-process client's cached layout has no envs: the leader applies the default.
    c.client
        .pegasus(TABLE)
        .set(b"rust", b"", b"v", Ttl::TableDefault)
        .await
        .unwrap();
    assert!(record(&c, TABLE, "rust").await.unwrap().expire_ms > 0);
    let deadline = Instant::now() + WAIT;
    while run(&["get", "--table", TABLE, "after"]).0 {
        assert!(Instant::now() < deadline, "the default TTL never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (ok, out, _) = run(&["get", "--table", TABLE, "before"]);
    assert!(ok && out == "v\n", "an earlier write keeps no TTL: {out}");
    del_env(&a, TABLE, "default_ttl");
    assert_eq!(get_env(&a, TABLE), "");

    // Bad keys and values are refused, naming what is valid; nothing changes.
    let (ok, _, err) = run(&["set-env", "--table", TABLE, "--key", "nope", "--value", "1"]);
    assert!(
        !ok && err.contains("default_ttl") && err.contains("replica.write_throttling"),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "set-env",
        "--table",
        TABLE,
        "--key",
        "default_ttl",
        "--value",
        "ten",
    ]);
    assert!(!ok && err.contains("seconds"), "{err}");
    let (ok, _, err) = run(&[
        "set-env",
        "--table",
        TABLE,
        "--key",
        "replica.write_throttling",
        "--value",
        "10*wait*5",
    ]);
    assert!(!ok && err.contains("*delay*"), "{err}");
    let (ok, _, err) = run(&["del-env", "--table", TABLE, "--key", "nope"]);
    assert!(!ok && err.contains("default_ttl"), "{err}");
    let (ok, _, err) = run(&[
        "set-env",
        "--table",
        "missing",
        "--key",
        "default_ttl",
        "--value",
        "1",
    ]);
    assert!(!ok, "{err}");
    assert_eq!(get_env(&a, TABLE), "");

    // Write throttling engages (writes beyond one a second are rejected) and releases.
    let key = c.key_in(0, "w");
    let write = ClientRequest::Write {
        table: TABLE.into(),
        partition: 0,
        ops: vec![siltdb_replica::WriteOp::Put {
            key,
            value: b"x".to_vec(),
        }],
    };
    let leader = leader_of(&c, TABLE, 0).await;
    set_env(&a, TABLE, "replica.write_throttling", "1*reject*50");
    burst_until(
        &c,
        &leader,
        &write,
        |t, _| t > 0,
        "write throttling engages",
    )
    .await;
    del_env(&a, TABLE, "replica.write_throttling");
    burst_until(
        &c,
        &leader,
        &write,
        |t, ok| t == 0 && ok == 8,
        "write throttling releases",
    )
    .await;

    // Read throttling likewise.
    let read = ClientRequest::Get {
        table: TABLE.into(),
        partition: 0,
        key: c.key_in(0, "w"),
    };
    set_env(&a, TABLE, "replica.read_throttling", "1*reject*50");
    burst_until(&c, &leader, &read, |t, _| t > 0, "read throttling engages").await;
    del_env(&a, TABLE, "replica.read_throttling");
    burst_until(
        &c,
        &leader,
        &read,
        |t, ok| t == 0 && ok == 8,
        "read throttling releases",
    )
    .await;

    // A manual compaction runs once on every replica of every partition.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    set_env(&a, TABLE, "rocksdb.usage_scenario", "bulk_load");
    set_env(
        &a,
        TABLE,
        "manual_compact.once.trigger_time",
        &now.to_string(),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let mut missing = Vec::new();
        for p in &c.procs {
            for part in 0..PARTITIONS {
                let f = p.dir.join(format!("data/replicas/1.{part}/manual_compact"));
                let done = std::fs::read_to_string(&f)
                    .ok()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                    .and_then(|v| v["last_finish_secs"].as_u64())
                    .is_some_and(|t| t >= now);
                if !done {
                    missing.push(format!("n{}/{part}", p.id));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not compacted: {missing:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let envs = get_env(&a, TABLE);
    assert_eq!(
        envs,
        format!("manual_compact.once.trigger_time={now}\nrocksdb.usage_scenario=bulk_load\n")
    );
    // Writes still work under the bulk-load scenario; every node stores the same layout.
    let (ok, _, err) = run(&["put", "--table", TABLE, "late", "v"]);
    assert!(ok, "{err}");
    for id in c.live() {
        let l = stored_layout(&c, id, TABLE).await;
        assert_eq!(l.envs.len(), 2, "node {id}: {:?}", l.envs);
    }
}

async fn stored_layout(c: &Cluster, id: u64, table: &str) -> TableLayout {
    match c
        .client
        .call(&c.addr(id), &ClientRequest::ListTables)
        .await
        .expect("list tables")
    {
        ClientResponse::Tables(ts) => ts
            .into_iter()
            .find(|t| t.name == table)
            .expect("table stored"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envs_recorded_by_the_meta_service_survive_a_restart() {
    let mut c = Cluster::start_bare(3, &[]);
    c.init_meta();
    let a = c.addr(1);
    let (ok, out, err) = silt_admin(
        &a,
        &[
            "create-table",
            "--name",
            "e",
            "--partitions",
            "4",
            "--replicas",
            "3",
        ],
    );
    assert!(ok, "{out}{err}");
    set_env(&a, "e", "default_ttl", "3600");
    set_env(&a, "e", "replica.write_throttling", "100K*delay*10");
    let want = "default_ttl=3600\nreplica.write_throttling=100K*delay*10\n";
    assert_eq!(get_env(&a, "e"), want);
    // The catalog and every node agree.
    let (ok, out, _) = silt_admin(&a, &["--json", "catalog"]);
    assert!(ok && out.contains("100K*delay*10"), "{out}");

    for id in [1, 2, 3] {
        assert!(c.terminate(id), "node {id} stopped cleanly");
    }
    for id in [1, 2, 3] {
        c.restart(id);
    }
    assert_eq!(get_env(&a, "e"), want);
    for id in [1, 2, 3] {
        let l = stored_layout(&c, id, "e").await;
        assert_eq!(l.default_ttl_secs(), 3600, "node {id}");
    }
    // Applied after the restart: a write without a TTL gets the default.
    let (ok, _, err) = silt_admin(&a, &["put", "--table", "e", "k", "v"]);
    assert!(ok, "{err}");
    let r = record(&c, "e", "k").await.expect("k is live");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        r.expire_ms > now_ms + 3_000_000 && r.expire_ms <= now_ms + 3_600_000,
        "{} vs now {now_ms}",
        r.expire_ms
    );
    del_env(&a, "e", "default_ttl");
    assert_eq!(get_env(&a, "e"), "replica.write_throttling=100K*delay*10\n");
}
