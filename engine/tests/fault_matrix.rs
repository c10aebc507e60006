//! Fault-injection matrix: every filesystem call kind × {EIO, ENOSPC} × the N-th call.
//!
//! One fixed workload runs against a database on a [`FaultFs`]: open, puts with `sync` on and
//! off, atomic batches (puts, deletes, a range delete), point and range deletes, a manual flush,
//! background compactions (4 KiB memtables, L0 trigger 2) and `compact_range`, a checkpoint
//! (opened and verified on the spot), and ingestion of `SstWriter` files (one copied, one moved
//! in by hard link). The clean run records `op_count(op)` for every [`IoOp`]. Then, for every op
//! kind and fault kind, `fail_nth(op, n, kind)` is armed before the open for N spread across
//! `1..=count` (every N when the count is small, 8 evenly spaced N otherwise, every N under
//! `SILT_SOAK=1`), and the workload runs again. Each case checks:
//! - no panic (anywhere in the process: a panic hook counts them, background threads included)
//!   and no hang (the case runs in a thread bounded at 60 s);
//! - every successful read returns a value some write could have left there;
//! - if the database turned read-only, `siltdb.background-error` names the injected fault and
//!   writes fail;
//! - after dropping the db and `clear_faults()`, a reopen with the same filesystem succeeds and
//!   every acknowledged write is there (clean variant); or after `power_loss()` every write made
//!   durable (acknowledged `sync = true` write, flush, compaction, checkpoint, ingestion) is there
//!   (power-loss variant). A key touched by a failed write may hold its old or its new value.
//! - the reopened database accepts writes and flushes.
//!
//! The test prints a table: op kind × fault kind → cases, cases where the fault fired, cases
//! where an operation surfaced an error, cases that ended read-only, verification failures.
//! `SILT_VERBOSE=1` prints every case's first error.

mod common;

use siltdb::fs::{FaultFs, FaultKind, IoOp};
use siltdb::{
    Db, IngestOptions, Options, ReadOptions, SstWriter, SstWriterOptions, WriteBatch, WriteOptions,
};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

const NKEYS: usize = 200;
const CASE_LIMIT: Duration = Duration::from_secs(60);

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Counts every panic in the process (a background thread's panic is otherwise swallowed by the
/// join in `Db::drop`).
fn install_panic_counter() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            prev(info);
        }));
    });
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

fn value(step: usize, i: usize) -> Vec<u8> {
    let mut v = format!("v{step}-{i}-").into_bytes();
    v.resize(60 + (i * 7 + step) % 90, b'a' + (step % 26) as u8);
    v
}

/// What each key may hold: after a clean reopen, and after a power loss.
#[derive(Clone)]
struct Model {
    clean: Vec<BTreeSet<Option<Vec<u8>>>>,
    durable: Vec<BTreeSet<Option<Vec<u8>>>>,
}

/// One key's change within an operation.
type Change = (usize, Option<Vec<u8>>);

impl Model {
    fn new() -> Self {
        let empty: BTreeSet<_> = [None].into_iter().collect();
        Model {
            clean: vec![empty.clone(); NKEYS],
            durable: vec![empty; NKEYS],
        }
    }

    /// Applies an operation's changes: acknowledged or not, durable on return or not.
    fn apply(&mut self, changes: &[Change], acked: bool, durable: bool) {
        for (k, v) in changes {
            if acked {
                self.clean[*k] = [v.clone()].into_iter().collect();
                if durable {
                    self.durable[*k] = self.clean[*k].clone();
                } else {
                    self.durable[*k].insert(v.clone());
                }
            } else {
                self.clean[*k].insert(v.clone());
                self.durable[*k].insert(v.clone());
            }
        }
    }

    /// Everything acknowledged so far is durable (an acknowledged sync write or flush).
    fn barrier(&mut self) {
        self.durable = self.clean.clone();
    }
}

/// Counters for one case.
#[derive(Default, Debug)]
struct Outcome {
    surfaced_error: bool,
    read_only: bool,
    fired: bool,
    first_error: String,
    failures: Vec<String>,
}

struct Workload<'a> {
    fs: &'a FaultFs,
    dir: &'a Path,
    scratch: &'a Path,
    model: Model,
    out: Outcome,
    step: usize,
}

fn sync_opts(sync: bool) -> WriteOptions {
    WriteOptions {
        sync,
        ..Default::default()
    }
}

impl Workload<'_> {
    fn note<T>(&mut self, what: &str, r: &siltdb::Result<T>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => {
                if !self.out.surfaced_error {
                    self.out.first_error = format!("{what}: {e}");
                }
                self.out.surfaced_error = true;
                false
            }
        }
    }

    fn fail(&mut self, msg: String) {
        self.out.failures.push(msg);
    }

    fn write(&mut self, db: &Db, batch: WriteBatch, changes: Vec<Change>, sync: bool) {
        self.step += 1;
        let r = db.write(batch, &sync_opts(sync));
        let ok = self.note("write", &r);
        self.model.apply(&changes, ok, false);
        if ok && sync {
            self.model.barrier();
        }
    }

    fn put(&mut self, db: &Db, i: usize, sync: bool) {
        let v = value(self.step, i);
        let mut b = WriteBatch::new();
        b.put(key(i), &v);
        self.write(db, b, vec![(i, Some(v))], sync);
    }

    fn delete(&mut self, db: &Db, i: usize, sync: bool) {
        let mut b = WriteBatch::new();
        b.delete(key(i));
        self.write(db, b, vec![(i, None)], sync);
    }

    fn delete_range(&mut self, db: &Db, lo: usize, hi: usize, sync: bool) {
        let mut b = WriteBatch::new();
        b.delete_range(key(lo), key(hi));
        self.write(db, b, (lo..hi).map(|i| (i, None)).collect(), sync);
    }

    fn batch(&mut self, db: &Db, seed: usize, sync: bool) {
        let mut b = WriteBatch::new();
        let mut changes = Vec::new();
        let lo = (seed * 53) % (NKEYS - 10);
        b.delete_range(key(lo), key(lo + 4));
        changes.extend((lo..lo + 4).map(|i| (i, None)));
        for j in 0..5 {
            let i = (seed * 31 + j * 17) % NKEYS;
            let v = value(self.step, i);
            b.put(key(i), &v);
            changes.push((i, Some(v)));
        }
        for j in 0..2 {
            let i = (seed * 11 + j * 41 + 3) % NKEYS;
            b.delete(key(i));
            changes.push((i, None));
        }
        self.write(db, b, changes, sync);
    }

    /// A successful read must return a value some write may have left.
    fn check_reads(&mut self, db: &Db, from: usize) {
        for j in 0..8 {
            let i = (from + j * 23) % NKEYS;
            let r = db.get(key(i));
            if !self.note("get", &r) {
                continue;
            }
            if let Ok(got) = r {
                if !self.model.clean[i].contains(&got) {
                    let msg = format!(
                        "get(k{i:04}) = {:?}, not one of the {} possible values",
                        got.as_ref()
                            .map(|v| String::from_utf8_lossy(&v[..12]).into_owned()),
                        self.model.clean[i].len()
                    );
                    self.fail(msg);
                }
            }
        }
    }

    fn flush(&mut self, db: &Db) {
        let r = db.flush();
        if self.note("flush", &r) {
            self.model.barrier();
        }
    }

    fn compact(&mut self, db: &Db, range: Option<(usize, usize)>) {
        let r = match range {
            None => db.compact_range(None::<&[u8]>, None::<&[u8]>),
            Some((lo, hi)) => db.compact_range(Some(key(lo)), Some(key(hi))),
        };
        if self.note("compact_range", &r) {
            self.model.barrier();
        }
    }

    fn checkpoint(&mut self, db: &Db) {
        let dir = self.scratch.join(format!("ckpt-{}", self.step));
        let r = db.checkpoint(&dir);
        if self.note("checkpoint", &r) {
            self.model.barrier();
        } else if !dir.exists() {
            return;
        }
        // The checkpoint (or one whose final directory sync failed after the rename) opens on
        // its own and holds exactly the acknowledged state.
        let expect = self.model.clean.clone();
        match Db::open(&dir, Options::default()) {
            Err(e) => self.fail(format!("checkpoint {} does not open: {e}", dir.display())),
            Ok(c) => {
                for (i, allowed) in expect.iter().enumerate() {
                    match c.get(key(i)) {
                        Ok(got) if allowed.contains(&got) => {}
                        other => {
                            self.fail(format!(
                                "checkpoint: k{i:04} = {:?}, expected one of {} values",
                                other.map(|o| o.map(|v| v.len())),
                                allowed.len()
                            ));
                            break;
                        }
                    }
                }
                let _ = c.close();
            }
        }
    }

    fn ingest(&mut self, db: &Db, seed: usize, move_files: bool) {
        self.step += 1;
        let path = self.scratch.join(format!("ingest-{}.sst", self.step));
        let wopts = SstWriterOptions {
            fs: Arc::new(self.fs.clone()),
            block_size_bytes: 512,
            ..Default::default()
        };
        let lo = (seed * 61) % (NKEYS - 30);
        let mut changes = Vec::new();
        let built = (|| -> siltdb::Result<()> {
            let mut w = SstWriter::create(&path, &wopts)?;
            for i in (lo..lo + 30).step_by(2) {
                if i % 10 == 4 {
                    w.delete(key(i))?;
                    changes.push((i, None));
                } else {
                    let v = value(self.step, i);
                    w.put(key(i), &v)?;
                    changes.push((i, Some(v)));
                }
            }
            w.finish()?;
            Ok(())
        })();
        if !self.note("SstWriter", &built) {
            return;
        }
        let r = db.ingest(
            &[&path],
            &IngestOptions {
                move_files,
                timeout: Duration::from_secs(20),
                ..Default::default()
            },
        );
        let ok = self.note("ingest", &r);
        // An acknowledged ingestion is durable (the manifest edit was synced).
        self.model.apply(&changes, ok, true);
    }

    fn run(&mut self) {
        let fs = self.fs;
        let db = match Db::open(self.dir, common::fault_matrix_options(fs)) {
            Ok(db) => db,
            Err(e) => {
                self.note::<()>("open", &Err(e));
                return;
            }
        };
        for round in 0..6usize {
            for j in 0..18 {
                let i = (round * 37 + j * 7) % NKEYS;
                self.put(&db, i, false);
            }
            self.batch(&db, round, round % 2 == 0);
            self.batch(&db, round + 7, true);
            for j in 0..3 {
                self.delete(&db, (round * 13 + j * 29) % NKEYS, false);
            }
            let lo = (round * 43) % (NKEYS - 8);
            self.delete_range(&db, lo, lo + 6, false);
            self.put(&db, (round * 19) % NKEYS, true);
            self.check_reads(&db, round * 5);
            match round {
                1 => self.flush(&db),
                2 => self.compact(&db, None),
                3 => self.checkpoint(&db),
                4 => self.ingest(&db, round, false),
                5 => {
                    self.ingest(&db, round, true);
                    self.compact(&db, Some((20, 120)));
                }
                _ => {}
            }
        }
        // A full scan must agree with the model wherever it succeeds.
        let mut seen = BTreeSet::new();
        let mut complete = true;
        for item in db.iter(&ReadOptions::default()) {
            match item {
                Ok((k, v)) => {
                    let i: usize = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
                    seen.insert(i);
                    if !self.model.clean[i].contains(&Some(v.to_vec())) {
                        self.fail(format!("scan: k{i:04} holds an impossible value"));
                    }
                }
                Err(e) => {
                    self.note::<()>("scan", &Err(e));
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            if let Some(i) =
                (0..NKEYS).find(|i| !seen.contains(i) && !self.model.clean[*i].contains(&None))
            {
                self.fail(format!("scan: k{i:04} missing although acknowledged"));
            }
        }
        let bg = db.property("siltdb.background-error").unwrap_or_default();
        if !bg.is_empty() {
            self.out.read_only = true;
            if !bg.contains("injected") {
                self.fail(format!("background error does not name the fault: {bg}"));
            }
            if db.put(b"k9999", b"x").is_ok() {
                self.fail(format!("a write succeeded while read-only ({bg})"));
            }
        }
        let r = db.close();
        if self.note("close", &r) {
            self.model.barrier();
        }
    }
}

/// Reopens after the fault (faults cleared, power lost or not) and checks what must be there.
fn verify_reopen(fs: &FaultFs, dir: &Path, expect: &[BTreeSet<Option<Vec<u8>>>]) -> Vec<String> {
    let mut failures = Vec::new();
    let db = match Db::open(dir, common::fault_matrix_options(fs)) {
        Ok(db) => db,
        Err(e) => return vec![format!("reopen after the fault failed: {e}")],
    };
    for (i, allowed) in expect.iter().enumerate() {
        match db.get(key(i)) {
            Ok(got) if allowed.contains(&got) => {}
            Ok(got) => failures.push(format!(
                "k{i:04} = {:?}, expected one of {:?}",
                got.map(|v| String::from_utf8_lossy(&v[..12]).into_owned()),
                allowed
                    .iter()
                    .map(|v| v
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(&v[..12]).into_owned()))
                    .collect::<Vec<_>>()
            )),
            Err(e) => failures.push(format!("get(k{i:04}) after reopen failed: {e}")),
        }
        if failures.len() >= 5 {
            break;
        }
    }
    let healthy = db
        .put(b"k9999", b"after")
        .and_then(|()| db.flush())
        .and_then(|()| db.get(b"k9999"));
    match healthy {
        Ok(Some(v)) if v == b"after" => {}
        other => failures.push(format!("reopened db not writable: {other:?}")),
    }
    if let Err(e) = db.close() {
        failures.push(format!("close after reopen failed: {e}"));
    }
    failures
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// Drop, clear faults, reopen: every acknowledged write survives.
    Clean,
    /// Drop, power loss, reopen: every durable write survives.
    PowerLoss,
}

/// Runs the workload with an optional fault; returns the outcome and the filesystem's counts.
fn run_case(fault: Option<(IoOp, u64, FaultKind)>, variant: Variant) -> (Outcome, Vec<u64>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let fs = FaultFs::new();
    let fs2 = fs.clone();
    let panics_before = PANICS.load(Ordering::SeqCst);
    let handle = std::thread::spawn(move || {
        if let Some((op, n, kind)) = fault {
            fs2.fail_nth(op, n, kind);
        }
        let mut w = Workload {
            fs: &fs2,
            dir: &dir,
            scratch: &scratch,
            model: Model::new(),
            out: Outcome::default(),
            step: 0,
        };
        w.run();
        let counts: Vec<u64> = IoOp::ALL.iter().map(|op| fs2.op_count(*op)).collect();
        w.out.fired = fs2.injected() > 0;
        let mut out = w.out;
        let expect = match variant {
            Variant::Clean => {
                fs2.clear_faults();
                w.model.clean
            }
            Variant::PowerLoss => {
                fs2.power_loss();
                w.model.durable
            }
        };
        out.failures.extend(verify_reopen(&fs2, &dir, &expect));
        (out, counts)
    });
    let deadline = Instant::now() + CASE_LIMIT;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            panic!("{fault:?} {variant:?}: the case did not finish in {CASE_LIMIT:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (mut out, counts) = match handle.join() {
        Ok(r) => r,
        Err(p) => {
            let msg = common::panic_message(p.as_ref());
            let out = Outcome {
                failures: vec![format!("panic: {msg}")],
                ..Default::default()
            };
            (out, Vec::new())
        }
    };
    let panics = PANICS.load(Ordering::SeqCst) - panics_before;
    if panics > 0 && out.failures.iter().all(|f| !f.starts_with("panic")) {
        out.failures
            .push(format!("{panics} panic(s) in the process during the case"));
    }
    drop(fs);
    drop(tmp);
    (out, counts)
}

/// N values to try for an op seen `count` times in the clean run.
fn positions(count: u64, soak: bool) -> Vec<u64> {
    const SPREAD: u64 = 8;
    if count == 0 {
        return Vec::new();
    }
    if soak || count <= SPREAD {
        return (1..=count).collect();
    }
    let mut v: Vec<u64> = (0..SPREAD)
        .map(|j| 1 + j * (count - 1) / (SPREAD - 1))
        .collect();
    v.dedup();
    v
}

/// The call site an error names (by the file in its message and the operation that returned it).
fn site(first_error: &str) -> &'static str {
    let (what, msg) = first_error.split_once(": ").unwrap_or(("", first_error));
    if what == "open" {
        "open"
    } else if msg.contains("/scratch/ingest-") {
        "SstWriter/ingest source"
    } else if msg.contains("/scratch") || what == "checkpoint" && !msg.contains("/db") {
        "checkpoint"
    } else if msg.contains("MANIFEST") {
        "manifest"
    } else if msg.contains("CURRENT") {
        "CURRENT"
    } else if msg.contains(".log") {
        "WAL"
    } else if msg.contains(".sst") && what == "ingest" && !msg.contains("flush failed") {
        "ingest (placing the file)"
    } else if msg.contains(".sst") {
        "SST (flush/compaction)"
    } else if msg.contains("/db") {
        "db directory (sync_dir)"
    } else {
        "other"
    }
}

#[derive(Default)]
struct Row {
    cases: usize,
    fired: usize,
    errors: usize,
    read_only: usize,
    failures: usize,
}

fn matrix(variant: Variant) {
    install_panic_counter();
    let soak = common::soak();
    let verbose = std::env::var("SILT_VERBOSE").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let (clean, counts) = run_case(None, variant);
    assert!(
        clean.failures.is_empty() && !clean.surfaced_error && !clean.read_only,
        "{variant:?}: the workload fails without faults: {clean:?}"
    );
    let mut report = String::new();
    let _ = writeln!(
        report,
        "fault matrix ({variant:?} reopen{}), clean-run op counts: {}",
        if soak { ", SILT_SOAK=1: every N" } else { "" },
        IoOp::ALL
            .iter()
            .zip(&counts)
            .map(|(op, c)| format!("{op:?}={c}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        report,
        "{:<10} {:<7} {:>6} {:>6} {:>7} {:>10} {:>9}",
        "op", "fault", "cases", "fired", "errors", "read-only", "failures"
    );
    let mut all_failures = Vec::new();
    let mut sites: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut total = Row::default();
    for (op, count) in IoOp::ALL.iter().zip(&counts) {
        for kind in [FaultKind::Eio, FaultKind::Enospc] {
            let mut row = Row::default();
            for n in positions(*count, soak) {
                let (out, _) = run_case(Some((*op, n, kind)), variant);
                if verbose {
                    println!(
                        "{op:?} #{n} {kind:?}: fired {} read-only {} first error: {}",
                        out.fired, out.read_only, out.first_error
                    );
                }
                row.cases += 1;
                if out.surfaced_error {
                    *sites.entry(site(&out.first_error)).or_default() += 1;
                }
                row.fired += usize::from(out.fired);
                row.errors += usize::from(out.surfaced_error);
                row.read_only += usize::from(out.read_only);
                row.failures += usize::from(!out.failures.is_empty());
                for f in out.failures.iter().take(3) {
                    all_failures.push(format!(
                        "{op:?} #{n} {kind:?} ({variant:?}; first error: {}): {f}",
                        out.first_error
                    ));
                }
            }
            let _ = writeln!(
                report,
                "{:<10} {:<7} {:>6} {:>6} {:>7} {:>10} {:>9}",
                format!("{op:?}"),
                format!("{kind:?}"),
                row.cases,
                row.fired,
                row.errors,
                row.read_only,
                row.failures
            );
            total.cases += row.cases;
            total.fired += row.fired;
            total.errors += row.errors;
            total.read_only += row.read_only;
            total.failures += row.failures;
        }
    }
    let _ = writeln!(
        report,
        "{:<10} {:<7} {:>6} {:>6} {:>7} {:>10} {:>9}   ({:.1} s)",
        "total",
        "",
        total.cases,
        total.fired,
        total.errors,
        total.read_only,
        total.failures,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        report,
        "where the first surfaced error came from: {}",
        sites
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{report}");
    assert!(
        all_failures.is_empty(),
        "{} verification failures, first ones:\n{}",
        all_failures.len(),
        all_failures
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn fault_matrix_clean_reopen() {
    matrix(Variant::Clean);
}

#[test]
fn fault_matrix_power_loss() {
    matrix(Variant::PowerLoss);
}

/// Found by this matrix: `close()` after a background error returned Ok although writes
/// acknowledged without `sync` were not durable (a power loss then lost them).
#[test]
fn close_after_background_error_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let db = Db::open(tmp.path(), common::fault_matrix_options(&fs)).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.fail_nth(IoOp::Create, 1, FaultKind::Enospc); // the flush's SST
    assert!(db.flush().is_err());
    let bg = db.property("siltdb.background-error").unwrap();
    assert!(bg.contains("injected"), "{bg}");
    db.put(b"b", b"2").unwrap_err();
    let e = db
        .close()
        .expect_err("close claimed durability after a background error");
    assert!(e.to_string().contains("injected"), "{e}");
    drop(db);
    fs.clear_faults();
    let db = Db::open(tmp.path(), common::fault_matrix_options(&fs)).unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").unwrap(), None);
    db.close().unwrap();
}
