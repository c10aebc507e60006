//! `silt-admin put/get/del/scan` through the binaries: the string form (`KEY`), the
//! `--hash-key`/`--sort-key` form, the exit status of a missing key, scans with bounds and a
//! limit, TTLs, and bad input.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_commands_through_the_binary() {
    let c = Cluster::start(1).await;
    let a = c.addr(1);
    let run = |args: &[&str]| silt_admin(&a, args);
    for i in 0..5 {
        let (ok, _, err) = run(&["put", "--table", TABLE, &format!("k{i}"), &format!("v{i}")]);
        assert!(ok, "{err}");
    }
    let (ok, out, _) = run(&["get", "--table", TABLE, "k3"]);
    assert!(ok);
    assert_eq!(out, "v3\n");
    let (ok, out, err) = run(&["get", "--table", TABLE, "nope"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("not found"), "{err}");
    // The exit status of a missing key is exactly 1.
    let status = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_silt-admin"))
            .args(["--addr", &a, "get", "--table", TABLE, "nope"])
            .output()
            .unwrap()
            .status
    });
    assert_eq!(status.code(), Some(1));

    let (ok, _, _) = run(&["del", "--table", TABLE, "k1"]);
    assert!(ok);
    assert!(!run(&["get", "--table", TABLE, "k1"]).0);
    let (ok, out, _) = run(&["scan", "--table", TABLE]);
    assert!(ok);
    assert_eq!(out, "k0\tv0\nk2\tv2\nk3\tv3\nk4\tv4\n");
    let (_, out, _) = run(&["scan", "--table", TABLE, "--from", "k2", "--to", "k4"]);
    assert_eq!(out, "k2\tv2\nk3\tv3\n");
    let (_, out, _) = run(&["scan", "--table", TABLE, "--limit", "1", "--from", "k3"]);
    assert_eq!(out, "k3\tv3\n");

    // The hash-key / sort-key form, and the string form sees it as (KEY, "").
    for s in ["b", "a", "c"] {
        let v = format!("val-{s}");
        let (ok, _, err) = run(&[
            "put",
            "--table",
            TABLE,
            "--hash-key",
            "user",
            "--sort-key",
            s,
            &v,
        ]);
        assert!(ok, "{err}");
    }
    let (_, out, _) = run(&[
        "get",
        "--table",
        TABLE,
        "--hash-key",
        "user",
        "--sort-key",
        "a",
    ]);
    assert_eq!(out, "val-a\n");
    let (_, out, _) = run(&["scan", "--table", TABLE, "--hash-key", "user"]);
    assert_eq!(out, "a\tval-a\nb\tval-b\nc\tval-c\n");
    let (_, out, _) = run(&[
        "scan",
        "--table",
        TABLE,
        "--hash-key",
        "user",
        "--from",
        "b",
        "--limit",
        "1",
    ]);
    assert_eq!(out, "b\tval-b\n");
    run(&[
        "del",
        "--table",
        TABLE,
        "--hash-key",
        "user",
        "--sort-key",
        "b",
    ]);
    let (_, out, _) = run(&["scan", "--table", TABLE, "--hash-key", "user"]);
    assert_eq!(out, "a\tval-a\nc\tval-c\n");
    run(&["put", "--table", TABLE, "--hash-key", "k0", "v-hash-form"]);
    let (_, out, _) = run(&["get", "--table", TABLE, "k0"]);
    assert_eq!(out, "v-hash-form\n");
    let c2 = c.client.pegasus(TABLE);
    assert_eq!(
        c2.get(b"user", b"c").await.unwrap(),
        Some(b"val-c".to_vec())
    );

    // TTL.
    let (ok, _, _) = run(&["put", "--table", TABLE, "--ttl", "1", "short", "x"]);
    assert!(ok);
    assert!(run(&["get", "--table", TABLE, "short"]).0);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!run(&["get", "--table", TABLE, "short"]).0);

    // Bad input: a message and a failure.
    let (ok, _, err) = run(&["put", "--table", TABLE, "onlykey"]);
    assert!(!ok && !err.is_empty());
    let (ok, _, err) = run(&["get", "--table", "missing", "k0"]);
    assert!(!ok && err.contains("missing"), "{err}");
    let (ok, _, _) = run(&["get", "--table", TABLE, "--sort-key", "x", "k0"]);
    assert!(!ok);
}
