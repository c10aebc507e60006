//! `silt-crash`: kill -9 crash testing with an expected-state oracle (RocksDB `db_crash_test`
//! style).
//!
//! The parent runs cycles. Each cycle starts a writer child (this same binary with the hidden
//! `--child` flag) on the database in `DIR/db`, SIGKILLs it after a random 50–500 ms, reopens the
//! database and checks every key of the key space against the expected state, then starts the
//! next cycle on the same database. A run on a directory left by an earlier run first verifies
//! the existing database against its log.
//!
//! The child performs random operations on a small key space (`--keys`, default 1000): puts,
//! deletes, range deletes, atomic batches mixing the three, flushes, `compact_range`, checkpoints
//! (opened and compared with the expected state, then removed), and ingestion of a small
//! `SstWriter` file (copied or moved in). Every write uses `sync = true`, so an acknowledged write
//! is durable.
//!
//! The expected state lives in `DIR/expected.log`, an append-only text log outside the database:
//! - `P <id> <changes>` — written and fsynced *before* write `<id>` is issued. `<changes>` are
//!   applied in order: `+K` puts `value(id, K)` into key K, `-K` deletes it, `rLO-HI` deletes
//!   keys `LO..HI` (end exclusive).
//! - `D <id>` — written and fsynced after the database acknowledged write `<id>`.
//! - `A <id>` — written by the parent when verification found that the in-flight write `<id>`
//!   (pending, no `D`) did not take effect (when it did, the parent writes `D <id>`).
//!
//! A torn last line (the kill landed mid-append) is ignored and cut off by the parent. Since the
//! child is sequential, at most one write is pending at a kill. The recovered database must
//! equal, on every key, the state after all `D` writes, or that state with the one pending write
//! applied as a whole (atomicity: a batch, range delete or ingestion is all or nothing). Anything
//! else — a lost acknowledged write, a resurrected delete, a torn batch, a value no write made, a
//! key outside the key space, a reopen that fails — is a failure: exit status 1, the directory
//! is kept, and the seed is printed.

use clap::Parser;
use siltdb::{
    Compression, Db, IngestOptions, Options, ReadOptions, SstWriter, SstWriterOptions, WriteBatch,
    WriteOptions,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Command-line arguments of `silt-crash`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "silt-crash",
    version,
    about = "Crash-test siltdb: a writer child is SIGKILLed at random times; every reopen is \
             checked key by key against an expected-state log.",
    after_help = "Examples:\n  silt-crash --cycles 20\n  silt-crash --duration 600 --dir /tmp/crash"
)]
pub struct Args {
    /// Working directory (database in DIR/db, expected state in DIR/expected.log). Default: a
    /// temporary directory, removed after a clean run and kept after a failure.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Kill/reopen/verify cycles to run (default 20, or unlimited with --duration).
    #[arg(long)]
    pub cycles: Option<u64>,
    /// Run for this many seconds (stops at whichever of --cycles and --duration comes first).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Size of the key space.
    #[arg(long, default_value_t = 1000)]
    pub keys: u32,
    /// Random seed (default: from the clock); printed so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Shortest time the child runs before SIGKILL, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub min_kill_ms: u64,
    /// Longest time the child runs before SIGKILL, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub max_kill_ms: u64,
    /// Print one line per cycle.
    #[arg(long)]
    pub verbose: bool,
    /// Internal: run as the writer child.
    #[arg(long, hide = true)]
    pub child: bool,
    /// Internal: the child's database uses zstd compression.
    #[arg(long, hide = true)]
    pub zstd: bool,
}

/// A small, fast, seedable generator (xorshift64*), enough for choosing operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
    /// True with probability `pct` percent.
    pub fn percent(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }
}

/// The key of slot `k`.
pub fn key(k: u32) -> Vec<u8> {
    format!("key{k:06}").into_bytes()
}

fn slot_of(key: &[u8]) -> Option<u32> {
    let digits = key.strip_prefix(b"key")?;
    if digits.len() != 6 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The value write `id` puts into slot `k` (names both, so a wrong value says where it came from).
pub fn value(id: u64, k: u32) -> Vec<u8> {
    let mut v = format!("{id}.{k}.").into_bytes();
    let len = 16 + ((id.wrapping_mul(31) + u64::from(k) * 7) % 180) as usize;
    let fill = b'a' + (id % 26) as u8;
    v.resize(len, fill);
    v
}

fn describe(v: Option<&[u8]>) -> String {
    match v {
        None => "absent".into(),
        Some(v) => {
            let head: String = String::from_utf8_lossy(v).chars().take(24).collect();
            let id = head.split('.').next().unwrap_or("?").to_string();
            format!("value of write {id} ({head:?}, {} bytes)", v.len())
        }
    }
}

/// One change of a write, in slot terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Slot gets `value(id, slot)`.
    Put(u32),
    /// Slot is deleted.
    Delete(u32),
    /// Slots `lo..hi` are deleted.
    Range(u32, u32),
}

fn encode_changes(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        match c {
            Change::Put(k) => s.push_str(&format!(" +{k}")),
            Change::Delete(k) => s.push_str(&format!(" -{k}")),
            Change::Range(lo, hi) => s.push_str(&format!(" r{lo}-{hi}")),
        }
    }
    s
}

fn parse_change(t: &str) -> Option<Change> {
    if let Some(k) = t.strip_prefix('+') {
        return k.parse().ok().map(Change::Put);
    }
    if let Some(k) = t.strip_prefix('-') {
        return k.parse().ok().map(Change::Delete);
    }
    let (lo, hi) = t.strip_prefix('r')?.split_once('-')?;
    Some(Change::Range(lo.parse().ok()?, hi.parse().ok()?))
}

/// What each slot must hold: the id of the write whose value it holds, or `None` (absent).
pub type Slots = Vec<Option<u64>>;

fn apply(slots: &mut Slots, id: u64, changes: &[Change]) {
    for c in changes {
        match *c {
            Change::Put(k) => slots[k as usize] = Some(id),
            Change::Delete(k) => slots[k as usize] = None,
            Change::Range(lo, hi) => {
                let hi = (hi as usize).min(slots.len());
                for s in &mut slots[lo as usize..hi] {
                    *s = None;
                }
            }
        }
    }
}

/// The expected state, rebuilt from the log.
#[derive(Debug, Clone)]
pub struct Expected {
    /// State after every acknowledged write.
    pub slots: Slots,
    /// The write issued but not acknowledged (or resolved) when the log ends.
    pub pending: Option<(u64, Vec<Change>)>,
    /// The next write id.
    pub next_id: u64,
    /// Acknowledged writes in the log.
    pub acked: u64,
    /// Bytes of complete lines (a torn last line starts here).
    pub valid_len: u64,
}

impl Expected {
    /// Reads `path` (missing = empty).
    pub fn load(path: &Path, keys: u32) -> Result<Expected, String> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let mut ex = Expected {
            slots: vec![None; keys as usize],
            pending: None,
            next_id: 1,
            acked: 0,
            valid_len: 0,
        };
        let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        ex.valid_len = complete as u64;
        let text = std::str::from_utf8(&data[..complete])
            .map_err(|e| format!("{}: not UTF-8: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let bad = || format!("{}:{}: malformed record {line:?}", path.display(), n + 1);
            let mut parts = line.split(' ');
            let tag = parts.next().ok_or_else(bad)?;
            let id: u64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            match tag {
                "P" => {
                    if let Some((p, _)) = &ex.pending {
                        return Err(format!(
                            "{}:{}: write {id} issued while write {p} was unresolved",
                            path.display(),
                            n + 1
                        ));
                    }
                    let changes = parts
                        .map(parse_change)
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(bad)?;
                    if changes.iter().any(|c| match *c {
                        Change::Put(k) | Change::Delete(k) => k >= keys,
                        Change::Range(lo, hi) => lo >= hi || hi > keys,
                    }) {
                        return Err(format!("{} (outside --keys {keys})", bad()));
                    }
                    ex.pending = Some((id, changes));
                    ex.next_id = ex.next_id.max(id + 1);
                }
                "D" | "A" => {
                    let (p, changes) = ex.pending.take().ok_or_else(bad)?;
                    if p != id {
                        return Err(bad());
                    }
                    if tag == "D" {
                        apply(&mut ex.slots, id, &changes);
                        ex.acked += 1;
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(ex)
    }
}

/// Database options shared by the child and the verifier: small memtables and files so that
/// flushes and compactions are running when the kill lands.
pub fn db_options(compress: bool) -> Options {
    Options {
        memtable_size_bytes: 64 << 10,
        l0_compaction_trigger: 2,
        target_file_size_bytes: 64 << 10,
        max_bytes_for_level_base: 256 << 10,
        block_size_bytes: 2 << 10,
        block_cache_size_bytes: 1 << 20,
        compression: if compress {
            Compression::Zstd { level: 1 }
        } else {
            Compression::None
        },
        ..Options::default()
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("expected.log")
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("db")
}

fn scratch_path(dir: &Path) -> PathBuf {
    dir.join("scratch")
}

// ---------------------------------------------------------------------------------------------
// Child

struct Writer {
    db: Db,
    log: std::fs::File,
    ex: Expected,
    keys: u32,
    scratch: PathBuf,
}

fn fail_child(code: u8, msg: String) -> ExitCode {
    eprintln!("silt-crash child: {msg}");
    ExitCode::from(code)
}

impl Writer {
    fn record(&mut self, line: &str) -> Result<(), String> {
        self.log
            .write_all(line.as_bytes())
            .and_then(|()| self.log.sync_data())
            .map_err(|e| format!("expected-state log: {e}"))
    }

    /// Logs `P`, runs `op`, logs `D`, updates the in-memory state.
    fn logged(
        &mut self,
        changes: Vec<Change>,
        op: impl FnOnce(&Db, u64) -> siltdb::Result<()>,
    ) -> Result<(), String> {
        let id = self.ex.next_id;
        self.ex.next_id += 1;
        self.record(&format!("P {id}{}\n", encode_changes(&changes)))?;
        op(&self.db, id).map_err(|e| format!("write {id} failed: {e}"))?;
        self.record(&format!("D {id}\n"))?;
        apply(&mut self.ex.slots, id, &changes);
        self.ex.acked += 1;
        Ok(())
    }

    fn random_changes(&mut self, rng: &mut Rng, n: usize) -> Vec<Change> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = rng.range(0, u64::from(self.keys)) as u32;
            let r = rng.range(0, 100);
            v.push(if r < 70 {
                Change::Put(k)
            } else if r < 90 {
                Change::Delete(k)
            } else {
                let hi = (k + 1 + rng.range(0, 10) as u32).min(self.keys);
                Change::Range(k, hi)
            });
        }
        v
    }

    fn batch_of(id: u64, changes: &[Change]) -> WriteBatch {
        let mut b = WriteBatch::new();
        for c in changes {
            match *c {
                Change::Put(k) => b.put(key(k), value(id, k)),
                Change::Delete(k) => b.delete(key(k)),
                Change::Range(lo, hi) => b.delete_range(key(lo), key(hi)),
            }
        }
        b
    }

    fn write(&mut self, changes: Vec<Change>) -> Result<(), String> {
        let sync = WriteOptions {
            sync: true,
            ..Default::default()
        };
        let c2 = changes.clone();
        self.logged(changes, move |db, id| {
            db.write(Self::batch_of(id, &c2), &sync)
        })
    }

    fn check_key(&mut self, k: u32) -> Result<(), String> {
        let got = self
            .db
            .get(key(k))
            .map_err(|e| format!("get {k} failed: {e}"))?;
        let want = self.ex.slots[k as usize].map(|id| value(id, k));
        if got != want {
            return Err(format!(
                "live read of key {k}: {}, expected {}",
                describe(got.as_deref()),
                describe(want.as_deref())
            ));
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        let dir = self.scratch.join(format!("ckpt-{}", self.ex.next_id));
        self.db
            .checkpoint(&dir)
            .map_err(|e| format!("checkpoint failed: {e}"))?;
        let c = Db::open(&dir, db_options(false))
            .map_err(|e| format!("checkpoint {} does not open: {e}", dir.display()))?;
        let found = scan(&c, self.keys)?;
        if let Some(d) = diff(&found, &self.ex.slots, self.keys).first() {
            return Err(format!("checkpoint {}: {d}", dir.display()));
        }
        c.close()
            .map_err(|e| format!("closing the checkpoint: {e}"))?;
        drop(c);
        siltdb::checkpoint::remove(&dir).map_err(|e| format!("removing the checkpoint: {e}"))
    }

    fn ingest(&mut self, rng: &mut Rng) -> Result<(), String> {
        let id = self.ex.next_id;
        let width = rng.range(5, 100) as u32;
        let lo = rng.range(0, u64::from(self.keys.saturating_sub(width).max(1))) as u32;
        let hi = (lo + width).min(self.keys);
        let mut changes = Vec::new();
        for k in lo..hi {
            if rng.percent(40) {
                changes.push(if rng.percent(20) {
                    Change::Delete(k)
                } else {
                    Change::Put(k)
                });
            }
        }
        if changes.is_empty() {
            changes.push(Change::Put(lo));
        }
        let path = self.scratch.join(format!("ingest-{id}.sst"));
        let mut w = SstWriter::create(&path, &SstWriterOptions::default())
            .map_err(|e| format!("SstWriter: {e}"))?;
        for c in &changes {
            match *c {
                Change::Put(k) => w.put(key(k), value(id, k)),
                Change::Delete(k) => w.delete(key(k)),
                Change::Range(..) => unreachable!("ingested files hold no range deletes"),
            }
            .map_err(|e| format!("SstWriter: {e}"))?;
        }
        w.finish().map_err(|e| format!("SstWriter: {e}"))?;
        let move_files = rng.percent(50);
        let p2 = path.clone();
        self.logged(changes, move |db, _| {
            let opts = IngestOptions {
                move_files,
                ..Default::default()
            };
            db.ingest(&[&p2], &opts).map(|_| ())
        })?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    fn step(&mut self, rng: &mut Rng) -> Result<(), String> {
        let keys = u64::from(self.keys);
        match rng.range(0, 100) {
            0..=34 => {
                let k = rng.range(0, keys) as u32;
                self.write(vec![Change::Put(k)])
            }
            35..=44 => {
                let k = rng.range(0, keys) as u32;
                self.write(vec![Change::Delete(k)])
            }
            45..=49 => {
                let lo = rng.range(0, keys) as u32;
                let hi = (lo + 1 + rng.range(0, 20) as u32).min(self.keys);
                self.write(vec![Change::Range(lo, hi)])
            }
            50..=74 => {
                let n = rng.range(2, 13) as usize;
                let changes = self.random_changes(rng, n);
                self.write(changes)
            }
            75..=77 => self.db.flush().map_err(|e| format!("flush failed: {e}")),
            78..=79 => {
                let r = if rng.percent(50) {
                    self.db.compact_range(None::<&[u8]>, None::<&[u8]>)
                } else {
                    let lo = rng.range(0, keys) as u32;
                    let hi = (lo + rng.range(1, 200) as u32).min(self.keys);
                    self.db.compact_range(Some(key(lo)), Some(key(hi)))
                };
                r.map_err(|e| format!("compact_range failed: {e}"))
            }
            80 => self.checkpoint(),
            81..=84 => self.ingest(rng),
            _ => {
                let k = rng.range(0, keys) as u32;
                self.check_key(k)
            }
        }
    }
}

/// Runs the writer child until it is killed (or a 120 s safety bound).
pub fn run_child(dir: &Path, keys: u32, seed: u64, compress: bool) -> ExitCode {
    let ex = match Expected::load(&log_path(dir), keys) {
        Ok(ex) => ex,
        Err(e) => return fail_child(5, e),
    };
    if let Some((id, _)) = &ex.pending {
        return fail_child(
            5,
            format!("write {id} is unresolved in the expected-state log"),
        );
    }
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dir))
    {
        Ok(f) => f,
        Err(e) => return fail_child(5, format!("opening the expected-state log: {e}")),
    };
    let scratch = scratch_path(dir);
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        return fail_child(5, format!("creating {}: {e}", scratch.display()));
    }
    let db = match Db::open(db_path(dir), db_options(compress)) {
        Ok(db) => db,
        Err(e) => return fail_child(3, format!("open failed: {e}")),
    };
    println!("READY");
    let _ = std::io::stdout().flush();
    let mut w = Writer {
        db,
        log,
        ex,
        keys,
        scratch,
    };
    let mut rng = Rng::new(seed);
    let bound = Instant::now() + Duration::from_secs(120);
    while Instant::now() < bound {
        if let Err(e) = w.step(&mut rng) {
            return fail_child(4, e);
        }
    }
    fail_child(6, "not killed within 120 s".into())
}

// ---------------------------------------------------------------------------------------------
// Parent

fn scan(db: &Db, keys: u32) -> Result<BTreeMap<u32, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    for item in db.iter(&ReadOptions::default()) {
        let (k, v) = item.map_err(|e| format!("scan failed: {e}"))?;
        let slot = slot_of(&k)
            .filter(|s| *s < keys)
            .ok_or_else(|| format!("unexpected key {:?} in the database", describe(Some(&k))))?;
        out.insert(slot, v.to_vec());
    }
    Ok(out)
}

/// Differences between what the database holds and `slots`.
fn diff(found: &BTreeMap<u32, Vec<u8>>, slots: &Slots, keys: u32) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..keys {
        let want = slots[k as usize].map(|id| value(id, k));
        let got = found.get(&k);
        if got != want.as_ref() {
            out.push(format!(
                "key {k}: {}, expected {}",
                describe(got.map(|v| v.as_slice())),
                describe(want.as_deref())
            ));
        }
    }
    out
}

/// Verdict on the in-flight write after one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    /// No write was in flight.
    None,
    /// The in-flight write took effect.
    Applied,
    /// The in-flight write did not take effect.
    NotApplied,
}

/// Reopens the database and checks every key against the log; resolves the in-flight write in
/// the log. Returns the verdict and the number of acknowledged writes the state covers.
pub fn verify(dir: &Path, keys: u32, compress: bool) -> Result<(InFlight, u64), String> {
    let lp = log_path(dir);
    let ex = Expected::load(&lp, keys)?;
    // Cut a torn last line: the next record must start on a line of its own.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&lp)
        .map_err(|e| format!("opening {}: {e}", lp.display()))?;
    f.set_len(ex.valid_len)
        .map_err(|e| format!("truncating {}: {e}", lp.display()))?;
    drop(f);
    let db = Db::open(db_path(dir), db_options(compress))
        .map_err(|e| format!("reopen after the kill failed: {e}"))?;
    let found = scan(&db, keys)?;
    // Point reads agree with the scan.
    for k in 0..keys {
        let got = db
            .get(key(k))
            .map_err(|e| format!("get key {k} failed: {e}"))?;
        if got.as_ref() != found.get(&k) {
            return Err(format!(
                "key {k}: get returns {} but the scan {}",
                describe(got.as_deref()),
                describe(found.get(&k).map(|v| v.as_slice()))
            ));
        }
    }
    let before = diff(&found, &ex.slots, keys);
    let verdict = match &ex.pending {
        None if before.is_empty() => InFlight::None,
        None => {
            return Err(format!(
                "{} keys differ from the acknowledged state (no write was in flight); first: {}",
                before.len(),
                before[..before.len().min(8)].join("; ")
            ))
        }
        Some((id, changes)) => {
            let mut after_slots = ex.slots.clone();
            apply(&mut after_slots, *id, changes);
            let after = diff(&found, &after_slots, keys);
            let (tag, verdict) = if after.is_empty() {
                ("D", InFlight::Applied)
            } else if before.is_empty() {
                ("A", InFlight::NotApplied)
            } else {
                return Err(format!(
                    "the database matches neither the state before in-flight write {id} \
                     ({} keys differ; first: {}) nor after it ({} keys differ; first: {}); \
                     write {id} was{}",
                    before.len(),
                    before[..before.len().min(6)].join("; "),
                    after.len(),
                    after[..after.len().min(6)].join("; "),
                    encode_changes(changes)
                ));
            };
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&lp)
                .map_err(|e| format!("opening {}: {e}", lp.display()))?;
            f.write_all(format!("{tag} {id}\n").as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|e| format!("writing {}: {e}", lp.display()))?;
            verdict
        }
    };
    db.close()
        .map_err(|e| format!("close after verification failed: {e}"))?;
    Ok((verdict, ex.acked))
}

/// Totals of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Cycles completed (kill + reopen + verify).
    pub cycles: u64,
    /// Acknowledged writes covered by the last verification (all of them, cumulatively).
    pub writes_verified: u64,
    /// Cycles whose in-flight write was found applied / not applied.
    pub in_flight_applied: u64,
    /// See `in_flight_applied`.
    pub in_flight_not_applied: u64,
    /// Cycles where the child was killed before it opened the database.
    pub killed_before_open: u64,
    /// Key checks made by verifications (keys × cycles).
    pub key_checks: u64,
    /// Failures (0 or 1: a run stops at the first).
    pub failures: u64,
}

fn spawn_child(
    exe: &Path,
    dir: &Path,
    keys: u32,
    seed: u64,
    compress: bool,
) -> Result<Child, String> {
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .arg("--dir")
        .arg(dir)
        .arg("--keys")
        .arg(keys.to_string())
        .arg("--seed")
        .arg(seed.to_string());
    if compress {
        cmd.arg("--zstd");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", exe.display()))
}

fn clear_scratch(dir: &Path) -> Result<(), String> {
    let s = scratch_path(dir);
    match std::fs::remove_dir_all(&s) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("clearing {}: {e}", s.display())),
    }
}

/// Runs the kill/verify cycles in `dir` with the child binary `exe`.
pub fn run_parent(args: &Args, dir: &Path, exe: &Path, seed: u64) -> Result<Report, String> {
    if args.keys == 0 || args.keys > 999_999 {
        return Err("--keys must be in 1..=999999".into());
    }
    if args.max_kill_ms < args.min_kill_ms {
        return Err("--max-kill-ms must be >= --min-kill-ms".into());
    }
    let cycles = match (args.cycles, args.duration) {
        (Some(c), _) => c,
        (None, Some(_)) => u64::MAX,
        (None, None) => 20,
    };
    let end = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let started = Instant::now();
    // Resuming a directory from an earlier run: the database must already agree with the log
    // before any new write lands on top of it (a later write could mask a lost one).
    if log_path(dir).exists() && db_path(dir).exists() {
        if let Err(e) = verify(dir, args.keys, false) {
            report.failures += 1;
            print_report(&report, started, seed, dir);
            return Err(format!(
                "the existing database disagrees with its log before the first cycle: {e}"
            ));
        }
    }
    while report.cycles < cycles && end.is_none_or(|e| Instant::now() < e) {
        let cycle = report.cycles;
        clear_scratch(dir)?;
        let child_seed = rng.next_u64();
        let compress = rng.percent(30);
        let delay = Duration::from_millis(rng.range(args.min_kill_ms, args.max_kill_ms + 1));
        let mut child = spawn_child(exe, dir, args.keys, child_seed, compress)?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let out_reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|l| l == "READY")
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        std::thread::sleep(delay);
        let exited = child
            .try_wait()
            .map_err(|e| format!("waiting for the child: {e}"))?;
        if exited.is_none() {
            child
                .kill()
                .map_err(|e| format!("killing the child: {e}"))?;
        }
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the child: {e}"))?;
        let ready = out_reader.join().unwrap_or(false);
        let child_err = err_reader.join().unwrap_or_default();
        if let Some(st) = exited {
            report.failures += 1;
            print_report(&report, started, seed, dir);
            return Err(format!(
                "cycle {cycle}: the child exited on its own ({st}) before the kill:\n{}",
                child_err.trim_end()
            ));
        }
        debug_assert!(!status.success());
        if !ready {
            report.killed_before_open += 1;
        }
        match verify(dir, args.keys, compress) {
            Ok((verdict, acked)) => {
                report.cycles += 1;
                report.writes_verified = acked;
                report.key_checks += u64::from(args.keys);
                match verdict {
                    InFlight::Applied => report.in_flight_applied += 1,
                    InFlight::NotApplied => report.in_flight_not_applied += 1,
                    InFlight::None => {}
                }
                if args.verbose {
                    println!(
                        "cycle {cycle}: killed after {} ms{}, {acked} acknowledged writes so far, \
                         in-flight write {verdict:?}",
                        delay.as_millis(),
                        if ready {
                            ""
                        } else {
                            " (before the open finished)"
                        },
                    );
                }
            }
            Err(e) => {
                report.failures += 1;
                print_report(&report, started, seed, dir);
                return Err(format!(
                    "cycle {cycle} (killed after {} ms, seed {seed}): {e}",
                    delay.as_millis()
                ));
            }
        }
    }
    print_report(&report, started, seed, dir);
    Ok(report)
}

fn print_report(r: &Report, started: Instant, seed: u64, dir: &Path) {
    println!(
        "silt-crash: cycles {}, acknowledged writes verified {}, in-flight writes at the kill: \
         {} applied / {} not applied, killed before open {}, key checks {}, failures {} \
         ({:.1} s, seed {seed}, dir {})",
        r.cycles,
        r.writes_verified,
        r.in_flight_applied,
        r.in_flight_not_applied,
        r.killed_before_open,
        r.key_checks,
        r.failures,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
}

/// Entry point of the `silt-crash` binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    if args.child {
        let Some(dir) = &args.dir else {
            return fail_child(2, "--child needs --dir".into());
        };
        return run_child(dir, args.keys, seed, args.zstd);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("silt-crash: cannot find my own binary: {e}");
            return ExitCode::from(2);
        }
    };
    let (dir, tmp) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => match tempfile::Builder::new().prefix("silt-crash-").tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("silt-crash: cannot create a temporary directory: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match run_parent(&args, &dir, &exe, seed) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(t) = tmp {
                let _ = t.keep();
            }
            eprintln!("silt-crash: FAILURE: {e}");
            eprintln!(
                "silt-crash: the database and expected-state log are kept in {}",
                dir.display()
            );
            ExitCode::from(1)
        }
    }
}
