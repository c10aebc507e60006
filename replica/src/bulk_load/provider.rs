//! Where bulk-load files come from: the [`BulkLoadProvider`] trait, a provider over a local
//! directory ([`LocalDirProvider`], the layout `sst-ingest build` writes, one sub-directory per
//! partition index), and [`TestProvider`], an in-memory provider that blocks, delays, fails,
//! drops, corrupts or truncates any file on command.
//!
//! A provider streams bytes into a sink and checks the cancellation token between chunks; the
//! download task's sink refuses to write once its session is cancelled, so even a provider that
//! ignores the token can never make a stale task write (seed S1).

use super::metadata::{resolve_under, METADATA_FILE_NAME};
use parking_lot::Mutex;
use siltdb::CancelToken;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes moved per read/write step (and per cancellation check).
pub const CHUNK_BYTES: usize = 64 << 10;
/// Bound on how long a [`Gate`] holds a fetch before giving up with a transient error.
pub const MAX_GATE_WAIT: Duration = Duration::from_secs(60);

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The file (or metadata) does not exist at the provider: permanent.
    #[error("{what} not found at the provider")]
    NotFound {
        /// The file or metadata that is missing.
        what: String,
    },
    /// Worth retrying (network blip, provider busy).
    #[error("transient provider error: {0}")]
    Transient(String),
    /// Permanent I/O error.
    #[error("provider I/O error: {0}")]
    Io(String),
    /// The caller's token was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// A source of one table's bulk-load files, per partition index.
pub trait BulkLoadProvider: Send + Sync + std::fmt::Debug {
    /// Names of the files present for `partition` (metadata excluded).
    fn list(&self, partition: u32) -> Result<Vec<String>, ProviderError>;
    /// The raw `bulk_load_metadata.json` of `partition`.
    fn metadata(&self, partition: u32) -> Result<Vec<u8>, ProviderError>;
    /// True if [`BulkLoadProvider::fetch`] honours a non-zero `offset` (byte-range resume).
    fn supports_range(&self) -> bool;
    /// Writes bytes `offset..` of `name` to `sink`, returning how many were written. Checks
    /// `cancel` between chunks. `name` has already been validated by the caller.
    fn fetch(
        &self,
        partition: u32,
        name: &str,
        offset: u64,
        sink: &mut dyn Write,
        cancel: &CancelToken,
    ) -> Result<u64, ProviderError>;
}

fn sink_error(e: std::io::Error, cancel: &CancelToken) -> ProviderError {
    // A cancelled session's sink refuses writes; that is a cancellation, not an I/O error.
    if cancel.is_cancelled() {
        ProviderError::Cancelled
    } else {
        ProviderError::Io(format!("writing the local copy: {e}"))
    }
}

/// Files under `root/<partition index>/`, as `sst-ingest build --out root/<p>` writes them.
#[derive(Debug, Clone)]
pub struct LocalDirProvider {
    root: PathBuf,
}

impl LocalDirProvider {
    /// A provider reading `root/<partition>/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDirProvider { root: root.into() }
    }

    fn path(&self, partition: u32, name: &str) -> Result<PathBuf, ProviderError> {
        let dir = self.root.join(partition.to_string());
        resolve_under(&dir, name).map_err(ProviderError::Io)
    }
}

fn io_error(what: &str, e: std::io::Error) -> ProviderError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ProviderError::NotFound { what: what.into() }
    } else {
        ProviderError::Io(format!("{what}: {e}"))
    }
}

impl BulkLoadProvider for LocalDirProvider {
    fn list(&self, partition: u32) -> Result<Vec<String>, ProviderError> {
        let dir = self.root.join(partition.to_string());
        let shown = dir.display().to_string();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&shown, e))? {
            let entry = entry.map_err(|e| io_error(&shown, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != METADATA_FILE_NAME {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn metadata(&self, partition: u32) -> Result<Vec<u8>, ProviderError> {
        let path = self.path(partition, METADATA_FILE_NAME)?;
        let file = std::fs::File::open(&path).map_err(|e| io_error(METADATA_FILE_NAME, e))?;
        let mut text = Vec::new();
        let bound = super::metadata::MAX_METADATA_BYTES as u64 + 1;
        file.take(bound)
            .read_to_end(&mut text)
            .map_err(|e| io_error(METADATA_FILE_NAME, e))?;
        Ok(text)
    }

    fn supports_range(&self) -> bool {
        true
    }

    fn fetch(
        &self,
        partition: u32,
        name: &str,
        offset: u64,
        sink: &mut dyn Write,
        cancel: &CancelToken,
    ) -> Result<u64, ProviderError> {
        let path = self.path(partition, name)?;
        let mut file = std::fs::File::open(&path).map_err(|e| io_error(name, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(name, e))?;
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut written = 0u64;
        loop {
            if cancel.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            let n = match file.read(&mut buffer) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(name, e)),
            };
            sink.write_all(&buffer[..n])
                .map_err(|e| sink_error(e, cancel))?;
            written += n as u64;
        }
    }
}

/// A point a [`TestProvider`] fetch stops at until released (or, if allowed, cancelled).
#[derive(Debug, Default)]
pub struct Gate {
    reached: AtomicBool,
    released: AtomicBool,
    honor_cancel: bool,
}

impl Gate {
    /// True once a fetch is held at this gate; waits up to `wait_max`.
    pub fn wait_reached(&self, wait_max: Duration) -> bool {
        let deadline = Instant::now() + wait_max;
        while !self.reached.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Lets the held fetch continue.
    pub fn release(&self) {
        self.released.store(true, Ordering::Release);
    }

    fn hold(&self, cancel: &CancelToken) -> Result<(), ProviderError> {
        self.reached.store(true, Ordering::Release);
        let deadline = Instant::now() + MAX_GATE_WAIT;
        while !self.released.load(Ordering::Acquire) {
            if self.honor_cancel && cancel.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Transient("gate never released".into()));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

/// A file of one partition: (partition index, file name).
type FileKey = (u32, String);

/// A fault [`TestProvider`] applies to one file.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Deliver `after_bytes`, then hold at the gate.
    Block {
        /// Bytes delivered before holding.
        after_bytes: u64,
        /// The gate; keep a clone to observe and release it.
        gate: Arc<Gate>,
    },
    /// Sleep this long before each chunk.
    Delay(Duration),
    /// Fail with a transient error this many times, then serve normally.
    FailTransient(u32),
    /// The file is missing at the provider.
    Drop,
    /// Serve the file with the byte at this offset flipped.
    Corrupt(u64),
    /// Serve only the first `n` bytes.
    Truncate(u64),
}

impl Fault {
    /// A [`Fault::Block`] and its gate. `honor_cancel`: whether the held fetch wakes on cancel
    /// (a provider that ignores cancellation is the harder case for the caller).
    pub fn block(after_bytes: u64, honor_cancel: bool) -> (Fault, Arc<Gate>) {
        let gate = Arc::new(Gate {
            honor_cancel,
            ..Gate::default()
        });
        let fault = Fault::Block {
            after_bytes,
            gate: gate.clone(),
        };
        (fault, gate)
    }
}

/// An in-memory provider with per-file faults, for tests.
#[derive(Debug)]
pub struct TestProvider {
    files: Mutex<HashMap<FileKey, Arc<Vec<u8>>>>,
    metadata: Mutex<HashMap<u32, Vec<u8>>>,
    faults: Mutex<HashMap<FileKey, Fault>>,
    supports_range: AtomicBool,
    chunk_bytes: usize,
    fetches: AtomicU64,
    fetch_offsets: Mutex<Vec<(u32, String, u64)>>,
}

impl Default for TestProvider {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl TestProvider {
    /// An empty provider that streams `chunk_bytes` at a time (small chunks give tests more
    /// points to interrupt).
    pub fn new(chunk_bytes: usize) -> Self {
        TestProvider {
            files: Mutex::default(),
            metadata: Mutex::default(),
            faults: Mutex::default(),
            supports_range: AtomicBool::new(true),
            chunk_bytes: chunk_bytes.max(1),
            fetches: AtomicU64::new(0),
            fetch_offsets: Mutex::default(),
        }
    }

    /// Adds (or replaces) a file.
    pub fn put_file(&self, partition: u32, name: &str, bytes: Vec<u8>) {
        self.files
            .lock()
            .insert((partition, name.to_string()), Arc::new(bytes));
    }

    /// Sets the raw metadata document of `partition`.
    pub fn put_metadata(&self, partition: u32, json: Vec<u8>) {
        self.metadata.lock().insert(partition, json);
    }

    /// Applies `fault` to every later fetch of `name`.
    pub fn set_fault(&self, partition: u32, name: &str, fault: Fault) {
        self.faults
            .lock()
            .insert((partition, name.to_string()), fault);
    }

    /// Removes the fault of `name`.
    pub fn clear_fault(&self, partition: u32, name: &str) {
        self.faults.lock().remove(&(partition, name.to_string()));
    }

    /// Turns byte-range support on or off.
    pub fn set_supports_range(&self, on: bool) {
        self.supports_range.store(on, Ordering::Release);
    }

    /// Number of fetch calls so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Acquire)
    }

    /// Every fetch so far as (partition, name, offset).
    pub fn fetch_offsets(&self) -> Vec<(u32, String, u64)> {
        self.fetch_offsets.lock().clone()
    }

    fn serve(
        &self,
        bytes: &[u8],
        offset: u64,
        fault: Option<&Fault>,
        sink: &mut dyn Write,
        cancel: &CancelToken,
    ) -> Result<u64, ProviderError> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let mut position = start;
        let mut written = 0u64;
        while position < bytes.len() {
            if cancel.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            let mut end = (position + self.chunk_bytes).min(bytes.len());
            match fault {
                Some(Fault::Delay(d)) => std::thread::sleep(*d),
                Some(Fault::Block { after_bytes, gate }) => {
                    let at = usize::try_from(*after_bytes).unwrap_or(usize::MAX);
                    if position >= at && !gate.released.load(Ordering::Acquire) {
                        gate.hold(cancel)?;
                    } else if position < at {
                        end = end.min(at);
                    }
                }
                _ => {}
            }
            sink.write_all(&bytes[position..end])
                .map_err(|e| sink_error(e, cancel))?;
            written += (end - position) as u64;
            position = end;
        }
        Ok(written)
    }
}

impl BulkLoadProvider for TestProvider {
    fn list(&self, partition: u32) -> Result<Vec<String>, ProviderError> {
        let faults = self.faults.lock();
        let mut names: Vec<String> = self
            .files
            .lock()
            .keys()
            .filter(|(p, name)| {
                *p == partition && !matches!(faults.get(&(*p, name.clone())), Some(Fault::Drop))
            })
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    fn metadata(&self, partition: u32) -> Result<Vec<u8>, ProviderError> {
        self.metadata
            .lock()
            .get(&partition)
            .cloned()
            .ok_or_else(|| ProviderError::NotFound {
                what: format!("partition {partition} {METADATA_FILE_NAME}"),
            })
    }

    fn supports_range(&self) -> bool {
        self.supports_range.load(Ordering::Acquire)
    }

    fn fetch(
        &self,
        partition: u32,
        name: &str,
        offset: u64,
        sink: &mut dyn Write,
        cancel: &CancelToken,
    ) -> Result<u64, ProviderError> {
        self.fetches.fetch_add(1, Ordering::AcqRel);
        self.fetch_offsets
            .lock()
            .push((partition, name.to_string(), offset));
        let key = (partition, name.to_string());
        let fault = {
            let mut faults = self.faults.lock();
            match faults.get_mut(&key) {
                Some(Fault::FailTransient(remaining)) if *remaining > 0 => {
                    *remaining -= 1;
                    return Err(ProviderError::Transient(format!("{name}: injected")));
                }
                other => other.cloned(),
            }
        };
        let not_found = || ProviderError::NotFound {
            what: name.to_string(),
        };
        if matches!(fault, Some(Fault::Drop)) {
            return Err(not_found());
        }
        let original = self.files.lock().get(&key).cloned().ok_or_else(not_found)?;
        let offset = if self.supports_range() { offset } else { 0 };
        let served: Vec<u8>;
        let bytes: &[u8] = match &fault {
            Some(Fault::Corrupt(at)) => {
                let mut copy = original.as_ref().clone();
                if let Some(b) = usize::try_from(*at).ok().and_then(|i| copy.get_mut(i)) {
                    *b ^= 0x5a;
                }
                served = copy;
                &served
            }
            Some(Fault::Truncate(n)) => {
                let n = usize::try_from(*n)
                    .unwrap_or(usize::MAX)
                    .min(original.len());
                &original[..n]
            }
            _ => &original,
        };
        self.serve(bytes, offset, fault.as_ref(), sink, cancel)
    }
}
