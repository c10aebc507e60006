//! Corruption tests: flipped bytes and truncation in SSTs, the WAL, the MANIFEST and CURRENT.
//!
//! A template database is built once: several SST files (a compacted bottom level plus L0 files
//! holding overwrites, deletes and a range delete) and a WAL of ~100 KiB (several 32 KiB log
//! blocks, one record spanning blocks) that was synced by `close` but never flushed. Every trial
//! copies the template, damages one file, opens the copy and reads every key of the key universe
//! with `get` plus a forward and a reverse scan, then (in some trials) runs `compact_range` and
//! reads again. The rules (API contract: errors or correct data, never a panic, a wrong value or a
//! silently missing key):
//! - SST damage: `open` and every read return correct data or `Error::Corruption`; a `get` that
//!   returns `Ok` returns exactly the right answer; a scan that ends without an error returns
//!   exactly the right contents, and the items before an error are a correct prefix.
//! - WAL flip before the last record: `open` fails with `Error::Corruption`, or the damage was in
//!   bytes the reader never needs and the data is complete and correct. A flip in the last
//!   record may drop that record (a torn tail) but nothing before it.
//! - WAL truncation: `open` succeeds and the contents are exactly the SST data plus the complete
//!   records left in the log.
//! - MANIFEST / CURRENT flips and MANIFEST truncation: `open` fails with an error, or the data is
//!   complete and correct.
//!
//! A panic anywhere (any thread; a panic hook counts them) is a failure. `SILT_SOAK=1` tries many
//! more offsets.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::{Db, Error, ReadOptions, WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// One WAL record as model operations: `(key, Some(value))` = put, `(key, None)` = delete.
type Record = Vec<(Vec<u8>, Option<Vec<u8>>)>;

static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Tests run one at a time: the panic counter is global, and a failing test's own assertion
/// must not be blamed on a trial running in parallel.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn install_panic_counter() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = format!("[{thread}] {info}");
            prev(info);
        }));
    });
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn value(rng: &mut StdRng, i: u32, gen: u32) -> Vec<u8> {
    let len = rng.gen_range(10..150);
    let mut v = format!("{i}:{gen}:").into_bytes();
    v.extend((0..len).map(|_| rng.gen_range(b'a'..=b'z')));
    v
}

const UNIVERSE: u32 = 2400;

struct Template {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// Contents after everything (SSTs + WAL).
    full: Model,
    /// Contents covered by SSTs only.
    sst_state: Model,
    /// WAL records in order, as model operations per record.
    wal_batches: Vec<Record>,
}

fn build_template() -> Template {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("template");
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let db = Db::open(&dir, common::corruption_options()).unwrap();
    let mut model = Model::new();
    // Base data, compacted to the bottom.
    for i in (0..UNIVERSE).step_by(2) {
        let v = value(&mut rng, i, 0);
        db.put(key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    db.flush().unwrap();
    db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
    // L0 files: overwrites, deletes, a range delete, new keys.
    for round in 1..=3u32 {
        for _ in 0..300 {
            let i = rng.gen_range(0..UNIVERSE);
            if rng.gen_ratio(1, 4) {
                db.delete(key(i)).unwrap();
                model.remove(&key(i));
            } else {
                let v = value(&mut rng, i, round);
                db.put(key(i), &v).unwrap();
                model.insert(key(i), v);
            }
        }
        let s = rng.gen_range(0..UNIVERSE - 40);
        db.delete_range(key(s), key(s + 25)).unwrap();
        for i in s..s + 25 {
            model.remove(&key(i));
        }
        db.flush().unwrap();
    }
    let sst_state = model.clone();
    // The WAL: many records (single puts, deletes, batches), one large value spanning blocks.
    let mut wal_batches = Vec::new();
    for n in 0..700u32 {
        let mut batch = WriteBatch::new();
        let mut ops = Vec::new();
        let width = if n % 10 == 0 { 4 } else { 1 };
        for _ in 0..width {
            let i = rng.gen_range(0..UNIVERSE);
            if rng.gen_ratio(1, 6) {
                batch.delete(key(i));
                ops.push((key(i), None));
            } else {
                let mut v = value(&mut rng, i, 10 + n);
                if n == 350 {
                    v.resize(40 << 10, b'L');
                }
                batch.put(key(i), &v);
                ops.push((key(i), Some(v)));
            }
        }
        db.write(batch, &WriteOptions::default()).unwrap();
        for (k, v) in &ops {
            match v {
                Some(v) => model.insert(k.clone(), v.clone()),
                None => model.remove(k),
            };
        }
        wal_batches.push(ops);
    }
    db.close().unwrap();
    Template {
        _tmp: tmp,
        dir,
        full: model,
        sst_state,
        wal_batches,
    }
}

fn files_of(dir: &Path, suffix_or_prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(suffix_or_prefix) || n.starts_with(suffix_or_prefix)
        })
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip { offset: u64, mask: u8 },
    Truncate { len: u64 },
}

fn damage(path: &Path, d: Damage) {
    let mut data = std::fs::read(path).unwrap();
    match d {
        Damage::Flip { offset, mask } => data[offset as usize] ^= mask,
        Damage::Truncate { len } => data.truncate(len as usize),
    }
    std::fs::write(path, data).unwrap();
}

fn model_after(base: &Model, batches: &[Record]) -> Model {
    let mut m = base.clone();
    for b in batches {
        for (k, v) in b {
            match v {
                Some(v) => m.insert(k.clone(), v.clone()),
                None => m.remove(k),
            };
        }
    }
    m
}

fn show(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

/// Reads everything; `Ok(true)` if some read reported corruption, `Ok(false)` if all reads
/// returned the expected data, `Err` on a rule violation.
fn check_reads(db: &Db, expect: &Model) -> Result<bool, String> {
    let mut saw_error = false;
    let non_corruption = |e: &Error, what: &str| -> Result<(), String> {
        if e.is_corruption() {
            Ok(())
        } else {
            Err(format!("{what} failed with a non-corruption error: {e}"))
        }
    };
    for i in 0..UNIVERSE + 5 {
        let k = key(i);
        match db.get(&k) {
            Ok(v) => {
                if v.as_deref() != expect.get(&k).map(|v| v.as_slice()) {
                    return Err(format!(
                        "get({}) returned {} but the right answer is {}",
                        show(&k),
                        v.map_or("None".into(), |v| format!(
                            "a {}-byte value {:?}..",
                            v.len(),
                            show(&v[..v.len().min(12)])
                        )),
                        expect.get(&k).map_or("None (absent)".into(), |v| format!(
                            "a {}-byte value",
                            v.len()
                        )),
                    ));
                }
            }
            Err(e) => {
                non_corruption(&e, &format!("get({})", show(&k)))?;
                saw_error = true;
            }
        }
    }
    // Forward scan.
    let want: Vec<(&Vec<u8>, &Vec<u8>)> = expect.iter().collect();
    let mut n = 0usize;
    let mut errored = false;
    for item in db.iter(&ReadOptions::default()) {
        match item {
            Ok((k, v)) => {
                match want.get(n) {
                    Some((wk, wv)) if **wk == k && **wv == v => {}
                    other => {
                        return Err(format!(
                            "forward scan item {n} is {} but should be {}",
                            show(&k),
                            other.map_or("the end".into(), |(wk, _)| show(wk))
                        ))
                    }
                }
                n += 1;
            }
            Err(e) => {
                non_corruption(&e, "forward scan")?;
                errored = true;
                break;
            }
        }
    }
    if !errored && n != want.len() {
        return Err(format!(
            "forward scan ended without an error after {n} of {} keys",
            want.len()
        ));
    }
    saw_error |= errored;
    // Reverse scan.
    let mut n = 0usize;
    let mut errored = false;
    for item in db.iter(&ReadOptions::default()).rev() {
        match item {
            Ok((k, v)) => {
                let idx = want.len().checked_sub(n + 1);
                match idx.and_then(|i| want.get(i)) {
                    Some((wk, wv)) if **wk == k && **wv == v => {}
                    other => {
                        return Err(format!(
                            "reverse scan item {n} is {} but should be {}",
                            show(&k),
                            other.map_or("the end".into(), |(wk, _)| show(wk))
                        ))
                    }
                }
                n += 1;
            }
            Err(e) => {
                non_corruption(&e, "reverse scan")?;
                errored = true;
                break;
            }
        }
    }
    if !errored && n != want.len() {
        return Err(format!(
            "reverse scan ended without an error after {n} of {} keys",
            want.len()
        ));
    }
    Ok(saw_error | errored)
}

/// What a trial may see after opening the damaged copy.
enum Rule {
    /// Open and reads: correct data or `Corruption`, per read.
    SstDamage { compact: bool },
    /// Open fails with Corruption, or the data equals `full` exactly.
    CorruptionOrExact { allow_any_error: bool },
    /// Open fails with Corruption, or the data equals one of the allowed states.
    CorruptionOrOneOf(Vec<Model>),
    /// Open must succeed with exactly this state.
    Exact(Model),
}

struct Outcome {
    detected: bool,
}

fn trial(t: &Template, file: &str, d: Damage, rule: &Rule) -> Result<Outcome, String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    copy_dir(&t.dir, &dir);
    damage(&dir.join(file), d);
    let panics_before = PANICS.load(Ordering::SeqCst);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Outcome, String> {
        let db = match Db::open(&dir, common::corruption_options()) {
            Ok(db) => db,
            Err(e) => {
                return match rule {
                    Rule::Exact(_) => Err(format!("open failed: {e}")),
                    Rule::CorruptionOrExact {
                        allow_any_error: true,
                    } => Ok(Outcome { detected: true }),
                    _ if e.is_corruption() => Ok(Outcome { detected: true }),
                    _ => Err(format!("open failed with a non-corruption error: {e}")),
                }
            }
        };
        let detected = match rule {
            Rule::SstDamage { compact } => {
                let mut detected = check_reads(&db, &t.full)?;
                if *compact {
                    let c = db.compact_range(None::<&[u8]>, None::<&[u8]>);
                    if let Err(e) = &c {
                        detected = true;
                        // A compaction that hit the damage: the error may come back as the
                        // background error (Closed naming it) or as Corruption directly.
                        let msg = e.to_string();
                        if !(e.is_corruption() || msg.contains("corruption")) {
                            return Err(format!(
                                "compact_range failed without naming corruption: {e}"
                            ));
                        }
                    }
                    detected |= check_reads(&db, &t.full)?;
                }
                detected
            }
            Rule::CorruptionOrExact { .. } => {
                if check_reads(&db, &t.full)? {
                    return Err("open succeeded but reads report corruption".into());
                }
                false
            }
            Rule::Exact(m) => {
                if check_reads(&db, m)? {
                    return Err("reads report corruption".into());
                }
                false
            }
            Rule::CorruptionOrOneOf(states) => {
                let mut ok = false;
                let mut last_err = String::new();
                for s in states {
                    match check_reads(&db, s) {
                        Ok(false) => {
                            ok = true;
                            break;
                        }
                        Ok(true) => last_err = "reads report corruption".into(),
                        Err(e) => last_err = e,
                    }
                }
                if !ok {
                    return Err(format!(
                        "open succeeded but the data matches none of the allowed states \
                         (vs the last one: {last_err})"
                    ));
                }
                false
            }
        };
        drop(db);
        Ok(Outcome { detected })
    }));
    let panics = PANICS.load(Ordering::SeqCst) - panics_before;
    let r = match r {
        Ok(r) => r,
        Err(_) => Err("panicked".into()),
    };
    if panics > 0 {
        return Err(format!(
            "{panics} panic(s), last: {}",
            LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner())
        ));
    }
    r
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(build_template)
}

struct Report {
    name: &'static str,
    trials: usize,
    detected: usize,
    failures: Vec<String>,
}

impl Report {
    fn new(name: &'static str) -> Self {
        Report {
            name,
            trials: 0,
            detected: 0,
            failures: Vec::new(),
        }
    }
    fn record(&mut self, file: &str, d: Damage, r: Result<Outcome, String>) {
        self.trials += 1;
        match r {
            Ok(o) => self.detected += o.detected as usize,
            Err(e) => {
                eprintln!("{}: {file} {d:?}: {e}", self.name);
                self.failures.push(format!("{file} {d:?}: {e}"));
            }
        }
    }
    fn finish(self) {
        println!(
            "{}: {} trials, {} detected as corruption, {} failures",
            self.name,
            self.trials,
            self.detected,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} trials broke the rules:\n{}",
            self.name,
            self.failures.len(),
            self.trials,
            self.failures
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn sst_flips_and_truncation_give_errors_or_correct_data() {
    let _serial = serial();
    install_panic_counter();
    let t = template();
    let mut rng = StdRng::seed_from_u64(7);
    let mut rep = Report::new("sst");
    let per_file = if common::soak() { 600 } else { 50 };
    let ssts = files_of(&t.dir, ".sst");
    assert!(ssts.len() >= 3, "template has {} SSTs", ssts.len());
    for sst in &ssts {
        let name = name_of(sst);
        let size = std::fs::metadata(sst).unwrap().len();
        let mut damages = Vec::new();
        // Random offsets across the file, plus the metadata end (index, properties, footer).
        for _ in 0..per_file {
            damages.push(Damage::Flip {
                offset: rng.gen_range(0..size),
                mask: 1 << rng.gen_range(0..8),
            });
        }
        let tail = if common::soak() { 400 } else { 100 };
        for back in (1..=tail.min(size)).step_by(if common::soak() { 1 } else { 3 }) {
            damages.push(Damage::Flip {
                offset: size - back,
                mask: rng.gen_range(1..=255),
            });
        }
        for len in [
            0,
            1,
            size / 3,
            size / 2,
            size - 81,
            size - 80,
            size - 79,
            size - 1,
        ] {
            damages.push(Damage::Truncate { len });
        }
        for (i, d) in damages.into_iter().enumerate() {
            let rule = Rule::SstDamage {
                compact: i % 5 == 0,
            };
            let r = trial(t, &name, d, &rule);
            rep.record(&name, d, r);
        }
    }
    rep.finish();
}

#[test]
fn wal_mid_log_flips_are_corruption_and_tail_truncation_keeps_a_prefix() {
    let _serial = serial();
    install_panic_counter();
    let t = template();
    let wals = files_of(&t.dir, ".log");
    assert_eq!(
        wals.len(),
        1,
        "template should have exactly one WAL: {wals:?}"
    );
    let wal = &wals[0];
    let name = name_of(wal);
    let data = std::fs::read(wal).unwrap();
    let log = siltdb::read_log(&data);
    assert!(log.corruption.is_none() && log.torn_tail.is_none());
    assert_eq!(
        log.records.len(),
        t.wal_batches.len(),
        "one record per write"
    );
    let last_start = log.records.last().unwrap().0;
    println!(
        "WAL {} bytes, {} records, last record at {last_start}",
        data.len(),
        log.records.len()
    );
    let mut rng = StdRng::seed_from_u64(11);
    let n = if common::soak() { 1500 } else { 120 };
    let mut rep = Report::new("wal-flip");
    let without_last = model_after(&t.sst_state, &t.wal_batches[..t.wal_batches.len() - 1]);
    for i in 0..n {
        // Mostly mid-log; some in fragment headers at record starts; a few in the last record.
        let offset = match i % 6 {
            0 => {
                let (s, _) = log.records[rng.gen_range(0..log.records.len() - 1)];
                s + rng.gen_range(0..7)
            }
            5 => rng.gen_range(last_start..data.len() as u64),
            _ => rng.gen_range(0..last_start),
        };
        let d = Damage::Flip {
            offset,
            mask: 1 << rng.gen_range(0..8),
        };
        let rule = if offset >= last_start {
            Rule::CorruptionOrOneOf(vec![t.full.clone(), without_last.clone()])
        } else {
            Rule::CorruptionOrExact {
                allow_any_error: false,
            }
        };
        let r = trial(t, &name, d, &rule);
        rep.record(&name, d, r);
    }
    rep.finish();

    let mut rep = Report::new("wal-truncate");
    let mut lens: Vec<u64> = (0..if common::soak() { 400 } else { 40 })
        .map(|_| rng.gen_range(0..data.len() as u64))
        .collect();
    // Exactly at and around record starts and block boundaries.
    for (s, _) in log.records.iter().step_by(97) {
        lens.extend([*s, s + 1, s + 7, s + 8]);
    }
    lens.extend([
        32 * 1024 - 1,
        32 * 1024,
        32 * 1024 + 7,
        data.len() as u64 - 1,
    ]);
    for len in lens {
        let len = len.min(data.len() as u64);
        let kept = siltdb::read_log(&data[..len as usize]).records.len();
        let expect = model_after(&t.sst_state, &t.wal_batches[..kept]);
        let d = Damage::Truncate { len };
        let r = trial(t, &name, d, &Rule::Exact(expect));
        rep.record(&name, d, r);
    }
    rep.finish();
}

#[test]
fn manifest_and_current_damage_gives_errors_or_correct_data() {
    let _serial = serial();
    install_panic_counter();
    let t = template();
    let manifests = files_of(&t.dir, "MANIFEST-");
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let name = name_of(&manifests[0]);
    let size = std::fs::metadata(&manifests[0]).unwrap().len();
    println!("{name}: {size} bytes");
    let mut rng = StdRng::seed_from_u64(13);
    let mut rep = Report::new("manifest");
    let step = if common::soak() || size < 400 {
        1
    } else {
        (size / 300).max(1)
    };
    let mut offset = 0;
    while offset < size {
        let d = Damage::Flip {
            offset,
            mask: 1 << rng.gen_range(0..8),
        };
        let r = trial(
            t,
            &name,
            d,
            &Rule::CorruptionOrExact {
                allow_any_error: false,
            },
        );
        rep.record(&name, d, r);
        offset += step;
    }
    for len in [0, 1, 7, size / 2, size - 1] {
        let d = Damage::Truncate { len };
        let r = trial(
            t,
            &name,
            d,
            &Rule::CorruptionOrExact {
                allow_any_error: false,
            },
        );
        rep.record(&name, d, r);
    }
    let current_size = std::fs::metadata(t.dir.join("CURRENT")).unwrap().len();
    for offset in 0..current_size {
        let d = Damage::Flip {
            offset,
            mask: 1 << rng.gen_range(0..8),
        };
        let r = trial(
            t,
            "CURRENT",
            d,
            &Rule::CorruptionOrExact {
                allow_any_error: true,
            },
        );
        rep.record("CURRENT", d, r);
    }
    rep.finish();
}

#[test]
fn undamaged_template_reads_back_exactly() {
    let _serial = serial();
    install_panic_counter();
    let t = template();
    let r = trial(
        t,
        "CURRENT",
        Damage::Flip { offset: 0, mask: 0 },
        &Rule::Exact(t.full.clone()),
    );
    assert!(r.is_ok(), "{:?}", r.err());
}
