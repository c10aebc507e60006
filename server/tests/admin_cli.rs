//! `silt-admin` against a 3-node cluster: create a second table, list tables, nodes and
//! partitions (every partition led, every node up), and see a killed node reported down.

mod common;

use common::*;

fn admin(c: &Cluster, args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = silt_admin(&c.addr(1), args);
    if !ok {
        eprintln!("{stderr}");
    }
    (ok, stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_and_lists_tables_nodes_and_partitions() {
    let mut c = Cluster::start(3).await;
    let nodes: Vec<String> = c
        .procs
        .iter()
        .map(|p| format!("{}={}", p.id, p.addr))
        .collect();
    let mut args = vec![
        "create-table",
        "--name",
        "u",
        "--app-id",
        "2",
        "--partitions",
        "4",
    ];
    for n in &nodes {
        args.extend(["--node", n.as_str()]);
    }
    let (ok, out) = admin(&c, &args);
    assert!(ok && out.contains("created table u"), "{out}");
    // Bad input is refused with a non-zero exit.
    assert!(
        !admin(
            &c,
            &[
                "create-table",
                "--name",
                "v",
                "--app-id",
                "3",
                "--partitions",
                "4",
                "--node",
                "x"
            ]
        )
        .0
    );

    let (ok, out) = admin(&c, &["--json", "tables"]);
    assert!(ok);
    let tables: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["t", "u"]);

    // A write makes sure every partition of u elected a leader; then all are listed as led.
    for p in 0..4u32 {
        let k = (0u64..)
            .map(|i| format!("u-{i}").into_bytes())
            .find(|k| siltdb_server::layout::partition_of(k, 4) == p)
            .unwrap();
        c.client.put("u", &k, b"1").await.unwrap();
    }
    let (ok, out) = admin(&c, &["partitions", "--table", "u"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for l in &lines {
        assert!(
            !l.contains("leader=null") && l.matches("applied=").count() == 3,
            "{l}"
        );
    }
    let (ok, out) = admin(&c, &["nodes"]);
    assert!(ok);
    assert_eq!(
        out.lines().filter(|l| l.contains(" up ")).count(),
        3,
        "{out}"
    );

    c.kill9(3);
    let (ok, out) = admin(&c, &["nodes"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("node 3 ") && l.ends_with("down")),
        "{out}"
    );
    let (ok, out) = admin(&c, &["stats"]);
    assert!(ok && out.contains("\"node_id\": 1"), "{out}");
    let (ok, out) = admin(&c, &["checkpoint", "--table", "u"]);
    assert!(ok && out.contains("checkpointed"), "{out}");
    for id in c.live() {
        assert!(c.terminate(id));
    }
}
