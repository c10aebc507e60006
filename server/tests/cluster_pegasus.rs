//! The Pegasus data model through `silt-server` processes: every operation against a model,
//! TTL expiry visible at once, check_and_set races with exactly one winner, incr overflow, and
//! concurrent writers against a model map across a kill -9 of a node and its restart.

mod common;

use common::*;
use siltdb_replica::pegasus::{CheckType, Mutate};
use siltdb_server::pegasus::{ScanRange, Ttl};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What the writers acknowledged: (hash key, sort key) -> value.
type Model = BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_model_operations_ttl_cas_and_incr() {
    let c = Cluster::start(3).await;
    let pg = c.client.pegasus(TABLE);
    pg.set(b"user", b"name", b"ann", Ttl::Never).await.unwrap();
    assert_eq!(pg.get(b"user", b"name").await.unwrap(), Some(b("ann")));
    assert_eq!(pg.get(b"user", b"none").await.unwrap(), None);
    // The records of a hash key share its partition; plain keys do not see them.
    let kvs: Vec<_> = (0..20)
        .map(|i| (b(&format!("s{i:02}")), b(&format!("v{i}"))))
        .collect();
    pg.multi_set(b"h", kvs.clone(), Ttl::Never).await.unwrap();
    assert_eq!(pg.sortkey_count(b"h").await.unwrap(), 20);
    let got = pg
        .multi_get(b"h", vec![b("s03"), b("s99"), b("s07")])
        .await
        .unwrap();
    let got: Vec<_> = got.iter().map(|r| r.value.clone()).collect();
    assert_eq!(got, vec![b("v3"), b("v7")]);
    assert_eq!(pg.multi_get(b"h", vec![]).await.unwrap().len(), 20);
    let sorts = |rs: Vec<siltdb_server::pegasus::Record>| {
        rs.into_iter()
            .map(|r| String::from_utf8(r.sort_key).unwrap())
            .collect::<Vec<_>>()
    };
    let range = |start: &str, stop: Option<&str>, si, ei, limit, reverse| ScanRange {
        start: b(start),
        stop: stop.map(b),
        start_inclusive: si,
        stop_inclusive: ei,
        limit,
        reverse,
    };
    assert_eq!(
        sorts(
            pg.scan(b"h", range("s05", Some("s08"), true, false, 0, false))
                .await
                .unwrap()
        ),
        ["s05", "s06", "s07"]
    );
    assert_eq!(
        sorts(
            pg.scan(b"h", range("s05", Some("s08"), false, true, 0, false))
                .await
                .unwrap()
        ),
        ["s06", "s07", "s08"]
    );
    assert_eq!(
        sorts(
            pg.scan(b"h", range("", None, true, false, 2, true))
                .await
                .unwrap()
        ),
        ["s19", "s18"]
    );
    assert_eq!(
        sorts(
            pg.scan(b"h", range("s17", None, true, false, 0, false))
                .await
                .unwrap()
        ),
        ["s17", "s18", "s19"]
    );
    pg.multi_del(b"h", vec![b("s00"), b("s01")]).await.unwrap();
    pg.del(b"h", b"s02").await.unwrap();
    assert_eq!(pg.sortkey_count(b"h").await.unwrap(), 17);

    // TTL: invisible at once when it passes.
    pg.set(b"t", b"a", b"1", Ttl::After(Duration::from_millis(800)))
        .await
        .unwrap();
    pg.set(b"t", b"b", b"2", Ttl::Never).await.unwrap();
    let rec = pg.get_record(b"t", b"a").await.unwrap().unwrap();
    assert!(rec.expire_ms > 0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(pg.get(b"t", b"a").await.unwrap(), None);
    assert_eq!(pg.sortkey_count(b"t").await.unwrap(), 1);
    assert_eq!(
        pg.scan(b"t", range("", None, true, false, 0, false))
            .await
            .unwrap()
            .len(),
        1
    );

    // check_and_set: exactly one of many racing writers wins.
    let client = Arc::clone(&c.client);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let pg = client.pegasus(TABLE);
            let r = pg
                .check_and_set(
                    b"lock",
                    b"owner",
                    CheckType::ValueNotExist,
                    b"",
                    b"owner",
                    format!("w{i}").as_bytes(),
                    Ttl::Never,
                    true,
                )
                .await
                .unwrap();
            r.succeeded.then_some(i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(i) = t.await.unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners {winners:?}");
    let owner = pg.get(b"lock", b"owner").await.unwrap().unwrap();
    assert_eq!(owner, format!("w{}", winners[0]).into_bytes());
    // Compare checks and check_and_mutate.
    pg.set(b"n", b"x", b"10", Ttl::Never).await.unwrap();
    let r = pg
        .check_and_set(
            b"n",
            b"x",
            CheckType::IntGreater,
            b"9",
            b"y",
            b"big",
            Ttl::Never,
            false,
        )
        .await
        .unwrap();
    assert!(r.succeeded);
    let r = pg
        .check_and_set(
            b"n",
            b"x",
            CheckType::MatchPrefix,
            b"2",
            b"y",
            b"no",
            Ttl::Never,
            true,
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.check_value.unwrap().1, b("10"));
    let r = pg
        .check_and_mutate(
            b"n",
            b"x",
            CheckType::BytesEqual,
            b"10",
            vec![
                Mutate::Delete { sort_key: b("y") },
                Mutate::Delete { sort_key: b("x") },
            ],
            false,
        )
        .await
        .unwrap();
    assert!(r.succeeded && r.live_before == vec![1, 1]);
    assert_eq!(pg.sortkey_count(b"n").await.unwrap(), 0);
    let bad = pg
        .check_and_set(
            b"n",
            b"x",
            CheckType::IntLess,
            b"abc",
            b"x",
            b"1",
            Ttl::Never,
            false,
        )
        .await
        .unwrap();
    assert!(bad.error.is_some());

    // incr: i64, absent = 0, overflow refused.
    assert_eq!(pg.incr(b"c", b"", 5, None).await.unwrap(), 5);
    assert_eq!(pg.incr(b"c", b"", -7, None).await.unwrap(), -2);
    assert!(pg.incr(b"c", b"", i64::MIN, None).await.is_err());
    assert_eq!(pg.get(b"c", b"").await.unwrap(), Some(b("-2")));
    pg.set(b"c", b"s", b"text", Ttl::Never).await.unwrap();
    assert!(pg.incr(b"c", b"s", 1, None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_match_a_model_across_a_node_kill() {
    let mut c = Cluster::start(3).await;
    let model: Arc<parking_lot::Mutex<Model>> = Arc::default();
    let counters: Arc<parking_lot::Mutex<BTreeMap<Vec<u8>, i64>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Every partition has a leader before the load starts.
    let pg = c.client.pegasus(TABLE);
    for p in 0..PARTITIONS {
        let h = c.key_in(p, "warm");
        pg.set(&h, b"", b"", Ttl::Never).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let (client, model, counters, stop) = (
            Arc::clone(&c.client),
            Arc::clone(&model),
            Arc::clone(&counters),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            let pg = client.pegasus(TABLE);
            // Each writer owns its hash keys, so the model of what it acknowledged is exact
            // (an unacknowledged write leaves its key unknown: it is dropped from the model).
            let mut unknown = std::collections::BTreeSet::new();
            for i in 0u32.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || i > 5_000 {
                    break;
                }
                let h = format!("w{w}-h{}", i % 10).into_bytes();
                let s = format!("s{}", i % 7).into_bytes();
                let v = format!("v{i}").into_bytes();
                if i % 5 == 4 {
                    match pg.del(&h, &s).await {
                        Ok(()) => {
                            model.lock().remove(&(h.clone(), s.clone()));
                        }
                        Err(_) => {
                            unknown.insert((h.clone(), s.clone()));
                        }
                    }
                } else if i % 5 == 3 {
                    let ck = format!("w{w}-ctr").into_bytes();
                    if let Ok(n) = pg.incr(&ck, b"", 1, None).await {
                        let mut c = counters.lock();
                        let e = c.entry(ck).or_insert(0);
                        assert!(n > *e, "incr went back: {n} after {e}");
                        *e = n;
                    }
                } else {
                    match pg.set(&h, &s, &v, Ttl::Never).await {
                        Ok(()) => {
                            model.lock().insert((h.clone(), s.clone()), v);
                            unknown.remove(&(h.clone(), s.clone()));
                        }
                        Err(_) => {
                            unknown.insert((h.clone(), s.clone()));
                        }
                    }
                }
            }
            unknown
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill9(1);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    c.restart(1);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut unknown = std::collections::BTreeSet::new();
    for t in tasks {
        unknown.extend(t.await.unwrap());
    }
    let pg = c.client.pegasus(TABLE);
    let model = model.lock().clone();
    assert!(
        model.len() > 20,
        "too little progress: {} records, {} unknown",
        model.len(),
        unknown.len()
    );
    for w in 0..4u32 {
        for hi in 0..10 {
            let h = format!("w{w}-h{hi}").into_bytes();
            let got = pg.multi_get(&h, vec![]).await.unwrap();
            let got: BTreeMap<_, _> = got.into_iter().map(|r| (r.sort_key, r.value)).collect();
            for si in 0..7 {
                let s = format!("s{si}").into_bytes();
                let k = (h.clone(), s.clone());
                if unknown.contains(&k) {
                    continue;
                }
                assert_eq!(got.get(&s), model.get(&k), "record {k:?}");
            }
        }
    }
    let counters = counters.lock().clone();
    for (k, n) in counters.iter() {
        let v = pg.get(k, b"").await.unwrap().unwrap();
        let v: i64 = String::from_utf8(v).unwrap().parse().unwrap();
        assert!(v >= *n, "counter {k:?}: {v} < acknowledged {n}");
    }
    c.wait_converged(Duration::from_secs(30)).await;
}
