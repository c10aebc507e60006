//! Background-error test: a filesystem fault during flush/compaction while writers are stalled.
//!
//! Options are tuned to stall (4 KiB memtable, one immutable memtable, L0 stop at 3). Three
//! writer threads write as fast as they can and record every acknowledged write. Once writes are
//! stalled, the `FaultFs` is armed to fail every `create` (new SST or WAL), every `append` after
//! a few more, or every `sync` — so the flush or compaction that would relieve the stall fails.
//! Checks:
//! - every writer wakes with an error (no hang: each thread is joined with a 30 s bound by
//!   polling `is_finished`), and later writes fail too (the database is read-only);
//! - reads still work and return the acknowledged values;
//! - `siltdb.background-error` names the error;
//! - after `clear_faults()` (no power loss: the process "restarts"), reopening recovers every
//!   acknowledged write.

mod common;

use siltdb::fs::{FaultFs, FaultKind, IoOp};
use siltdb::{Db, ReadOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn value(t: usize, i: u64) -> Vec<u8> {
    let mut v = format!("t{t}-{i}-").into_bytes();
    v.resize(60 + (i as usize % 50), b'v');
    v
}

type Acked = Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>;

fn wait_all(handles: Vec<std::thread::JoinHandle<Result<u64, String>>>, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !handles.iter().all(|h| h.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {} writers still blocked 30 s after the background error: a hang",
            handles.iter().filter(|h| !h.is_finished()).count(),
            handles.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    handles
        .into_iter()
        .map(|h| match h.join().unwrap() {
            Ok(n) => panic!("{what}: a writer stopped without an error after {n} writes"),
            Err(e) => e,
        })
        .collect()
}

fn run_case(op: IoOp, nth: u64) {
    let what = format!("fail_from_nth({op:?}, {nth})");
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let db = Arc::new(Db::open(tmp.path(), common::background_error_options(&fs)).unwrap());
    let acked: Acked = Arc::default();
    let armed = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..3usize {
        let (db, acked, armed) = (Arc::clone(&db), Arc::clone(&acked), Arc::clone(&armed));
        handles.push(std::thread::spawn(move || -> Result<u64, String> {
            let mut i = 0u64;
            loop {
                let k = format!("t{t}-{i:08}").into_bytes();
                let v = value(t, i);
                match db.put(&k, &v) {
                    Ok(()) => {
                        acked.lock().unwrap().insert(k, v);
                    }
                    Err(e) => {
                        return Err(format!(
                            "{e} (after {i} writes, armed {})",
                            armed.load(Ordering::SeqCst)
                        ))
                    }
                }
                i += 1;
            }
        }));
    }
    // Wait until writes are stalled (or a bound), then break the filesystem.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = db.stats().stall;
        if s.current_cause.is_some() && s.stops > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: writes never stalled: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let acked_before_fault = acked.lock().unwrap().len();
    armed.store(true, Ordering::SeqCst);
    fs.fail_from_nth(op, nth, FaultKind::Eio);
    let errors = wait_all(handles, &what);
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    println!(
        "{what}: {} acknowledged ({acked_before_fault} before the fault); first writer error: {}",
        acked.len(),
        errors[0]
    );
    let bg = db.property("siltdb.background-error").unwrap();
    assert!(
        !bg.is_empty(),
        "{what}: siltdb.background-error is empty although writers failed with {errors:?}"
    );
    assert!(
        bg.contains("injected"),
        "{what}: the background error should name the injected fault: {bg}"
    );
    // Writes keep failing; reads keep working.
    assert!(
        db.put(b"after", b"x").is_err(),
        "{what}: write accepted after the background error"
    );
    for (k, v) in acked.iter().step_by(5) {
        let got = db
            .get(k)
            .unwrap_or_else(|e| panic!("{what}: read failed after the background error: {e}"));
        assert_eq!(
            got.as_deref(),
            Some(&v[..]),
            "{what}: key {:?}",
            String::from_utf8_lossy(k)
        );
    }
    let scanned = db
        .iter(&ReadOptions::default())
        .filter(|r| r.is_ok())
        .count();
    assert!(
        scanned >= acked.len(),
        "{what}: scan saw {scanned} < {} keys",
        acked.len()
    );
    let db = Arc::into_inner(db).unwrap();
    let close = db.close();
    println!("{what}: close after the background error: {close:?}");
    drop(db);

    // Restart: the faults are gone, nothing was lost from the OS's view.
    fs.clear_faults();
    let db = Db::open(tmp.path(), common::background_error_options(&fs))
        .unwrap_or_else(|e| panic!("{what}: reopen after clearing faults failed: {e}"));
    let mut missing = Vec::new();
    for (k, v) in &acked {
        match db.get(k).unwrap() {
            Some(got) if got == *v => {}
            other => missing.push((
                String::from_utf8_lossy(k).into_owned(),
                other.map(|o| o.len()),
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "{what}: {} of {} acknowledged writes not recovered, first: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // The database is healthy again.
    db.put(b"after-reopen", b"ok").unwrap();
    db.flush().unwrap();
    assert_eq!(db.property("siltdb.background-error").unwrap(), "");
    db.close().unwrap();
}

// Several `nth` values per kind so the fault lands in different files (WAL, SST from a flush
// or a compaction, MANIFEST, CURRENT) — the background error names which.

#[test]
fn create_fails_during_flush_or_compaction() {
    for nth in 1..=8 {
        run_case(IoOp::Create, nth);
    }
}

#[test]
fn append_fails_during_flush_or_compaction() {
    for nth in [1, 3, 7, 12, 20] {
        run_case(IoOp::Append, nth);
    }
}

#[test]
fn sync_fails_during_flush_or_compaction() {
    for nth in 1..=6 {
        run_case(IoOp::Sync, nth);
    }
}

#[test]
fn sync_dir_fails_during_flush_or_compaction() {
    for nth in 1..=2 {
        run_case(IoOp::SyncDir, nth);
    }
}
