//! The meta service on a 3-node cluster, driven through `silt-admin`: `init-meta` creates the
//! replicated catalog partition; `create-table` through it allocates table ids (idempotent for
//! the same shape, refused for another); a 4th node registers and `add-node` rebalances every
//! table onto it; the catalog records each new layout. Then the meta leader is killed with
//! SIGKILL: another node takes over the catalog, which lost nothing, and it drains the node
//! it just added. Every acknowledged write stays readable throughout.

mod common;

use common::*;
use siltdb_server::meta::{MetaRequest, META_TABLE};
use siltdb_server::proto::ClientResponse;
use siltdb_server::{Client, ClientOptions, TableLayout};
use std::time::{Duration, Instant};

fn admin(addr: &str, args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = silt_admin(addr, args);
    (ok, format!("{stdout}{stderr}"))
}

fn admin_ok(addr: &str, args: &[&str]) -> String {
    let (ok, text) = admin(addr, args);
    assert!(ok, "silt-admin {args:?} failed: {text}");
    text
}

async fn catalog(client: &Client) -> siltdb_server::meta::Catalog {
    match client
        .meta(MetaRequest::Catalog, Duration::from_secs(10))
        .await
        .expect("catalog")
    {
        ClientResponse::Catalog(c) => c,
        other => panic!("{other:?}"),
    }
}

fn table<'a>(c: &'a siltdb_server::meta::Catalog, name: &str) -> &'a TableLayout {
    c.tables
        .iter()
        .find(|t| t.name == name)
        .expect("table in catalog")
}

async fn meta_leader(c: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for id in c.live() {
            if let Ok(s) = c.client.stats(&c.addr(id)).await {
                let led = s
                    .partitions
                    .iter()
                    .any(|p| p.table == META_TABLE && p.leader == Some(id));
                if led {
                    return id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no meta leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_creates_tables_and_moves_replicas_across_a_meta_failover() {
    let mut c = Cluster::start_bare(3, &[]);
    let a1 = c.addr(1);
    c.init_meta();
    // Tables through the catalog: ids allocated, idempotent, a different shape refused.
    let t = admin_ok(&a1, &["create-table", "--name", TABLE, "--partitions", "8"]);
    assert!(t.contains("app_id=1"), "{t}");
    let u = admin_ok(
        &c.addr(2),
        &["create-table", "--name", "u", "--partitions", "4"],
    );
    assert!(u.contains("app_id=2"), "{u}");
    let again = admin_ok(&a1, &["create-table", "--name", TABLE, "--partitions", "8"]);
    assert!(again.contains("app_id=1"), "{again}");
    let (ok, text) = admin(&a1, &["create-table", "--name", TABLE, "--partitions", "4"]);
    assert!(!ok && text.contains("already exists"), "{text}");
    let (ok, text) = admin(
        &a1,
        &["create-table", "--name", "__meta", "--partitions", "1"],
    );
    assert!(!ok, "{text}");

    let client = std::sync::Arc::clone(&c.client);
    for i in 0..300u32 {
        let k = format!("k{i:05}");
        client.put(TABLE, k.as_bytes(), k.as_bytes()).await.unwrap();
        client.put("u", k.as_bytes(), b"u").await.unwrap();
    }

    // A follower cluster; the duplication is recorded in the catalog and survives the moves
    // below (replicas that move in get it from the catalog).
    let f = Cluster::start_named(1, TABLE, &[]).await;
    let text = admin_ok(
        &a1,
        &[
            "add-dup",
            "--table",
            TABLE,
            "--remote-seeds",
            &f.addr(1),
            "--remote-table",
            TABLE,
        ],
    );
    assert!(text.contains("via the meta service"), "{text}");
    let cat = catalog(&client).await;
    assert_eq!(cat.duplications.len(), 1, "{cat:?}");
    let dup_id = cat.duplications[0].dup_id.to_string();

    // A 4th node registers and takes its share of every table.
    let n4 = c.start_extra(4);
    let four = format!("4={}", n4.addr);
    admin_ok(&a1, &["register-node", "--node", &four]);
    let text = admin_ok(&a1, &["add-node", "--node", "4"]);
    assert!(text.contains("2 tables"), "{text}");
    let cat = catalog(&client).await;
    assert_eq!(cat.nodes.len(), 4);
    let (t1, u1) = (table(&cat, TABLE).clone(), table(&cat, "u").clone());
    assert!(t1.epoch > 0 && u1.epoch > 0);
    let share = |l: &TableLayout, id| siltdb_server::membership::replica_count(l, id);
    assert_eq!(share(&t1, 4), 6, "{t1:?}");
    assert_eq!(share(&u1, 4), 3, "{u1:?}");
    let listed = admin_ok(&c.addr(3), &["catalog"]);
    assert!(
        listed.contains("node 4") && listed.contains(&format!("epoch={}", t1.epoch)),
        "{listed}"
    );

    // The meta leader dies; the catalog survives on the other two and keeps serving.
    let leader = meta_leader(&c).await;
    c.kill9(leader);
    let survivor = c.live().into_iter().find(|&id| id != 4).unwrap();
    let mut o = ClientOptions::new(vec![c.addr(survivor)]);
    o.deadline = Duration::from_secs(60);
    let fresh = Client::new(o);
    let cat = catalog(&fresh).await;
    assert_eq!(table(&cat, TABLE), &t1);
    assert_eq!(cat.nodes.len(), 4);
    // Restart the old leader so every group has its quorum back, then drain node 4.
    c.restart(leader);
    let text = admin_ok(&c.addr(survivor), &["drain-node", "--node", "4"]);
    assert!(text.contains("drained of 2 tables"), "{text}");
    let cat = catalog(&fresh).await;
    let t2 = table(&cat, TABLE);
    assert_eq!(share(t2, 4), 0);
    assert!(t2.epoch > t1.epoch);
    assert!(c.stats(4).await.partitions.is_empty());
    admin_ok(&c.addr(survivor), &["tables"]);
    assert!(matches!(
        fresh
            .meta(MetaRequest::ReconcileTables, Duration::from_secs(30))
            .await
            .unwrap(),
        ClientResponse::Ok
    ));
    for i in 0..300u32 {
        let k = format!("k{i:05}");
        assert_eq!(
            fresh.get(TABLE, k.as_bytes()).await.unwrap(),
            Some(k.clone().into_bytes())
        );
        assert_eq!(
            fresh.get("u", k.as_bytes()).await.unwrap().as_deref(),
            Some(&b"u"[..])
        );
    }
    // Writes after all the moves still reach the follower, which converges to the source.
    for i in 0..100u32 {
        let k = format!("late{i:04}");
        fresh.put(TABLE, k.as_bytes(), b"late").await.unwrap();
    }
    fresh.delete(TABLE, b"k00007").await.unwrap();
    let want = fresh.scan(TABLE, b"", None, usize::MAX).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = f.client.scan(TABLE, b"", None, usize::MAX).await.unwrap();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "follower has {} rows, source {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Node 4 leaves the cluster for good: out of every layout and the registry.
    let (ok, text) = admin(&c.addr(survivor), &["remove-node", "--node", "1"]);
    assert!(!ok && text.contains("meta partition"), "{text}");
    let text = admin_ok(&c.addr(survivor), &["remove-node", "--node", "4"]);
    assert!(text.contains("node 4 removed"), "{text}");
    let cat = catalog(&fresh).await;
    assert!(cat.nodes.iter().all(|n| n.id != 4), "{cat:?}");
    for t in &cat.tables {
        assert!(t.addr_of(4).is_none(), "{t:?}");
    }
    let text = admin_ok(
        &c.addr(survivor),
        &["remove-dup", "--table", TABLE, "--id", &dup_id],
    );
    assert!(text.contains("removed duplication"), "{text}");
    assert!(catalog(&fresh).await.duplications.is_empty());
}
