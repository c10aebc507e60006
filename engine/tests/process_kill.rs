//! Process-kill test: a child process writes synced batches and is killed with SIGKILL.
//!
//! The test re-executes its own binary (`current_exe()` with `SILT_KILL_CHILD=<dir>`) running only
//! this test. The child opens the database (small memtable, so flushes and compactions are in
//! flight when the kill lands) and writes batches 0, 1, 2, ... with `sync = true`. Batch `b`
//! puts `width(b)` keys `b<b>-<j>` with values naming `b`, deletes the keys of batch `b - 5`
//! when `b % 7 == 0`, and sets the key `last` to `b`. After each acknowledged write the child
//! prints `ACK <b>` and flushes stdout.
//!
//! The parent reads the acknowledgements, kills the child after a random delay, reopens the
//! database and checks:
//! - every acknowledged batch is present (its keys, unless a later acknowledged batch deleted
//!   them, and `last` ≥ it);
//! - every batch is atomic: for every batch, all of its keys or none, and `last` names exactly the
//!   newest batch present; the deletes done by a present batch are applied;
//! - batches form a prefix: no batch after a missing one.
//!
//! Several cycles on the same database; the next child continues after the newest batch present.
//! `SILT_SOAK=1` runs many more cycles; `SILT_SEED=<n>` fixes the random delays.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::{Db, ReadOptions, WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TEST_NAME: &str = "sigkill_keeps_acknowledged_atomic_batches";

fn width(b: u64) -> u64 {
    2 + b % 6
}

fn bkey(b: u64, j: u64) -> Vec<u8> {
    format!("b{b:08}-{j}").into_bytes()
}

fn bvalue(b: u64, j: u64) -> Vec<u8> {
    let mut v = format!("batch {b} key {j} ").into_bytes();
    v.resize(40 + (b as usize * 13) % 200, b'.');
    v
}

fn deletes_of(b: u64) -> Option<u64> {
    (b.is_multiple_of(7) && b >= 5).then(|| b - 5)
}

fn batch_for(b: u64) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for j in 0..width(b) {
        batch.put(bkey(b, j), bvalue(b, j));
    }
    if let Some(d) = deletes_of(b) {
        for j in 0..width(d) {
            batch.delete(bkey(d, j));
        }
    }
    batch.put(b"last", b.to_string());
    batch
}

/// Child mode: write batches forever (until killed or a generous bound).
fn child(dir: &Path, start: u64) -> ! {
    let db = Db::open(dir, common::process_kill_options()).expect("child: open");
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPEN {start}").unwrap();
    out.flush().unwrap();
    let sync = WriteOptions {
        sync: true,
        ..Default::default()
    };
    for b in start..start + 1_000_000 {
        db.write(batch_for(b), &sync).expect("child: write");
        writeln!(out, "ACK {b}").unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// Checks the database against the batch rules; returns the newest batch present.
fn verify(dir: &Path, acked: Option<u64>, upto: u64) -> Result<Option<u64>, String> {
    let db =
        Db::open(dir, common::process_kill_options()).map_err(|e| format!("reopen failed: {e}"))?;
    let mut contents = BTreeMap::new();
    for item in db.iter(&ReadOptions::default()) {
        let (k, v) = item.map_err(|e| format!("scan failed: {e}"))?;
        contents.insert(k, v);
    }
    let last: Option<u64> = match contents.get(&b"last"[..]) {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("`last` holds garbage {v:?}"))?,
        ),
    };
    if let Some(a) = acked {
        if last.is_none_or(|l| l < a) {
            return Err(format!(
                "batch {a} was acknowledged but `last` = {last:?}: acknowledged writes lost"
            ));
        }
    }
    if let Some(l) = last {
        if l > upto {
            return Err(format!(
                "`last` = {l} but no batch beyond {upto} was ever written"
            ));
        }
    }
    // Every batch up to `last` must be fully present unless deleted by a later present batch;
    // every batch after `last` must be fully absent.
    let newest = last.unwrap_or(0);
    let deleted_by_present: std::collections::HashSet<u64> = match last {
        Some(l) => (0..=l).filter_map(deletes_of).collect(),
        None => Default::default(),
    };
    for b in 0..=upto.max(newest) + 1 {
        let present: Vec<bool> = (0..width(b))
            .map(|j| contents.contains_key(&bkey(b, j)))
            .collect();
        let should = last.is_some_and(|l| b <= l) && !deleted_by_present.contains(&b);
        if present.iter().any(|p| *p != should) {
            return Err(format!(
                "batch {b}: keys present {present:?}, expected all {} (last = {last:?}, \
                 acknowledged up to {acked:?}) — a torn batch, a hole or a resurrected delete",
                if should { "present" } else { "absent" }
            ));
        }
        if should {
            for j in 0..width(b) {
                let got = contents.get(&bkey(b, j)).unwrap();
                if *got != bvalue(b, j) {
                    return Err(format!("batch {b} key {j}: wrong value {got:?}"));
                }
            }
        }
    }
    let expected_keys: usize = match last {
        None => 0,
        Some(l) => {
            1 + (0..=l)
                .filter(|b| !deleted_by_present.contains(b))
                .map(|b| width(b) as usize)
                .sum::<usize>()
        }
    };
    if contents.len() != expected_keys {
        return Err(format!(
            "{} keys in the database, expected {expected_keys}",
            contents.len()
        ));
    }
    db.close().map_err(|e| format!("close failed: {e}"))?;
    Ok(last)
}

#[test]
fn sigkill_keeps_acknowledged_atomic_batches() {
    if let Ok(dir) = std::env::var("SILT_KILL_CHILD") {
        let start = std::env::var("SILT_KILL_START").unwrap().parse().unwrap();
        child(Path::new(&dir), start);
    }
    let soak = common::soak();
    let cycles = if soak { 100 } else { 12 };
    let seed: u64 = std::env::var("SILT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let mut newest: Option<u64> = None;
    let mut total_acked = 0u64;
    for cycle in 0..cycles {
        let start = newest.map_or(0, |n| n + 1);
        let mut child = Command::new(&exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env("SILT_KILL_CHILD", &dir)
            .env("SILT_KILL_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the child to open the database, then let it run a random while.
        let mut acked: Option<u64> = None;
        let open_deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(open_deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!("seed {seed} cycle {cycle}: child did not open the database in 30 s")
                });
            if line.contains("OPEN ") {
                break;
            }
        }
        let delay = Duration::from_millis(rng.gen_range(5..400));
        let kill_at = Instant::now() + delay;
        while let Ok(line) = rx.recv_timeout(kill_at.saturating_duration_since(Instant::now())) {
            if let Some(n) = line.strip_prefix("ACK ") {
                acked = Some(n.parse().unwrap());
            }
            if Instant::now() >= kill_at {
                break;
            }
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().unwrap();
        // Acknowledgements printed before the kill are still in the pipe.
        for line in rx.iter() {
            if let Some(n) = line.strip_prefix("ACK ") {
                acked = Some(n.parse().unwrap());
            }
        }
        reader.join().unwrap();
        assert!(
            !status.success(),
            "seed {seed} cycle {cycle}: the child exited on its own ({status}); was it killed?"
        );
        let upto = acked.map_or(start, |a| a + 1);
        // What must survive: this cycle's acknowledgements, else what the last cycle found.
        match verify(&dir, acked.or(newest), upto) {
            Ok(n) => {
                println!(
                    "cycle {cycle}: killed after {delay:?}; batches {start}..={acked:?} acknowledged, \
                     newest present {n:?}"
                );
                total_acked += acked.map_or(0, |a| a + 1 - start);
                newest = n.or(newest);
            }
            Err(e) => panic!("seed {seed} cycle {cycle} (started at batch {start}): {e}"),
        }
    }
    println!("{cycles} kill cycles, {total_acked} acknowledged batches verified, 0 lost");
}
