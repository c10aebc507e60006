//! Fuzzing entry points of the replica crate (not a stable API).
//!
//! Every cargo-fuzz target in `fuzz/fuzz_targets/{plog,throttle}.rs` is a one-line wrapper around
//! one function here, and `replica/tests/fuzz_corpus.rs` replays every committed corpus file in
//! `fuzz/corpus/<target>/` through the same function on the stable toolchain. Each function
//! takes arbitrary bytes and panics only when it finds a bug: a decoder that panics, does not
//! terminate, or breaks a round trip with its encoder. [`seeds`] writes the seed corpora.

#![doc(hidden)]

use crate::mutation::{ControlOp, IngestCommand, IngestFile, Mutation, WriteOp};
use crate::plog::cache::CacheLimits;
use crate::plog::format::{self, Decoded, Record};
use crate::plog::meta::{self, PlogMeta};
use crate::plog::segment::{self, Loaded, Segments};
use crate::raft::TypeConfig;
use crate::throttle::{Decision, Rule, Throttle, ThrottleConfig, WriteThrottling, MAX_THROTTLE_MS};
use crate::types::Ballot;
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
use parking_lot::Mutex;
use siltdb::fs::{FileLock, FileSystem, RandomAccessFile, WritableFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fuzz target body: panics only on a bug.
pub type Target = fn(&[u8]);

/// Every replica fuzz target: `(name, entry point)`. The name is the directory under
/// `fuzz/corpus/` and the file name under `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("plog", plog),
    ("throttle", throttle),
    ("transport_frame", transport_frame),
];

/// Reads structured values out of fuzz input; past the end every read returns zeros.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }
    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }
    fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

// ---------------------------------------------------------------------------------------------
// An in-memory file system (flat: path -> bytes), so segment replay runs without disk I/O.

type Files = Arc<Mutex<BTreeMap<PathBuf, Arc<Mutex<Vec<u8>>>>>>;

/// A minimal in-memory [`FileSystem`] for the plog target.
#[derive(Debug, Default, Clone)]
struct MemFs {
    files: Files,
}

struct MemWritable(Arc<Mutex<Vec<u8>>>);

impl WritableFile for MemWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.lock().extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.lock().len() as u64
    }
}

struct MemRandom(Vec<u8>);

impl RandomAccessFile for MemRandom {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let src = self
            .0
            .get(start..start.checked_add(buf.len()).ok_or_else(eof)?)
            .ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

#[derive(Debug)]
struct MemLock;
impl FileLock for MemLock {}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "short read")
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file")
}

impl MemFs {
    fn put(&self, path: &Path, data: &[u8]) {
        self.files
            .lock()
            .insert(path.to_path_buf(), Arc::new(Mutex::new(data.to_vec())));
    }
    fn get(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.lock().get(path).map(|f| f.lock().clone())
    }
}

impl FileSystem for MemFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = Arc::new(Mutex::new(Vec::new()));
        self.files.lock().insert(path.to_path_buf(), f.clone());
        Ok(Box::new(MemWritable(f)))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = self.files.lock().get(path).cloned().ok_or_else(not_found)?;
        Ok(Box::new(MemWritable(f)))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        let data = self.get(path).ok_or_else(not_found)?;
        Ok(Arc::new(MemRandom(data)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = self.files.lock();
        let f = files.remove(from).ok_or_else(not_found)?;
        files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let data = self.get(from).ok_or_else(not_found)?;
        self.put(to, &data);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.files
            .lock()
            .remove(path)
            .map(|_| ())
            .ok_or_else(not_found)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.files.lock().retain(|p, _| !p.starts_with(path));
        Ok(())
    }
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .files
            .lock()
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.lock().contains_key(path)
    }
    fn file_size(&self, path: &Path) -> io::Result<u64> {
        self.get(path).map(|d| d.len() as u64).ok_or_else(not_found)
    }
    fn lock(&self, _path: &Path) -> io::Result<Box<dyn FileLock>> {
        Ok(Box::new(MemLock))
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

fn plog_dir() -> &'static Path {
    Path::new("/fuzz/plog")
}

// ---------------------------------------------------------------------------------------------
// plog

/// `plog`: the plog's decoders. Selector byte `% 6`:
/// 0 = a stream of records through [`format::decode_record`];
/// 1 = the same, with bodies (`u16` length + body) framed here with a valid CRC so mutations
///     reach the body decoders;
/// 2 = [`Mutation::decode`];
/// 3 = segment files replayed by [`Segments::open`] (torn-tail cut, reopen, append, reopen);
/// 4 = the meta file JSON through [`meta::read`] (read → write → read equal);
/// 5 = round trip: entries and truncations built from the input, encoded, replayed.
///
/// Every decoded record must re-encode to the same bytes (structurally equal for membership
/// payloads, whose JSON is not canonical), and every decoded mutation likewise.
pub fn plog(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.u8();
    match sel % 6 {
        0 => check_record_stream(input.rest()),
        1 => {
            let mut buf = Vec::new();
            while !input.is_empty() {
                let len = usize::from(input.u16() % 1024);
                let body = input.bytes(len);
                frame(&mut buf, body);
            }
            check_record_stream(&buf);
        }
        2 => check_mutation(input.rest()),
        3 => segments_raw(&mut input),
        4 => meta_round_trip(input.rest()),
        _ => build_round_trip(&mut input),
    }
}

/// The record framing of `plog::format` (masked CRC32C of `len | body`), rebuilt here so the
/// fuzzer can produce bodies with valid checksums; the round trip checks it agrees.
fn frame(out: &mut Vec<u8>, body: &[u8]) {
    let len_bytes = (body.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body);
    let masked = crc.rotate_right(15).wrapping_add(0xa282_ead8);
    out.extend_from_slice(&masked.to_le_bytes());
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(body);
}

/// Decodes records from the start of `buf` until one fails; checks each.
fn check_record_stream(buf: &[u8]) {
    let mut pos = 0;
    let mut n = 0;
    while pos < buf.len() {
        let Ok(d) = format::decode_record(&buf[pos..]) else {
            break;
        };
        check_record(&buf[pos..], &d);
        pos += d.framed_len;
        n += 1;
        assert!(n <= buf.len(), "record stream did not terminate");
    }
}

/// Re-encodes a decoded record: the same bytes, or for membership payloads an equal record.
fn check_record(buf: &[u8], d: &Decoded) {
    assert!(
        d.framed_len >= format::RECORD_HEADER_BYTES && d.framed_len <= buf.len(),
        "framed_len {} of {} bytes",
        d.framed_len,
        buf.len()
    );
    let original = &buf[..d.framed_len];
    let mut out = Vec::new();
    match &d.record {
        Record::Truncate { from } => {
            format::encode_truncate(&mut out, *from);
            assert_eq!(out, original, "truncation record re-encodes differently");
        }
        Record::Entry(r) => {
            format::encode_record(&mut out, &r.entry, r.committed.as_ref(), r.timestamp_ms);
            if matches!(r.entry.payload, EntryPayload::Membership(_)) {
                let again = format::decode_record(&out).expect("decode of a re-encoded record");
                assert_eq!(again.framed_len, out.len());
                let Record::Entry(a) = again.record else {
                    panic!("entry re-decoded as a truncation");
                };
                assert_eq!(a.entry, r.entry);
                assert_eq!(a.committed, r.committed);
                assert_eq!(a.timestamp_ms, r.timestamp_ms);
            } else {
                assert_eq!(out, original, "entry record re-encodes differently");
            }
            if let EntryPayload::Normal(m) = &r.entry.payload {
                let _ = (m.validate(), m.size_bytes());
            }
        }
    }
}

fn check_mutation(bytes: &[u8]) {
    let Some(m) = Mutation::decode(bytes) else {
        return;
    };
    let mut out = Vec::new();
    m.encode_to(&mut out);
    assert_eq!(out, bytes, "mutation re-encodes differently");
    assert_eq!(Mutation::decode(&out).as_ref(), Some(&m));
    let _ = (m.validate(), m.size_bytes());
}

/// What replaying `files` (segment contents, oldest first) must load, as `Segments::open`
/// documents it: `Err(())` when a non-last segment is damaged.
#[allow(clippy::type_complexity)]
fn model_replay(
    files: &[Vec<u8>],
    purged: Option<u64>,
) -> Result<(BTreeMap<u64, Entry<TypeConfig>>, Option<LogId<u64>>), ()> {
    let mut entries = BTreeMap::new();
    let mut committed = None;
    for (i, data) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        if !format::header_ok(data) {
            if last && data.len() <= format::SEGMENT_HEADER_BYTES {
                break;
            }
            return Err(());
        }
        let mut pos = format::SEGMENT_HEADER_BYTES;
        while pos < data.len() {
            let d = match format::decode_record(&data[pos..]) {
                Ok(d) => d,
                Err(_) if last => break,
                Err(_) => return Err(()),
            };
            pos += d.framed_len;
            match d.record {
                Record::Entry(r) => {
                    let index = r.entry.log_id.index;
                    if r.committed > committed {
                        committed = r.committed;
                    }
                    if purged.is_none_or(|p| index > p) {
                        entries.insert(index, r.entry);
                    }
                }
                Record::Truncate { from } => {
                    entries.split_off(&from);
                }
            }
        }
    }
    Ok((entries, committed))
}

fn seg_path(seq: u64) -> PathBuf {
    plog_dir().join(format::segment_name(seq))
}

/// Writes `files` as segments 0.. and checks `Segments::open` against [`model_replay`]; then
/// that the torn-tail cut is durable (a reopen loads the same, with no cut), and that an entry
/// and a truncation appended after open are replayed by the next open.
fn check_segments(files: &[Vec<u8>], purged_index: Option<u64>, segment_max: u64) {
    let fs = MemFs::default();
    for (i, f) in files.iter().enumerate() {
        fs.put(&seg_path(i as u64), f);
    }
    // Stray files the loader must skip or clean up.
    fs.put(&plog_dir().join("meta"), b"{}");
    fs.put(&plog_dir().join("00000000000000000001.log.tmp"), b"x");
    let purged = purged_index.map(|i| LogId::new(CommittedLeaderId::new(1, 1), i));
    let model = model_replay(files, purged_index);
    let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let opened = Segments::open(
        shared.clone(),
        plog_dir(),
        segment_max,
        purged.as_ref(),
        None,
        FUZZ_CACHE,
    );
    let (mut segs, loaded) = match (opened, model) {
        (Err(_), Err(())) => return,
        (Ok(_), Err(())) => panic!("a damaged non-last segment was accepted"),
        (Err(e), Ok(_)) => panic!("open failed on replayable segments: {e}"),
        (Ok(s), Ok((entries, committed))) => {
            assert!(
                loaded_eq(&all(&shared, &s.1), &entries),
                "loaded entries differ"
            );
            assert_eq!(s.1.committed, committed, "committed differs");
            s
        }
    };
    assert!(
        !fs.exists(&plog_dir().join("00000000000000000001.log.tmp")),
        "tmp file left"
    );
    let loaded_entries = all(&shared, &loaded);
    for (index, e) in &loaded_entries {
        assert_eq!(*index, e.log_id.index);
        assert!(purged_index.is_none_or(|p| *index > p));
    }
    let count = segs.count();
    drop(segs);
    let (segs2, again) = Segments::open(
        shared.clone(),
        plog_dir(),
        segment_max,
        purged.as_ref(),
        None,
        FUZZ_CACHE,
    )
    .expect("reopen after a clean open");
    assert!(!again.torn_tail_cut, "a torn tail survived the cut");
    assert!(
        loaded_eq(&all(&shared, &again), &loaded_entries),
        "reopen differs"
    );
    assert_eq!(again.committed, loaded.committed);
    assert_eq!(segs2.count(), count);
    segs = segs2;

    // Append one entry past everything and truncate it plus one older decree, then replay.
    let next = loaded_entries
        .keys()
        .next_back()
        .copied()
        .or(purged_index)
        .unwrap_or(0)
        .saturating_add(1);
    if next == u64::MAX {
        return;
    }
    let mut m = Mutation::new();
    m.put(b"k".to_vec(), next.to_le_bytes().to_vec());
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(9, 1), next),
        payload: EntryPayload::Normal(m),
    };
    let mut buf = Vec::new();
    format::encode_record(&mut buf, &e, None, 5);
    segs.append(&buf, Some(next)).expect("append");
    let mut expect = loaded_entries.clone();
    expect.insert(next, e.clone());
    drop(segs);
    let (mut segs3, after) = Segments::open(
        shared.clone(),
        plog_dir(),
        segment_max,
        purged.as_ref(),
        None,
        FUZZ_CACHE,
    )
    .expect("reopen after append");
    assert!(!after.torn_tail_cut);
    assert!(
        loaded_eq(&all(&shared, &after), &expect),
        "appended entry not replayed"
    );
    let cut = next.saturating_sub(1);
    segs3.truncate(cut).expect("truncate");
    expect.split_off(&cut);
    drop(segs3);
    let (_, last) = Segments::open(
        shared.clone(),
        plog_dir(),
        segment_max,
        purged.as_ref(),
        None,
        FUZZ_CACHE,
    )
    .expect("reopen after truncate");
    assert!(
        loaded_eq(&all(&shared, &last), &expect),
        "truncation not replayed"
    );
}

/// A cache small enough that most loaded entries are read back from the segments.
const FUZZ_CACHE: CacheLimits = CacheLimits {
    entries_max: 2,
    bytes_max: 1 << 10,
};

/// Every entry `loaded` indexes, read back (cache and segments) as the plog's readers do.
fn all(fs: &Arc<dyn FileSystem>, loaded: &Loaded) -> BTreeMap<u64, Entry<TypeConfig>> {
    let plan = loaded
        .entries
        .plan((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded));
    let entries =
        segment::resolve(fs.as_ref(), plog_dir(), plan).expect("indexed entries read back");
    entries.into_iter().map(|e| (e.log_id.index, e)).collect()
}

fn loaded_eq(a: &BTreeMap<u64, Entry<TypeConfig>>, b: &BTreeMap<u64, Entry<TypeConfig>>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && x.1 == y.1)
}

/// Mode 3: `flags u8` (`% 3 + 1` segments; bit 2: a purge mark; bit 3: small segment size),
/// `purged u8`, then per non-last segment a `u16` length and its bytes; the last gets the rest.
fn segments_raw(input: &mut Input<'_>) {
    let flags = input.u8();
    let n = usize::from(flags % 3) + 1;
    let purged = input.u8();
    let purged = (flags & 4 != 0).then_some(u64::from(purged));
    let mut files = Vec::new();
    for _ in 1..n {
        let len = usize::from(input.u16());
        files.push(input.bytes(len).to_vec());
    }
    files.push(input.rest().to_vec());
    let segment_max = if flags & 8 != 0 { 64 } else { 1 << 20 };
    check_segments(&files, purged, segment_max);
}

fn meta_round_trip(bytes: &[u8]) {
    let fs = MemFs::default();
    fs.put(&plog_dir().join(meta::META_FILE), bytes);
    let Ok(m) = meta::read(&fs, plog_dir()) else {
        return;
    };
    assert_eq!(m.format_version, meta::META_VERSION);
    meta::write(&fs, plog_dir(), &m).expect("write meta");
    let again = meta::read(&fs, plog_dir()).expect("re-read meta");
    assert_eq!(again, m);
}

/// Ballots for built mutations. `Ballot(u64::MAX)` is left out: `Mutation::encode_to` stores
/// `ballot + 1` saturating, so it decodes as `Ballot(u64::MAX - 1)` (reported, not fixed).
fn ballot_from(b: u8) -> Option<Ballot> {
    match b % 5 {
        0 => None,
        1 => Some(Ballot(0)),
        2 => Some(Ballot(u64::from(b))),
        3 => Some(Ballot(u64::MAX - 1)),
        _ => Some(Ballot(u64::from(b) << 40)),
    }
}

fn mutation_from(input: &mut Input<'_>) -> Mutation {
    let mut m = Mutation {
        ballot: ballot_from(input.u8()),
        ops: Vec::new(),
        control: None,
    };
    let sel = input.u8();
    if sel.is_multiple_of(4) {
        // A control (ingest) mutation; the encoding is structural, so any UTF-8 round-trips.
        let text = |input: &mut Input<'_>, n: u8| {
            String::from_utf8_lossy(input.bytes(usize::from(n % 16))).into_owned()
        };
        let source_dir = text(input, sel / 4);
        let mut files = Vec::new();
        for _ in 0..input.u8() % 4 {
            let k = input.u8();
            files.push(IngestFile {
                name: text(input, k),
                size: u64::from(k) << 20,
                crc32c: u32::from(k).wrapping_mul(0x9e37_79b9),
            });
        }
        m.control = Some(ControlOp::Ingest(IngestCommand {
            load_id: u64::from(sel) << 32 | u64::from(input.u8()),
            source_dir,
            files,
        }));
        return m;
    }
    let n = input.u8() % 5;
    for _ in 0..n {
        let k = input.u8();
        let a = input.bytes(usize::from(k % 8)).to_vec();
        let b = input.bytes(usize::from(k / 8 % 8)).to_vec();
        m.ops.push(match k / 64 {
            0 | 1 => WriteOp::Put { key: a, value: b },
            2 => WriteOp::Delete { key: a },
            _ => WriteOp::DeleteRange { start: a, end: b },
        });
    }
    m
}

fn log_id_from(input: &mut Input<'_>, index: u64) -> LogId<u64> {
    let term = u64::from(input.u8() % 4);
    let node = u64::from(input.u8() % 3);
    LogId::new(CommittedLeaderId::new(term, node), index)
}

/// Mode 5: records built from the input (entries with every payload kind, truncations), split
/// into segments; every record decodes to what was encoded, and the segments replay as modelled.
fn build_round_trip(input: &mut Input<'_>) {
    let flags = input.u8();
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut index = 0u64;
    while !input.is_empty() && records.len() < 64 {
        let op = input.u8();
        let mut buf = Vec::new();
        if op % 8 == 7 {
            let from = u64::from(input.u8() % 16);
            format::encode_truncate(&mut buf, from);
            let d = format::decode_record(&buf).expect("decode a built truncation");
            assert!(matches!(d.record, Record::Truncate { from: f } if f == from));
            assert_eq!(d.framed_len, buf.len());
        } else {
            index += u64::from(op % 3);
            let log_id = log_id_from(input, index);
            let payload = match op / 8 % 3 {
                0 => EntryPayload::Blank,
                1 => EntryPayload::Normal(mutation_from(input)),
                _ => {
                    let voters: BTreeSet<u64> = (0..=u64::from(input.u8() % 4)).collect();
                    EntryPayload::Membership(Membership::<u64, BasicNode>::new(vec![voters], None))
                }
            };
            let entry = Entry::<TypeConfig> { log_id, payload };
            let committed = (op & 0x40 != 0).then(|| log_id_from(input, index / 2));
            let ts = u64::from(input.u16()) << 24;
            format::encode_record(&mut buf, &entry, committed.as_ref(), ts);
            let d = format::decode_record(&buf).expect("decode a built record");
            assert_eq!(d.framed_len, buf.len());
            let Record::Entry(r) = d.record else {
                panic!("entry decoded as a truncation");
            };
            assert_eq!(r.entry, entry);
            assert_eq!(r.committed, committed);
            assert_eq!(r.timestamp_ms, ts);
            // Our framing agrees with the crate's.
            let mut ours = Vec::new();
            frame(&mut ours, &buf[format::RECORD_HEADER_BYTES..]);
            assert_eq!(ours, buf);
        }
        records.push(buf);
    }
    // Split into up to three segments; optionally tear the last one.
    let nseg = usize::from(flags % 3) + 1;
    let per = records.len().div_ceil(nseg).max(1);
    let mut files: Vec<Vec<u8>> = records
        .chunks(per)
        .map(|chunk| {
            let mut f = format::segment_header().to_vec();
            for r in chunk {
                f.extend_from_slice(r);
            }
            f
        })
        .collect();
    if files.is_empty() {
        files.push(format::segment_header().to_vec());
    }
    if flags & 8 != 0 {
        if let Some(last) = files.last_mut() {
            let cut = usize::from(flags >> 4);
            last.truncate(last.len().saturating_sub(cut));
        }
    }
    check_stream_of(&files);
    let purged = (flags & 4 != 0).then_some(u64::from(flags >> 5));
    check_segments(&files, purged, 1 << 20);
}

fn check_stream_of(files: &[Vec<u8>]) {
    for f in files {
        check_record_stream(&f[format::SEGMENT_HEADER_BYTES.min(f.len())..]);
    }
}

// ---------------------------------------------------------------------------------------------
// throttle

fn render(cfg: &ThrottleConfig) -> String {
    let mut parts = Vec::new();
    if let Some(r) = cfg.delay {
        parts.push(format!("{}*delay*{}", r.threshold, r.ms));
    }
    if let Some(r) = cfg.reject {
        parts.push(format!("{}*reject*{}", r.threshold, r.ms));
    }
    parts.join(",")
}

fn check_rule(r: Option<Rule>) {
    if let Some(r) = r {
        assert!(r.ms <= MAX_THROTTLE_MS, "ms {} above the maximum", r.ms);
    }
}

/// `throttle`: write-throttling strings (`ThrottleConfig::parse`, `WriteThrottling::parse`).
/// The input is read as (lossy) UTF-8; a line break splits it into the by-QPS and by-size
/// strings. A string that parses must have `ms <= 60000`, re-render (as `<N>*delay*<ms>,...`;
/// the crate has no formatter, so it is written here) and re-parse to the same config, and a
/// throttle built from it must decide as its rules say.
pub fn throttle(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    for s in [&text[..], a, b] {
        let Ok(cfg) = ThrottleConfig::parse(s) else {
            continue;
        };
        check_rule(cfg.delay);
        check_rule(cfg.reject);
        let canon = render(&cfg);
        assert_eq!(
            ThrottleConfig::parse(&canon).ok(),
            Some(cfg),
            "{s:?} re-rendered as {canon:?}"
        );
        let t = Throttle::new(cfg);
        let now = Instant::now();
        let mut count = 0u64;
        for units in [1, 0, 1000, u64::MAX / 2, u64::MAX] {
            let after = count.saturating_add(units);
            let d = t.control(units, now);
            match cfg.reject {
                Some(r) if after > r.threshold => {
                    assert_eq!(d, Decision::Reject(Duration::from_millis(r.ms)));
                    continue;
                }
                _ => {}
            }
            count = after;
            match cfg.delay {
                Some(r) if after > r.threshold => {
                    assert_eq!(d, Decision::Delay(Duration::from_millis(r.ms)));
                }
                _ => assert_eq!(d, Decision::Pass),
            }
        }
    }
    if let Ok(w) = WriteThrottling::parse(a, b) {
        for bytes in [0, 1, 1 << 20] {
            match w.admit(bytes) {
                Ok(Some(d)) => assert!(d <= Duration::from_millis(MAX_THROTTLE_MS)),
                Ok(None) => {}
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        let s = w.stats();
        assert!(s.delayed + s.rejected <= 3);
    }
}

// ---------------------------------------------------------------------------------------------
// transport_frame

/// The TCP transport's decoders: a frame from arbitrary bytes (length, checksum, version, kind;
/// a decoded frame re-encodes to the same bytes), and the Raft payloads from arbitrary bytes
/// (either directly, so the fuzzer need not forge checksums, or from a decoded frame). A
/// payload that decodes must survive an encode/decode round trip.
pub fn transport_frame(data: &[u8]) {
    use crate::transport::frame::{decode_frame, decode_payload, encode_frame};
    use crate::transport::message::{RaftEnvelope, RaftResponse};
    fn payloads(bytes: &[u8]) {
        if let Ok(env) = decode_payload::<RaftEnvelope>(bytes) {
            let again = crate::transport::frame::encode_payload(&env).expect("re-encode envelope");
            let back: RaftEnvelope = decode_payload(&again).expect("round trip envelope");
            assert_eq!(format!("{env:?}"), format!("{back:?}"));
        }
        if let Ok(resp) = decode_payload::<RaftResponse>(bytes) {
            let again = crate::transport::frame::encode_payload(&resp).expect("re-encode response");
            let back: RaftResponse = decode_payload(&again).expect("round trip response");
            assert_eq!(format!("{resp:?}"), format!("{back:?}"));
        }
    }
    payloads(data);
    if let Ok(Some((frame, used))) = decode_frame(data) {
        assert!(used <= data.len());
        let bytes = encode_frame(&frame).expect("a decoded frame re-encodes");
        assert_eq!(&bytes[..], &data[..used], "frame round trip");
        payloads(&frame.payload);
    }
}

/// Seed frames for `transport_frame`: a vote, an AppendEntries with entries, a snapshot chunk.
fn transport_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use crate::transport::frame::{encode_frame, encode_payload, Frame, FrameKind};
    use crate::transport::message::{RaftEnvelope, RaftRequest};
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    let id = |term: u64, index: u64| LogId::new(CommittedLeaderId::new(term, 1), index);
    let vote = Vote::new(2, 1);
    let mut m = Mutation::new();
    m.put(b"k".to_vec(), b"v".to_vec()).delete(b"d".to_vec());
    let bodies = [
        (
            "vote",
            RaftRequest::Vote(VoteRequest::new(vote, Some(id(1, 3)))),
        ),
        (
            "append",
            RaftRequest::AppendEntries(AppendEntriesRequest {
                vote,
                prev_log_id: Some(id(1, 3)),
                entries: vec![
                    Entry {
                        log_id: id(2, 4),
                        payload: EntryPayload::Blank,
                    },
                    Entry {
                        log_id: id(2, 5),
                        payload: EntryPayload::Normal(m),
                    },
                ],
                leader_commit: Some(id(1, 3)),
            }),
        ),
        (
            "chunk",
            RaftRequest::SnapshotChunk {
                snapshot_id: "2-5-0".into(),
                file: 1,
                offset: 0,
                data: b"sst bytes".to_vec(),
            },
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, body)| {
            let env = RaftEnvelope {
                gpid: crate::types::Gpid::new(1, 2),
                from: 1,
                to: 2,
                body,
            };
            let frame = Frame {
                kind: FrameKind::RaftRequest,
                request_id: 7,
                payload: encode_payload(&env).expect("seed payload"),
            };
            (name, encode_frame(&frame).expect("seed frame"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// seeds

/// The generated seed corpus: `(target, name, bytes)`, written by the crate's own encoders.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let with = |sel: u8, body: &[u8]| {
        let mut v = vec![sel];
        v.extend_from_slice(body);
        v
    };
    let id = |term: u64, index: u64| LogId::new(CommittedLeaderId::new(term, 1), index);
    let mut m = Mutation::new();
    m.put(b"key1".to_vec(), b"value1".to_vec())
        .delete(b"key2".to_vec())
        .delete_range(b"a".to_vec(), b"c".to_vec());
    m.ballot = Some(Ballot(3));
    let mut mbytes = Vec::new();
    m.encode_to(&mut mbytes);
    let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let entries = [
        Entry::<TypeConfig> {
            log_id: id(1, 1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: id(1, 2),
            payload: EntryPayload::Normal(m.clone()),
        },
        Entry {
            log_id: id(2, 3),
            payload: EntryPayload::Membership(Membership::new(vec![members], None)),
        },
        Entry {
            log_id: id(2, 4),
            payload: EntryPayload::Normal(Mutation::new()),
        },
    ];
    let mut records = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let committed = (i > 0).then(|| id(1, i as u64));
        format::encode_record(&mut records, e, committed.as_ref(), 1_700_000_000_000);
    }
    let mut with_trunc = records.clone();
    format::encode_truncate(&mut with_trunc, 3);
    out.push(("plog", "records", with(0, &with_trunc)));
    let mut bad = with_trunc.clone();
    bad[20] ^= 0x10;
    out.push(("plog", "records-bad-crc", with(0, &bad)));
    out.push((
        "plog",
        "records-torn",
        with(0, &with_trunc[..with_trunc.len() - 5]),
    ));
    // Mode 1: bodies framed by the target (u16 length + body).
    let mut bodies = Vec::new();
    let mut pos = 0;
    while let Ok(d) = format::decode_record(&with_trunc[pos..]) {
        let body = &with_trunc[pos + format::RECORD_HEADER_BYTES..pos + d.framed_len];
        bodies.extend_from_slice(&(body.len() as u16).to_le_bytes());
        bodies.extend_from_slice(body);
        pos += d.framed_len;
        if pos >= with_trunc.len() {
            break;
        }
    }
    out.push(("plog", "bodies", with(1, &bodies)));
    out.push(("plog", "mutation", with(2, &mbytes)));
    let mut long_count = mbytes.clone();
    long_count[8] = 0xff;
    out.push(("plog", "mutation-bad-count", with(2, &long_count)));
    let ingest = Mutation::control(
        Some(Ballot(4)),
        ControlOp::Ingest(IngestCommand {
            load_id: 0x5eed,
            source_dir: "/data/1.0/bulk_load".into(),
            files: vec![IngestFile {
                name: "000001.sst".into(),
                size: 4096,
                crc32c: 0xdead_beef,
            }],
        }),
    );
    let mut ibytes = Vec::new();
    ingest.encode_to(&mut ibytes);
    out.push(("plog", "mutation-ingest", with(2, &ibytes)));
    let mut ibad = ibytes.clone();
    ibad[12] = 7; // an unknown control kind
    out.push(("plog", "mutation-ingest-bad-kind", with(2, &ibad)));

    // Mode 3: two segments (the second torn) and a single one with a truncation.
    let mut seg0 = format::segment_header().to_vec();
    seg0.extend_from_slice(&records);
    let mut seg1 = format::segment_header().to_vec();
    format::encode_truncate(&mut seg1, 3);
    format::encode_record(&mut seg1, &entries[0], None, 9);
    seg1.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    let mut two = vec![1u8, 0];
    two.extend_from_slice(&(seg0.len() as u16).to_le_bytes());
    two.extend_from_slice(&seg0);
    two.extend_from_slice(&seg1);
    out.push(("plog", "segments-torn", with(3, &two)));
    let mut one = vec![4u8 | 8, 1];
    one.extend_from_slice(&seg0);
    out.push(("plog", "segment-purged", with(3, &one)));
    let mut badhdr = two.clone();
    badhdr[4] ^= 1; // magic of the first segment
    out.push(("plog", "segments-bad-header", with(3, &badhdr)));

    let meta = PlogMeta {
        format_version: meta::META_VERSION,
        vote: Some(Vote::new(3, 2)),
        committed: Some(id(3, 10)),
        purged: Some(id(2, 4)),
    };
    out.push((
        "plog",
        "meta",
        with(4, &serde_json::to_vec(&meta).unwrap_or_default()),
    ));
    out.push((
        "plog",
        "meta-bad-version",
        with(
            4,
            b"{\"format_version\":2,\"vote\":null,\"committed\":null,\"purged\":null}",
        ),
    ));
    out.push((
        "plog",
        "built",
        with(
            5,
            b"\x02\x09\x01\x01\x02\x02\x0a\x00\x01\x43\x01\x02\x03\x45\x01\x02ab\x20cd\x07\x02\x11\x00\x01\x03\x12\x00\x00\x50",
        ),
    ));
    out.push((
        "plog",
        "built-torn-purged",
        with(
            5,
            b"\xac\x01\x01\x01\x02\x09\x02\x01\x00\x07\x01\x12\x01\x00\x00",
        ),
    ));

    for (name, s) in [
        ("pegasus", "300*delay*100,500*reject*200"),
        ("kilo", "10K*delay*5"),
        ("mega-reject", "2M*reject*50"),
        ("two-lines", "300*delay*100\n1M*delay*10,5M*reject*1000"),
        ("spaces", " 1*delay*0 , 2*reject*60000 "),
        ("empty", ""),
        ("twice", "1*delay*1,2*delay*2"),
        ("over-ms", "1*delay*60001"),
        ("overflow", "18446744073709551615K*delay*1"),
        ("garbage", "*,**delay**,K*M*reject\u{e9}*\u{0}"),
    ] {
        out.push(("throttle", name, s.as_bytes().to_vec()));
    }
    for (name, bytes) in transport_seeds() {
        out.push(("transport_frame", name, bytes));
    }
    out
}

/// Writes [`seeds`] under `corpus_dir/<target>/seed-<name>`.
pub fn write_seeds(corpus_dir: &Path) -> io::Result<usize> {
    siltdb::fuzzing::corpus::write_seeds(corpus_dir, &seeds())
}
