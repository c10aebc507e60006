//! External merge sort of `(key, value)` records under a memory budget.
//!
//! Records are buffered until the budget is reached, sorted by `(key, input order)`, and
//! spilled as a sorted run file in a scratch directory. At the end the runs (and whatever is
//! still buffered) are merged with a k-way heap merge. At most [`MAX_MERGE_FAN_IN`] runs are
//! merged at once; beyond that, runs are merged into longer runs first, so a tiny budget over a
//! large input never opens thousands of files at a time.
//!
//! Duplicate keys are resolved after the merge, where equal keys are adjacent and ordered by
//! input order: [`DuplicatePolicy::LastWins`] keeps the last occurrence; [`DuplicatePolicy::Fail`]
//! stops with an error naming the key and both occurrences.
//!
//! Run file record layout (little-endian), see [`RunWriter`]:
//! `crc32c u32 | key_len u32 | value_len u32 | seq u64 | file u32 | line u64 | key | value`,
//! where the CRC covers everything after itself.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// Most runs merged at once (each holds an open file and a read buffer).
pub const MAX_MERGE_FAN_IN: usize = 64;
/// Bytes of fixed header in front of every record in a run file.
const RUN_HEADER_BYTES: usize = 32;
/// Memory charged per buffered record on top of its key and value bytes (the record struct and
/// allocator overhead), so a budget holds for many tiny records too.
const RECORD_OVERHEAD_BYTES: usize = std::mem::size_of::<SortRecord>() + 32;
/// Bounds on the read buffer of each run during a merge.
const RUN_READ_BUFFER_BYTES_MIN: usize = 4 << 10;
const MAX_RUN_READ_BUFFER_BYTES: usize = 1 << 20;

/// Where a record came from: input file index (into the caller's list) and 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the input file in the caller's list.
    pub file: u32,
    /// 1-based line in that file.
    pub line: u64,
}

/// One record being sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortRecord {
    /// Key bytes.
    pub key: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
    /// Position in input order (0, 1, 2, ...): the tie-breaker that makes "last wins" exact.
    pub seq: u64,
    /// Where it was read.
    pub origin: Origin,
}

impl SortRecord {
    fn sort_key(&self) -> (&[u8], u64) {
        (&self.key, self.seq)
    }
}

/// What to do when a key occurs more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// Keep the last occurrence in input order.
    LastWins,
    /// Fail, naming the key and both positions.
    Fail,
}

/// Sort failures.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    /// Reading or writing a run file failed.
    #[error("sort scratch file {path}: {source}")]
    Io {
        /// The run file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A run file read back differently from how it was written.
    #[error("sort scratch file {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The run file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// The key occurs twice and duplicates are not allowed.
    #[error("duplicate key")]
    Duplicate {
        /// The key.
        key: Vec<u8>,
        /// The earlier occurrence.
        first: Origin,
        /// The later occurrence.
        second: Origin,
    },
}

/// Sorter configuration.
#[derive(Debug, Clone)]
pub struct SortConfig {
    /// Bytes of records buffered before a run is spilled.
    pub memory_budget_bytes: usize,
    /// Directory for run files (must exist; the caller removes it).
    pub scratch_dir: PathBuf,
    /// What to do with duplicate keys.
    pub duplicates: DuplicatePolicy,
}

/// Counters describing a sort, for progress and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SortStats {
    /// Records pushed.
    pub records_in: u64,
    /// Run files written (including intermediate merges).
    pub runs_spilled: u64,
    /// Bytes written to run files.
    pub bytes_spilled: u64,
    /// Intermediate merge passes (when there were more than [`MAX_MERGE_FAN_IN`] runs).
    pub merge_passes: u64,
}

/// Accumulates records, spilling sorted runs when the budget is reached.
pub struct ExternalSorter {
    config: SortConfig,
    buffer: Vec<SortRecord>,
    buffered_bytes: usize,
    runs: Vec<PathBuf>,
    next_run_id: u64,
    stats: SortStats,
}

impl ExternalSorter {
    /// A sorter writing its runs under `config.scratch_dir`.
    pub fn new(config: SortConfig) -> Self {
        ExternalSorter {
            config,
            buffer: Vec::new(),
            buffered_bytes: 0,
            runs: Vec::new(),
            next_run_id: 0,
            stats: SortStats::default(),
        }
    }

    /// Adds a record; its `seq` must be larger than every earlier record's.
    pub fn push(&mut self, record: SortRecord) -> Result<(), SortError> {
        let cost = record_cost(&record);
        if self.buffered_bytes + cost > self.config.memory_budget_bytes && !self.buffer.is_empty() {
            self.spill()?;
        }
        debug_assert!(self.buffer.last().is_none_or(|last| last.seq < record.seq));
        self.buffered_bytes += cost;
        self.stats.records_in += 1;
        self.buffer.push(record);
        Ok(())
    }

    /// Counters so far.
    pub fn stats(&self) -> SortStats {
        self.stats
    }

    /// Finishes: the records in key order, duplicates resolved by the policy.
    pub fn finish(mut self) -> Result<SortedRecords, SortError> {
        self.buffer
            .sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        if self.runs.is_empty() {
            let source = Source::Memory(std::mem::take(&mut self.buffer).into_iter());
            return Ok(SortedRecords::new(
                source,
                self.config.duplicates,
                self.stats,
            ));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        while self.runs.len() > MAX_MERGE_FAN_IN {
            self.merge_pass()?;
        }
        let merger = Merger::open(&self.runs, self.read_buffer_bytes())?;
        Ok(SortedRecords::new(
            Source::Merge(merger),
            self.config.duplicates,
            self.stats,
        ))
    }

    fn read_buffer_bytes(&self) -> usize {
        (self.config.memory_budget_bytes / (MAX_MERGE_FAN_IN + 1))
            .clamp(RUN_READ_BUFFER_BYTES_MIN, MAX_RUN_READ_BUFFER_BYTES)
    }

    fn new_run_path(&mut self) -> PathBuf {
        self.next_run_id += 1;
        self.config
            .scratch_dir
            .join(format!("run-{:06}.bin", self.next_run_id))
    }

    fn spill(&mut self) -> Result<(), SortError> {
        self.buffer
            .sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let path = self.new_run_path();
        let mut writer = RunWriter::create(&path)?;
        for record in self.buffer.drain(..) {
            writer.write(&record)?;
        }
        self.stats.bytes_spilled += writer.finish()?;
        self.stats.runs_spilled += 1;
        self.buffered_bytes = 0;
        self.runs.push(path);
        Ok(())
    }

    /// Merges the oldest `MAX_MERGE_FAN_IN` runs into one (keeping duplicates: they are
    /// resolved only in the final merge, where all occurrences meet).
    fn merge_pass(&mut self) -> Result<(), SortError> {
        let inputs: Vec<PathBuf> = self.runs.drain(..MAX_MERGE_FAN_IN).collect();
        let path = self.new_run_path();
        let mut merger = Merger::open(&inputs, self.read_buffer_bytes())?;
        let mut writer = RunWriter::create(&path)?;
        while let Some(record) = merger.next_record()? {
            writer.write(&record)?;
        }
        self.stats.bytes_spilled += writer.finish()?;
        self.stats.runs_spilled += 1;
        self.stats.merge_passes += 1;
        drop(merger);
        for input in &inputs {
            std::fs::remove_file(input).map_err(|source| SortError::Io {
                path: input.clone(),
                source,
            })?;
        }
        self.runs.push(path);
        Ok(())
    }
}

fn record_cost(record: &SortRecord) -> usize {
    record.key.len() + record.value.len() + RECORD_OVERHEAD_BYTES
}

/// Writes one sorted run file.
pub struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
}

impl RunWriter {
    /// Creates the run file (it must not exist).
    pub fn create(path: &Path) -> Result<Self, SortError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| io_err(path, source))?;
        Ok(RunWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(256 << 10, file),
            bytes: 0,
        })
    }

    /// Appends a record.
    pub fn write(&mut self, record: &SortRecord) -> Result<(), SortError> {
        let header = encode_header(record)?;
        let crc = crc32c::crc32c_append(
            crc32c::crc32c_append(crc32c::crc32c(&header[4..]), &record.key),
            &record.value,
        );
        let mut header = header;
        header[..4].copy_from_slice(&crc.to_le_bytes());
        let result = self
            .out
            .write_all(&header)
            .and_then(|()| self.out.write_all(&record.key))
            .and_then(|()| self.out.write_all(&record.value));
        result.map_err(|source| io_err(&self.path, source))?;
        self.bytes += (RUN_HEADER_BYTES + record.key.len() + record.value.len()) as u64;
        Ok(())
    }

    /// Flushes and closes the file; returns its size.
    pub fn finish(mut self) -> Result<u64, SortError> {
        self.out
            .flush()
            .map_err(|source| io_err(&self.path, source))?;
        Ok(self.bytes)
    }
}

fn encode_header(record: &SortRecord) -> Result<[u8; RUN_HEADER_BYTES], SortError> {
    let too_long = |what: &str| SortError::Io {
        path: PathBuf::new(),
        source: std::io::Error::new(ErrorKind::InvalidInput, format!("{what} longer than 4 GiB")),
    };
    let key_len = u32::try_from(record.key.len()).map_err(|_| too_long("key"))?;
    let value_len = u32::try_from(record.value.len()).map_err(|_| too_long("value"))?;
    let mut header = [0u8; RUN_HEADER_BYTES];
    header[4..8].copy_from_slice(&key_len.to_le_bytes());
    header[8..12].copy_from_slice(&value_len.to_le_bytes());
    header[12..20].copy_from_slice(&record.seq.to_le_bytes());
    header[20..24].copy_from_slice(&record.origin.file.to_le_bytes());
    header[24..32].copy_from_slice(&record.origin.line.to_le_bytes());
    Ok(header)
}

/// Reads one sorted run file back.
pub struct RunReader {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
}

impl RunReader {
    /// Opens a run file with a read buffer of `buffer_bytes`.
    pub fn open(path: &Path, buffer_bytes: usize) -> Result<Self, SortError> {
        let file = File::open(path).map_err(|source| io_err(path, source))?;
        Ok(RunReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(buffer_bytes, file),
            offset: 0,
        })
    }

    /// The next record; `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<SortRecord>, SortError> {
        let mut header = [0u8; RUN_HEADER_BYTES];
        let got = read_full(&mut self.input, &mut header).map_err(|e| io_err(&self.path, e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < RUN_HEADER_BYTES {
            return Err(self.corrupt("truncated record header"));
        }
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        let u64_at =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let key_len = u32_at(4) as usize;
        let value_len = u32_at(8) as usize;
        let mut key = vec![0u8; key_len];
        let mut value = vec![0u8; value_len];
        let got_key = read_full(&mut self.input, &mut key).map_err(|e| io_err(&self.path, e))?;
        let got_value =
            read_full(&mut self.input, &mut value).map_err(|e| io_err(&self.path, e))?;
        if got_key < key_len || got_value < value_len {
            return Err(self.corrupt("truncated record body"));
        }
        let crc = crc32c::crc32c_append(
            crc32c::crc32c_append(crc32c::crc32c(&header[4..]), &key),
            &value,
        );
        if crc != u32_at(0) {
            return Err(self.corrupt("checksum mismatch"));
        }
        self.offset += (RUN_HEADER_BYTES + key_len + value_len) as u64;
        Ok(Some(SortRecord {
            key,
            value,
            seq: u64_at(12),
            origin: Origin {
                file: u32_at(20),
                line: u64_at(24),
            },
        }))
    }

    fn corrupt(&self, reason: &str) -> SortError {
        SortError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            reason: reason.to_string(),
        }
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn io_err(path: &Path, source: std::io::Error) -> SortError {
    SortError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Heap entry: the head record of run `run`, ordered smallest `(key, seq)` first.
struct Head {
    record: SortRecord,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.record.sort_key().cmp(&other.record.sort_key())
    }
}

/// k-way merge of sorted runs.
pub struct Merger {
    readers: Vec<RunReader>,
    heap: BinaryHeap<Reverse<Head>>,
}

impl Merger {
    /// Opens every run and primes the heap with each run's first record.
    pub fn open(runs: &[PathBuf], buffer_bytes: usize) -> Result<Self, SortError> {
        let mut readers = Vec::with_capacity(runs.len());
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (run, path) in runs.iter().enumerate() {
            let mut reader = RunReader::open(path, buffer_bytes)?;
            if let Some(record) = reader.next_record()? {
                heap.push(Reverse(Head { record, run }));
            }
            readers.push(reader);
        }
        Ok(Merger { readers, heap })
    }

    /// The smallest remaining record.
    pub fn next_record(&mut self) -> Result<Option<SortRecord>, SortError> {
        let Some(Reverse(Head { record, run })) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.readers[run].next_record()? {
            self.heap.push(Reverse(Head { record: next, run }));
        }
        Ok(Some(record))
    }
}

enum Source {
    Memory(std::vec::IntoIter<SortRecord>),
    Merge(Merger),
}

impl Source {
    fn next_record(&mut self) -> Result<Option<SortRecord>, SortError> {
        match self {
            Source::Memory(records) => Ok(records.next()),
            Source::Merge(merger) => merger.next_record(),
        }
    }
}

/// The sorted, de-duplicated output of an [`ExternalSorter`]; an iterator of records.
pub struct SortedRecords {
    source: Source,
    pending: Option<SortRecord>,
    duplicates: DuplicatePolicy,
    stats: SortStats,
    duplicates_dropped: u64,
    failed: bool,
}

impl SortedRecords {
    fn new(source: Source, duplicates: DuplicatePolicy, stats: SortStats) -> Self {
        SortedRecords {
            source,
            pending: None,
            duplicates,
            stats,
            duplicates_dropped: 0,
            failed: false,
        }
    }

    /// Counters of the sort that produced these records.
    pub fn stats(&self) -> SortStats {
        self.stats
    }

    /// Records dropped so far because a later occurrence of the same key won.
    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates_dropped
    }

    fn next_unique(&mut self) -> Result<Option<SortRecord>, SortError> {
        let mut current = match self.pending.take() {
            Some(record) => record,
            None => match self.source.next_record()? {
                Some(record) => record,
                None => return Ok(None),
            },
        };
        while let Some(next) = self.source.next_record()? {
            if next.key != current.key {
                self.pending = Some(next);
                break;
            }
            if self.duplicates == DuplicatePolicy::Fail {
                return Err(SortError::Duplicate {
                    key: next.key,
                    first: current.origin,
                    second: next.origin,
                });
            }
            self.duplicates_dropped += 1;
            current = next;
        }
        Ok(Some(current))
    }
}

impl Iterator for SortedRecords {
    type Item = Result<SortRecord, SortError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.next_unique().transpose();
        if matches!(result, Some(Err(_))) {
            self.failed = true;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(key: &[u8], value: &[u8], seq: u64) -> SortRecord {
        SortRecord {
            key: key.to_vec(),
            value: value.to_vec(),
            seq,
            origin: Origin {
                file: (seq % 3) as u32,
                line: seq + 1,
            },
        }
    }

    fn sort_all(
        records: &[SortRecord],
        budget: usize,
        duplicates: DuplicatePolicy,
    ) -> (Result<Vec<SortRecord>, SortError>, SortStats) {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = ExternalSorter::new(SortConfig {
            memory_budget_bytes: budget,
            scratch_dir: dir.path().to_path_buf(),
            duplicates,
        });
        for r in records {
            sorter.push(r.clone()).unwrap();
        }
        let sorted = sorter.finish().unwrap();
        let stats = sorted.stats();
        (sorted.collect(), stats)
    }

    fn pseudo_random_records(n: u64) -> Vec<SortRecord> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|seq| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = format!("k{:05}", x % (n / 2 + 1));
                record(key.as_bytes(), format!("v{seq}").as_bytes(), seq)
            })
            .collect()
    }

    #[test]
    fn tiny_budget_matches_a_model_with_last_wins() {
        let records = pseudo_random_records(5_000);
        let model: BTreeMap<Vec<u8>, Vec<u8>> = records
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        for budget in [1, 2_000, 64 << 10, 256 << 20] {
            let (sorted, stats) = sort_all(&records, budget, DuplicatePolicy::LastWins);
            let got: Vec<(Vec<u8>, Vec<u8>)> = sorted
                .unwrap()
                .into_iter()
                .map(|r| (r.key, r.value))
                .collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
            assert_eq!(got, want, "budget {budget}");
            if budget == 1 {
                assert_eq!(
                    stats.runs_spilled as usize,
                    5_000 + (5_000 - 1) / (MAX_MERGE_FAN_IN - 1)
                );
                assert!(stats.merge_passes > 0);
            }
        }
    }

    #[test]
    fn fail_policy_names_both_occurrences() {
        let records = vec![
            record(b"b", b"1", 0),
            record(b"a", b"2", 1),
            record(b"c", b"3", 2),
            record(b"a", b"4", 3),
        ];
        for budget in [1, 1 << 20] {
            let (sorted, _) = sort_all(&records, budget, DuplicatePolicy::Fail);
            match sorted.unwrap_err() {
                SortError::Duplicate { key, first, second } => {
                    assert_eq!(key, b"a");
                    assert_eq!((first.line, second.line), (2, 4));
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn corrupt_run_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let mut w = RunWriter::create(&path).unwrap();
        w.write(&record(b"key", b"value", 7)).unwrap();
        w.finish().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = RunReader::open(&path, 4096)
            .unwrap()
            .next_record()
            .unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}
