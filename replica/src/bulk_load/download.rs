//! Downloads: the node's bounded pool of download slots ([`DownloadManager`]) and one download
//! session per partition ([`DownloadSession`]) running in its own named thread.
//!
//! Seed S1 shaped this file. A [`DownloadTask`] **owns** everything it uses — the session id,
//! the partition's directory, a copy of the file list, the provider handle, its cancellation
//! token, its slot — and shares nothing with the partition's state but a channel it sends
//! results on and a progress counter of its own. Clearing the partition's state therefore
//! cannot leave the task holding a dangling reference. Cancellation is cooperative and
//! checked before every write (the sink refuses writes once cancelled, so even a provider that
//! ignores the token cannot make a stale task write) and before every create and rename;
//! [`DownloadSession::cancel_and_join`] returns once the thread has ended — or, bounded, after
//! [`MAX_CANCEL_WAIT`] when a provider call ignoring the token keeps it running (it can then
//! write nothing more) — and the partition removes files only after that.
//!
//! Per file: the name is resolved under the directory again (pair assertion with the metadata
//! check), an already-present file whose size and CRC-32C match is kept (resume after restart),
//! bytes go to `<name>.download` (appended from its current length when the provider supports
//! byte ranges), the temp file is fsynced, its size and CRC-32C checked, and it is renamed into
//! place and the directory fsynced.

use super::metadata::{resolve_under, FileEntry};
use super::metrics::BulkLoadMetrics;
use super::provider::{BulkLoadProvider, ProviderError};
use super::state::{create_dir_durable, sync_dir, SessionId};
use siltdb::CancelToken;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default number of partitions downloading at once on one node (Pegasus' default).
pub const DOWNLOAD_SLOTS_DEFAULT: usize = 5;
/// Transient provider errors retried per file before the file fails.
pub const MAX_TRANSIENT_RETRIES: u32 = 5;
/// First backoff after a transient provider error (doubles each time).
pub const TRANSIENT_BACKOFF_INITIAL: Duration = Duration::from_millis(10);
/// Suffix of a file being downloaded.
pub const TEMP_SUFFIX: &str = ".download";

/// The node's download slots: at most `slots_max` sessions at once, beyond it "busy".
#[derive(Debug)]
pub struct DownloadManager {
    slots_max: usize,
    active: AtomicUsize,
    metrics: Arc<BulkLoadMetrics>,
}

/// One taken slot; dropping it frees the slot and lowers the `downloading` gauge.
#[derive(Debug)]
pub struct DownloadSlot {
    manager: Arc<DownloadManager>,
}

impl DownloadManager {
    /// A pool of `slots_max` slots (at least 1).
    pub fn new(slots_max: usize, metrics: Arc<BulkLoadMetrics>) -> Arc<Self> {
        Arc::new(DownloadManager {
            slots_max: slots_max.max(1),
            active: AtomicUsize::new(0),
            metrics,
        })
    }

    /// A slot, or `None` when all are taken ("busy, retry later"; counted).
    pub fn try_acquire(self: &Arc<Self>) -> Option<DownloadSlot> {
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.slots_max).then_some(n + 1)
            });
        if taken.is_err() {
            self.metrics.busy_rejected();
            return None;
        }
        self.metrics.downloading_add();
        Some(DownloadSlot {
            manager: self.clone(),
        })
    }

    /// Slots taken now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<BulkLoadMetrics> {
        &self.metrics
    }
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        let previous = self.manager.active.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "download slot released twice");
        self.manager.metrics.downloading_sub();
    }
}

/// How a download session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadOutcome {
    /// Every file present and verified.
    Done,
    /// One file failed for good; the others were not continued.
    Failed {
        /// The file that failed.
        file: String,
        /// Why (not found, wrong size, wrong checksum, I/O).
        reason: String,
    },
    /// The session was cancelled.
    Cancelled,
}

/// What a task reports, tagged with its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadEvent {
    /// The session that produced it.
    pub session: SessionId,
    /// What happened.
    pub kind: DownloadEventKind,
}

/// The kinds of [`DownloadEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadEventKind {
    /// A file was verified and renamed into place (`bytes` newly fetched; 0 if already there).
    FileDone {
        /// The file.
        name: String,
        /// Bytes fetched for it in this session.
        bytes: u64,
    },
    /// The session ended.
    Finished(DownloadOutcome),
}

/// Everything one download session needs, owned.
#[derive(Debug)]
pub struct DownloadTask {
    /// The session id carried by every result.
    pub session: SessionId,
    /// Partition index at the provider.
    pub partition: u32,
    /// The partition's bulk-load directory.
    pub dir: PathBuf,
    /// A copy of the files to fetch.
    pub files: Vec<FileEntry>,
    /// The provider.
    pub provider: Arc<dyn BulkLoadProvider>,
    /// Where results go.
    pub events: Sender<DownloadEvent>,
    /// The node's metrics.
    pub metrics: Arc<BulkLoadMetrics>,
    /// The node slot this session holds until it ends.
    pub slot: DownloadSlot,
}

/// A running session: its id, token, progress and thread. Dropping it cancels and joins.
#[derive(Debug)]
pub struct DownloadSession {
    id: SessionId,
    cancel: CancelToken,
    progress_bytes: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl DownloadSession {
    /// Starts `task` in a thread named `bulk-dl-<partition>`.
    pub fn spawn(task: DownloadTask) -> std::io::Result<DownloadSession> {
        let id = task.session;
        let cancel = CancelToken::new();
        let progress_bytes = Arc::new(AtomicU64::new(0));
        let runner = TaskRunner {
            cancel: cancel.clone(),
            progress_bytes: progress_bytes.clone(),
            task,
        };
        let handle = std::thread::Builder::new()
            .name(format!("bulk-dl-{}", runner.task.partition))
            .spawn(move || runner.run())?;
        Ok(DownloadSession {
            id,
            cancel,
            progress_bytes,
            handle: Some(handle),
        })
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Bytes present in the directory for this session's files so far.
    pub fn progress_bytes(&self) -> u64 {
        self.progress_bytes.load(Ordering::Acquire)
    }

    /// The session's own progress counter (readable after the session ends).
    pub fn progress_handle(&self) -> Arc<AtomicU64> {
        self.progress_bytes.clone()
    }

    /// Cancels the session and waits for its thread to end, at most [`MAX_CANCEL_WAIT`]. After
    /// this returns the task writes nothing more (its sink refuses writes once cancelled, and
    /// it checks the token before every create and rename). Returns false when the thread was
    /// still running at the bound (a provider stuck in a call that ignores cancellation): it
    /// is then left to end on its own, holding its download slot until it does.
    pub fn cancel_and_join(self) -> bool {
        self.cancel_and_join_within(MAX_CANCEL_WAIT)
    }

    /// [`DownloadSession::cancel_and_join`] with the bound `max`.
    pub fn cancel_and_join_within(mut self, max: Duration) -> bool {
        self.stop(max)
    }

    /// Waits for a session that has reported `Finished` (it is ending on its own).
    pub fn join(mut self) {
        if let Some(handle) = self.handle.take() {
            // A panicking task has already released its slot (drop runs on unwind); the
            // panic itself is a programmer error the join surfaces in tests.
            let joined = handle.join();
            debug_assert!(joined.is_ok(), "download task panicked");
        }
    }

    /// Cancels, then joins the thread if it ends within `max`; true when it did.
    fn stop(&mut self, max: Duration) -> bool {
        self.cancel.cancel();
        let Some(handle) = self.handle.take() else {
            return true;
        };
        let deadline = Instant::now() + max;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                // Detached: it can no longer write, and it frees its slot when it ends.
                return false;
            }
            std::thread::sleep(CANCEL_POLL);
        }
        let joined = handle.join();
        debug_assert!(joined.is_ok(), "download task panicked");
        true
    }
}

impl Drop for DownloadSession {
    fn drop(&mut self) {
        self.stop(MAX_CANCEL_WAIT);
    }
}

/// Longest a cancel waits for a session's thread to end (see
/// [`DownloadSession::cancel_and_join`]).
pub const MAX_CANCEL_WAIT: Duration = Duration::from_secs(10);
/// How often a cancel looks whether the thread ended.
const CANCEL_POLL: Duration = Duration::from_millis(1);

struct TaskRunner {
    cancel: CancelToken,
    progress_bytes: Arc<AtomicU64>,
    task: DownloadTask,
}

/// A file sink that refuses every write once the session is cancelled.
/// It also refuses bytes past the size the metadata gives the file, so a provider serving
/// more (a wrong or hostile source) can never fill the disk: the download fails naming the file.
struct CancelAwareFile<'a> {
    file: File,
    cancel: &'a CancelToken,
    progress_bytes: &'a AtomicU64,
    /// Bytes the file may still grow by: its size in the metadata minus what is present.
    remaining: u64,
    /// The size in the metadata, for the error.
    size: u64,
}

impl Write for CancelAwareFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`: `write_all` retries that kind forever.
            return Err(std::io::Error::other("download session cancelled"));
        }
        if buf.len() as u64 > self.remaining {
            return Err(std::io::Error::other(format!(
                "the provider sent more than the {} bytes the metadata gives the file",
                self.size
            )));
        }
        let n = self.file.write(buf)?;
        self.remaining -= n as u64;
        self.progress_bytes.fetch_add(n as u64, Ordering::AcqRel);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Why one file did not complete.
enum FileError {
    Cancelled,
    Failed(String),
}

impl TaskRunner {
    fn run(self) {
        let started = Instant::now();
        let outcome = self.download_all();
        self.task.metrics.download_finished(started.elapsed());
        // The receiver may be gone (partition closed): then nobody needs the result.
        let _ = self.task.events.send(DownloadEvent {
            session: self.task.session,
            kind: DownloadEventKind::Finished(outcome),
        });
        // `self.task.slot` drops here, after the result is sent.
    }

    fn download_all(&self) -> DownloadOutcome {
        let task = &self.task;
        // Validate every name before touching anything (pair assertion with the metadata check).
        let mut paths = Vec::with_capacity(task.files.len());
        for file in &task.files {
            match resolve_under(&task.dir, &file.name) {
                Ok(path) => paths.push(path),
                Err(reason) => return failed(&file.name, reason),
            }
        }
        if self.cancel.is_cancelled() {
            return DownloadOutcome::Cancelled;
        }
        // Durable before any file in it is: a power loss must not take the directory (and
        // files reported downloaded) away.
        if let Err(e) = create_dir_durable(&siltdb::fs::StdFs, &task.dir) {
            return failed("(directory)", e.to_string());
        }
        for (file, path) in task.files.iter().zip(&paths) {
            match self.download_file(file, path) {
                Ok(bytes) => {
                    let _ = task.events.send(DownloadEvent {
                        session: task.session,
                        kind: DownloadEventKind::FileDone {
                            name: file.name.clone(),
                            bytes,
                        },
                    });
                }
                Err(FileError::Cancelled) => return DownloadOutcome::Cancelled,
                Err(FileError::Failed(reason)) => return failed(&file.name, reason),
            }
        }
        DownloadOutcome::Done
    }

    /// Fetches one file into place; returns the bytes fetched.
    fn download_file(&self, file: &FileEntry, path: &Path) -> Result<u64, FileError> {
        let base = self.progress_bytes.load(Ordering::Acquire);
        if verify_file(path, file).is_ok() {
            self.progress_bytes
                .store(base + file.size, Ordering::Release);
            return Ok(0);
        }
        let tmp = path.with_file_name(format!("{}{TEMP_SUFFIX}", file.name));
        let mut backoff = TRANSIENT_BACKOFF_INITIAL;
        let mut retries = 0u32;
        let fetched = loop {
            self.progress_bytes.store(base, Ordering::Release);
            match self.fetch_into(file, &tmp) {
                Ok(n) => break n,
                Err(ProviderError::Cancelled) => return Err(FileError::Cancelled),
                Err(ProviderError::Transient(_)) if retries < MAX_TRANSIENT_RETRIES => {
                    retries += 1;
                    if !sleep_unless_cancelled(backoff, &self.cancel) {
                        return Err(FileError::Cancelled);
                    }
                    backoff = backoff.saturating_mul(2);
                }
                Err(e @ ProviderError::NotFound { .. }) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(FileError::Failed(format!("missing: {e}")));
                }
                Err(e) => return Err(FileError::Failed(e.to_string())),
            }
        };
        self.finish_file(file, path, &tmp)?;
        self.task.metrics.file_downloaded(file.size);
        Ok(fetched)
    }

    /// One fetch attempt into `tmp`, resuming from its length when ranges are supported.
    fn fetch_into(&self, file: &FileEntry, tmp: &Path) -> Result<u64, ProviderError> {
        let task = &self.task;
        if self.cancel.is_cancelled() {
            return Err(ProviderError::Cancelled);
        }
        let present = std::fs::metadata(tmp).map(|m| m.len()).unwrap_or(0);
        let offset = if task.provider.supports_range() && present <= file.size {
            present
        } else {
            0
        };
        let mut options = OpenOptions::new();
        options.create(true).write(true);
        if offset > 0 {
            options.append(true);
        } else {
            options.truncate(true);
        }
        let handle = options
            .open(tmp)
            .map_err(|e| ProviderError::Io(format!("{}: {e}", tmp.display())))?;
        self.progress_bytes.fetch_add(offset, Ordering::AcqRel);
        let mut sink = CancelAwareFile {
            file: handle,
            cancel: &self.cancel,
            progress_bytes: &self.progress_bytes,
            remaining: file.size - offset,
            size: file.size,
        };
        let n = task
            .provider
            .fetch(task.partition, &file.name, offset, &mut sink, &self.cancel)?;
        sink.file
            .sync_all()
            .map_err(|e| ProviderError::Io(format!("{}: {e}", tmp.display())))?;
        Ok(n)
    }

    /// Verifies `tmp` and renames it to `path`.
    fn finish_file(&self, file: &FileEntry, path: &Path, tmp: &Path) -> Result<(), FileError> {
        if let Err(reason) = verify_file(tmp, file) {
            // Remove the bad copy so a retry starts clean rather than appending to it.
            let _ = std::fs::remove_file(tmp);
            return Err(FileError::Failed(reason));
        }
        if self.cancel.is_cancelled() {
            return Err(FileError::Cancelled);
        }
        std::fs::rename(tmp, path)
            .map_err(|e| FileError::Failed(format!("rename {}: {e}", tmp.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        sync_dir(dir).map_err(|e| FileError::Failed(e.to_string()))
    }
}

fn failed(file: &str, reason: String) -> DownloadOutcome {
    DownloadOutcome::Failed {
        file: file.to_string(),
        reason,
    }
}

/// Sleeps `d` in small steps; false if cancelled meanwhile.
pub(crate) fn sleep_unless_cancelled(d: Duration, cancel: &CancelToken) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if cancel.is_cancelled() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1).min(d));
    }
    !cancel.is_cancelled()
}

/// Checks size and CRC-32C of `path` against `file`; the error says which and by how much.
pub fn verify_file(path: &Path, file: &FileEntry) -> Result<(), String> {
    let (size, crc) = size_and_crc32c(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if size != file.size {
        return Err(format!("wrong size: {size} bytes, expected {}", file.size));
    }
    if crc != file.crc32c {
        return Err(format!(
            "wrong checksum: crc32c {crc:#010x}, expected {:#010x}",
            file.crc32c
        ));
    }
    Ok(())
}

/// Size and CRC-32C of a whole file, streamed.
pub fn size_and_crc32c(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 256 << 10];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => return Ok((size, crc)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        size += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk_load::provider::TestProvider;

    #[test]
    fn cancel_is_bounded_when_the_provider_ignores_it() {
        let root = tempfile::tempdir().unwrap();
        let provider = Arc::new(TestProvider::new(4096));
        provider.put_file(0, "a.sst", vec![1u8; 1 << 16]);
        // The fetch stops at once and ignores cancellation until released.
        let (fault, gate) = crate::bulk_load::provider::Fault::block(0, false);
        provider.set_fault(0, "a.sst", fault);
        let file = FileEntry {
            name: "a.sst".into(),
            size: 1 << 16,
            crc32c: 0,
            smallest_key: String::new(),
            largest_key: String::new(),
            entries: 1,
        };
        let metrics = Arc::new(BulkLoadMetrics::default());
        let manager = DownloadManager::new(1, Arc::clone(&metrics));
        let (tx, _rx) = std::sync::mpsc::channel();
        let session = DownloadSession::spawn(DownloadTask {
            session: SessionId {
                ballot: 1,
                attempt: 1,
            },
            partition: 0,
            dir: root.path().join("dl"),
            files: vec![file],
            provider,
            events: tx,
            metrics,
            slot: manager.try_acquire().unwrap(),
        })
        .unwrap();
        assert!(gate.wait_reached(Duration::from_secs(10)));
        let t = Instant::now();
        assert!(!session.cancel_and_join_within(Duration::from_millis(100)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // The detached thread holds its slot until the provider returns, then ends.
        assert_eq!(manager.active(), 1);
        gate.release();
        let deadline = Instant::now() + Duration::from_secs(10);
        while manager.active() != 0 {
            assert!(Instant::now() < deadline, "the cancelled task never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_download_larger_than_the_metadata_size_stops_at_it() {
        let root = tempfile::tempdir().unwrap();
        let provider = Arc::new(TestProvider::new(4096));
        // The metadata says 10 000 bytes; the provider serves 1 MiB.
        let real = vec![7u8; 1 << 20];
        provider.put_file(0, "a.sst", real);
        let file = FileEntry {
            name: "a.sst".into(),
            size: 10_000,
            crc32c: 0,
            smallest_key: String::new(),
            largest_key: String::new(),
            entries: 1,
        };
        let metrics = Arc::new(BulkLoadMetrics::default());
        let manager = DownloadManager::new(1, Arc::clone(&metrics));
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = root.path().join("dl");
        let session = DownloadSession::spawn(DownloadTask {
            session: SessionId {
                ballot: 1,
                attempt: 1,
            },
            partition: 0,
            dir: dir.clone(),
            files: vec![file],
            provider,
            events: tx,
            metrics,
            slot: manager.try_acquire().unwrap(),
        })
        .unwrap();
        let progress = session.progress_handle();
        let outcome = loop {
            let ev = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            if let DownloadEventKind::Finished(o) = ev.kind {
                break o;
            }
        };
        session.join();
        match outcome {
            DownloadOutcome::Failed { file, reason } => {
                assert_eq!(file, "a.sst");
                assert!(reason.contains("more than the 10000 bytes"), "{reason}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        // Never more than the metadata's size written (progress counts every byte written).
        let written = progress.load(Ordering::Acquire);
        assert!(written <= 10_000, "{written} bytes written");
        let tmp = dir.join(format!("a.sst{TEMP_SUFFIX}"));
        let on_disk = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        assert!(on_disk <= 10_000, "{on_disk} bytes written");
    }
}
