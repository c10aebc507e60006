//! One partition's bulk-load driver: [`PartitionBulkLoad`].
//!
//! The controller (or, later, the meta server over RPC) calls `start`, `poll`, `pause`,
//! `restart`, `cancel`, `force_cancel`, `clear` and `ingest`; every status change goes through
//! the pure [`transition`] and is persisted before it is visible. Control operations are
//! serialized by one lock (so a clear can never interleave with a start). Stopping a download
//! takes its session out under that lock, then joins it (bounded by [`MAX_CANCEL_WAIT`]) with
//! the lock released and the control marked as stopping: `poll` keeps running meanwhile (it
//! never resumes a download while one is stopping), and the other control operations wait,
//! bounded and off the lock, until the stop is over. The progress a query reads sits behind a
//! second lock that is only held to copy values. Download threads take neither: they own their
//! inputs and report on a channel, and results from any session but the current one are
//! dropped (seed S1).
//!
//! Layout in the replica directory: `bulk_load_state.json` (see [`super::state`]) and
//! `bulk_load/` with the downloaded files, removed whenever a load ends (SUCCEED, FAILED,
//! CANCELED) or is cleared, always after every download task has been joined.
//!
//! Restart: PAUSING becomes PAUSED; DOWNLOADING resumes on the next `poll` (files already
//! verified are kept, partial ones resume by byte range); DOWNLOADED whose files no longer
//! verify, and INGESTING (an ingestion cut by a crash), roll back to DOWNLOADING, which
//! re-verifies and lets the controller ingest again (ingestion of the same files is
//! idempotent; the engine commits it atomically). Finished states keep their status and lose
//! their leftover files.

use super::download::{
    sleep_unless_cancelled, verify_file, DownloadEvent, DownloadEventKind, DownloadManager,
    DownloadOutcome, DownloadSession, DownloadSlot, DownloadTask, MAX_CANCEL_WAIT,
};
use super::metadata::{resolve_under, BulkLoadMetadata, METADATA_FILE_NAME};
use super::metrics::BulkLoadMetrics;
use super::provider::{BulkLoadProvider, ProviderError};
use super::state::{sync_dir, PartitionState, SessionId};
use super::status::{transition, BulkLoadEvent as Event, BulkLoadStatus as Status};
use super::target::{IngestRequest, IngestTarget, IngestingGuard, IngestionGate, TargetError};
use super::BulkLoadError;
use crate::types::{Ballot, Gpid};
use parking_lot::{Condvar, Mutex, MutexGuard};
use siltdb::CancelToken;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a control operation waits for another one's download stop to end (the stop itself
/// is bounded by [`MAX_CANCEL_WAIT`]) before it gives up with `Busy`.
pub const MAX_CONTROL_WAIT: Duration = Duration::from_secs(MAX_CANCEL_WAIT.as_secs() + 5);

/// Name of the directory holding downloaded files, inside the replica directory.
pub const BULK_LOAD_DIR_NAME: &str = "bulk_load";

/// Settings of one partition's driver.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// The partition.
    pub gpid: Gpid,
    /// The replica's directory (state file and `bulk_load/` live here).
    pub replica_dir: PathBuf,
    /// Bound on a whole ingestion, retries included. Default 120 s.
    pub ingest_timeout: Duration,
    /// Bound on one ingestion attempt. Default 30 s.
    pub ingest_attempt_timeout: Duration,
    /// First backoff after a busy engine (doubles, with jitter). Default 5 ms.
    pub ingest_backoff_initial: Duration,
    /// Largest backoff. Default 1 s.
    pub ingest_backoff_max: Duration,
}

impl PartitionConfig {
    /// Defaults for `gpid` in `replica_dir`.
    pub fn new(gpid: Gpid, replica_dir: impl Into<PathBuf>) -> Self {
        PartitionConfig {
            gpid,
            replica_dir: replica_dir.into(),
            ingest_timeout: Duration::from_secs(120),
            ingest_attempt_timeout: Duration::from_secs(30),
            ingest_backoff_initial: Duration::from_millis(5),
            ingest_backoff_max: Duration::from_secs(1),
        }
    }

    /// `replica_dir/bulk_load`.
    pub fn bulk_load_dir(&self) -> PathBuf {
        self.replica_dir.join(BULK_LOAD_DIR_NAME)
    }
}

/// What a query reports about one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The partition.
    pub gpid: Gpid,
    /// Its status.
    pub status: Status,
    /// The current (or last) session.
    pub session: SessionId,
    /// Bytes downloaded and present.
    pub downloaded_bytes: u64,
    /// Bytes listed in the metadata.
    pub total_bytes: u64,
    /// Why it failed, naming the file or step.
    pub error: Option<String>,
}

struct Control {
    events: Receiver<DownloadEvent>,
    session: Option<DownloadSession>,
    /// A stop is joining a session with this lock released; see [`PartitionBulkLoad::control`].
    stopping: bool,
}

struct Shared {
    state: PartitionState,
    progress: Option<Arc<AtomicU64>>,
    ingest_cancel: Option<CancelToken>,
}

/// One partition's bulk-load driver. Dropping it cancels and joins its download.
pub struct PartitionBulkLoad {
    config: PartitionConfig,
    provider: Arc<dyn BulkLoadProvider>,
    target: Arc<dyn IngestTarget>,
    gate: Arc<IngestionGate>,
    downloads: Arc<DownloadManager>,
    events_tx: Sender<DownloadEvent>,
    control: Mutex<Control>,
    /// Signalled when a stop ends (`Control::stopping` goes false).
    stopped: Condvar,
    shared: Mutex<Shared>,
}

impl std::fmt::Debug for PartitionBulkLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionBulkLoad")
            .field("gpid", &self.config.gpid)
            .field("status", &self.status())
            .finish()
    }
}

impl PartitionBulkLoad {
    /// Opens the driver, recovering the persisted state (see the module docs).
    pub fn open(
        config: PartitionConfig,
        provider: Arc<dyn BulkLoadProvider>,
        target: Arc<dyn IngestTarget>,
        gate: Arc<IngestionGate>,
        downloads: Arc<DownloadManager>,
    ) -> Result<Arc<Self>, BulkLoadError> {
        let mut state = PartitionState::load(&config.replica_dir)?;
        recover(&mut state, &config.bulk_load_dir())?;
        state.save(&config.replica_dir)?;
        let (events_tx, events) = channel();
        Ok(Arc::new(PartitionBulkLoad {
            config,
            provider,
            target,
            gate,
            downloads,
            events_tx,
            control: Mutex::new(Control {
                events,
                session: None,
                stopping: false,
            }),
            stopped: Condvar::new(),
            shared: Mutex::new(Shared {
                state,
                progress: None,
                ingest_cancel: None,
            }),
        }))
    }

    /// The partition.
    pub fn gpid(&self) -> Gpid {
        self.config.gpid
    }

    /// The directory downloads go to.
    pub fn bulk_load_dir(&self) -> PathBuf {
        self.config.bulk_load_dir()
    }

    /// The user-write gate of this partition.
    pub fn gate(&self) -> &Arc<IngestionGate> {
        &self.gate
    }

    /// The partition's current ballot, as its engine side reports it.
    pub fn target_ballot(&self) -> Ballot {
        self.target.ballot()
    }

    fn metrics(&self) -> &Arc<BulkLoadMetrics> {
        self.downloads.metrics()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.shared.lock().state.status
    }

    /// Status, progress and error, without waiting for any control operation.
    pub fn progress(&self) -> PartitionProgress {
        let shared = self.shared.lock();
        let state = &shared.state;
        let total_bytes = state.metadata.as_ref().map_or(0, |m| m.totals.bytes);
        let downloaded_bytes = match state.status {
            Status::Downloaded | Status::Ingesting | Status::Succeed => total_bytes,
            _ => shared
                .progress
                .as_ref()
                .map_or(0, |p| p.load(Ordering::Acquire)),
        };
        PartitionProgress {
            gpid: self.config.gpid,
            status: state.status,
            session: state.session,
            downloaded_bytes,
            total_bytes,
            error: state.error.clone(),
        }
    }

    /// Applies `events` in order (pure transitions), edits, persists, then publishes. Callers
    /// hold the control lock, so nothing else changes the state meanwhile.
    fn apply(
        &self,
        events: &[Event],
        edit: impl FnOnce(&mut PartitionState),
    ) -> Result<Status, BulkLoadError> {
        let mut next = self.shared.lock().state.clone();
        for event in events {
            next.status = transition(next.status, *event)?;
        }
        edit(&mut next);
        next.save(&self.config.replica_dir)?;
        let status = next.status;
        self.shared.lock().state = next;
        Ok(status)
    }

    fn next_session(&self, ballot: Ballot) -> SessionId {
        let attempt = self.shared.lock().state.session.attempt.saturating_add(1);
        SessionId {
            ballot: ballot.0,
            attempt,
        }
    }

    /// Starts a load under `ballot`: fetches and validates the metadata (no file is touched
    /// before every name is validated), then downloads in a new session. `Busy` when the node
    /// has no free download slot; a bad or missing metadata document fails the partition.
    pub fn start(&self, ballot: Ballot) -> Result<(), BulkLoadError> {
        let mut control = self.control()?;
        transition(self.status(), Event::Start)?;
        let current = self.target.ballot();
        if ballot != current {
            return Err(BulkLoadError::StaleBallot {
                request: ballot,
                current,
            });
        }
        self.stop_session(&mut control);
        self.remove_files()?;
        let slot = self.downloads.try_acquire().ok_or_else(|| {
            BulkLoadError::Busy("every download slot of this node is taken".into())
        })?;
        let session = self.next_session(ballot);
        let metadata = match self.fetch_metadata() {
            Ok(metadata) => metadata,
            Err(MetadataProblem::Transient(m)) => return Err(BulkLoadError::Transient(m)),
            Err(MetadataProblem::Permanent(reason)) => {
                self.apply(&[Event::Start, Event::DownloadFailed], |s| {
                    s.session = session;
                    s.metadata = None;
                    s.error = Some(reason.clone());
                })?;
                self.metrics().failed_inc();
                return Err(BulkLoadError::Failed(reason));
            }
        };
        self.apply(&[Event::Start], |s| {
            s.session = session;
            s.load_id = new_load_id();
            s.metadata = Some(metadata);
            s.error = None;
        })?;
        self.spawn(&mut control, slot)
    }

    fn fetch_metadata(&self) -> Result<BulkLoadMetadata, MetadataProblem> {
        let partition = self.config.gpid.partition_index;
        let raw = match self.provider.metadata(partition) {
            Ok(raw) => raw,
            Err(ProviderError::Transient(m)) => return Err(MetadataProblem::Transient(m)),
            Err(ProviderError::Cancelled) => {
                return Err(MetadataProblem::Transient("cancelled".into()))
            }
            Err(e) => {
                return Err(MetadataProblem::Permanent(format!(
                    "{METADATA_FILE_NAME}: {e}"
                )))
            }
        };
        BulkLoadMetadata::from_json(&raw)
            .map_err(|reason| MetadataProblem::Permanent(format!("{METADATA_FILE_NAME}: {reason}")))
    }

    fn spawn(&self, control: &mut Control, slot: DownloadSlot) -> Result<(), BulkLoadError> {
        let (session, files) = {
            let shared = self.shared.lock();
            let files = shared
                .state
                .metadata
                .as_ref()
                .map(|m| m.files.clone())
                .unwrap_or_default();
            (shared.state.session, files)
        };
        let dir = self.config.bulk_load_dir();
        let task = DownloadTask {
            session,
            partition: self.config.gpid.partition_index,
            dir: dir.clone(),
            files,
            provider: self.provider.clone(),
            events: self.events_tx.clone(),
            metrics: self.metrics().clone(),
            slot,
        };
        let running = DownloadSession::spawn(task).map_err(|e| BulkLoadError::io(&dir, e))?;
        self.shared.lock().progress = Some(running.progress_handle());
        control.session = Some(running);
        Ok(())
    }

    /// Processes download results, resumes an interrupted download if a slot is free, and
    /// reports progress.
    pub fn poll(&self) -> Result<PartitionProgress, BulkLoadError> {
        let mut control = self.control.lock();
        while let Ok(event) = control.events.try_recv() {
            self.on_event(&mut control, event)?;
        }
        // A session being stopped is out of `control.session`, but must not be replaced.
        let resumable =
            self.status() == Status::Downloading && control.session.is_none() && !control.stopping;
        if resumable {
            if let Some(slot) = self.downloads.try_acquire() {
                let session = self.next_session(self.target.ballot());
                self.apply(&[], |s| s.session = session)?;
                self.spawn(&mut control, slot)?;
            }
        }
        Ok(self.progress())
    }

    fn on_event(&self, control: &mut Control, event: DownloadEvent) -> Result<(), BulkLoadError> {
        let current = control.session.as_ref().map(DownloadSession::id);
        if current != Some(event.session) {
            self.metrics().stale_result_dropped();
            return Ok(());
        }
        let DownloadEventKind::Finished(outcome) = event.kind else {
            return Ok(());
        };
        if let Some(finished) = control.session.take() {
            finished.join();
        }
        match outcome {
            DownloadOutcome::Done => {
                self.apply(&[Event::DownloadsComplete], |_| {})?;
            }
            DownloadOutcome::Failed { file, reason } => {
                self.remove_files()?;
                let text = format!("download of {file} failed: {reason}");
                self.apply(&[Event::DownloadFailed], |s| s.error = Some(text))?;
                self.metrics().failed_inc();
            }
            // Whoever cancelled (pause, clear, cancel) set the status; a still-DOWNLOADING
            // partition resumes on the next poll.
            DownloadOutcome::Cancelled => {}
        }
        Ok(())
    }

    /// The control lock, once no stop is in progress: waits for one (off the lock, at most
    /// [`MAX_CONTROL_WAIT`]) so a control operation never interleaves with another's stop.
    fn control(&self) -> Result<MutexGuard<'_, Control>, BulkLoadError> {
        let mut control = self.control.lock();
        let deadline = Instant::now() + MAX_CONTROL_WAIT;
        while control.stopping {
            if self.stopped.wait_until(&mut control, deadline).timed_out() && control.stopping {
                return Err(BulkLoadError::Busy(
                    "a download of this partition is still being stopped".into(),
                ));
            }
        }
        Ok(control)
    }

    /// Cancels and joins the running download, if any. After it returns, no task of this
    /// partition writes anything (or, past [`MAX_CANCEL_WAIT`], the task is detached: its sink
    /// refuses writes once cancelled). The join runs with the control lock released so polls
    /// and queries are not held up by a provider slow to notice the cancel.
    fn stop_session(&self, control: &mut MutexGuard<'_, Control>) {
        let Some(running) = control.session.take() else {
            return;
        };
        let id = running.id();
        control.stopping = true;
        let joined = MutexGuard::unlocked(control, || running.cancel_and_join());
        control.stopping = false;
        self.stopped.notify_all();
        if !joined {
            tracing::warn!(
                gpid = %self.config.gpid,
                session = ?id,
                wait = ?MAX_CANCEL_WAIT,
                "bulk-load download did not stop in time; detached (it can no longer write)"
            );
        }
    }

    /// Removes `bulk_load/` (after every task is joined) and makes that durable.
    fn remove_files(&self) -> Result<(), BulkLoadError> {
        let dir = self.config.bulk_load_dir();
        remove_dir(&dir)?;
        self.shared.lock().progress = None;
        Ok(())
    }

    /// DOWNLOADING → PAUSING → PAUSED: stops the download, keeps the files for a restart.
    pub fn pause(&self) -> Result<(), BulkLoadError> {
        let mut control = self.control()?;
        self.apply(&[Event::Pause], |_| {})?;
        self.stop_session(&mut control);
        self.apply(&[Event::PauseComplete], |_| {})?;
        Ok(())
    }

    /// PAUSED → DOWNLOADING under the partition's current ballot (a new session). `Busy` when
    /// no slot is free (still PAUSED).
    pub fn restart(&self) -> Result<(), BulkLoadError> {
        let mut control = self.control()?;
        transition(self.status(), Event::Restart)?;
        let slot = self.downloads.try_acquire().ok_or_else(|| {
            BulkLoadError::Busy("every download slot of this node is taken".into())
        })?;
        let session = self.next_session(self.target.ballot());
        self.apply(&[Event::Restart], |s| s.session = session)?;
        self.spawn(&mut control, slot)
    }

    /// Cancels a load that has not reached ingestion: join, clean up, CANCELED.
    pub fn cancel(&self) -> Result<(), BulkLoadError> {
        let mut control = self.control()?;
        transition(self.status(), Event::Cancel)?;
        self.stop_session(&mut control);
        self.remove_files()?;
        self.apply(&[Event::Cancel], |_| {})?;
        Ok(())
    }

    /// Cancels in any status, interrupting an ingestion through its token first.
    pub fn force_cancel(&self) -> Result<(), BulkLoadError> {
        if let Some(token) = self.shared.lock().ingest_cancel.as_ref() {
            token.cancel();
        }
        let mut control = self.control()?;
        self.stop_session(&mut control);
        if !self.files_kept() {
            self.remove_files()?;
        }
        self.apply(&[Event::ForceCancel], |_| {})?;
        Ok(())
    }

    /// Whether a failed ingestion's files are kept for replicas still applying it
    /// ([`PartitionState::files_kept`]).
    pub fn files_kept(&self) -> bool {
        self.shared.lock().state.files_kept
    }

    /// Forgets the load whatever its status (role change, ballot change, operator clear):
    /// cancel and join every download, then remove files, then INVALID.
    pub fn clear(&self) -> Result<(), BulkLoadError> {
        if let Some(token) = self.shared.lock().ingest_cancel.as_ref() {
            token.cancel();
        }
        let mut control = self.control()?;
        self.stop_session(&mut control);
        self.remove_files()?;
        let events: &[Event] = if self.status().is_terminal() {
            &[Event::Clear]
        } else {
            &[Event::ForceCancel, Event::Clear]
        };
        self.apply(events, |s| {
            s.metadata = None;
            s.error = None;
            s.files_kept = false;
        })?;
        Ok(())
    }

    /// A new ballot for the partition (role change, restart): Pegasus clears unfinished local
    /// bulk-load state; a SUCCEED load is kept.
    pub fn on_ballot_change(&self) -> Result<(), BulkLoadError> {
        if self.status() == Status::Succeed {
            return Ok(());
        }
        self.clear()
    }

    /// DOWNLOADED → INGESTING → SUCCEED (or FAILED): ingests the verified files through the
    /// [`IngestTarget`] with the session's ballot, retrying "busy" with exponential backoff and
    /// jitter under `ingest_timeout`, then checkpoints. A stale ballot rolls back to
    /// DOWNLOADING (the files are kept and re-verified) and returns `StaleBallot`.
    pub fn ingest(&self) -> Result<(), BulkLoadError> {
        let _control = self.control()?;
        let (status, session, metadata, load_id) = {
            let shared = self.shared.lock();
            let s = &shared.state;
            (s.status, s.session, s.metadata.clone(), s.load_id)
        };
        transition(status, Event::IngestStart)?;
        let current = self.target.ballot();
        let request = Ballot(session.ballot);
        if request != current {
            self.apply(&[Event::Rollback], |_| {})?;
            return Err(BulkLoadError::StaleBallot { request, current });
        }
        if metadata.as_ref().is_some_and(|m| m.files.is_empty()) {
            // A partition no key of the load hashed to: nothing to ingest, nothing to
            // checkpoint (`sst-ingest build --partitions N` writes such partitions).
            self.apply(&[Event::IngestStart, Event::IngestSucceeded], |s| {
                s.error = None
            })?;
            self.remove_files()?;
            self.metrics().succeeded_inc();
            return Ok(());
        }
        let files = match self.local_files(metadata.as_ref()) {
            Ok(files) => files,
            Err(reason) => {
                self.apply(&[Event::Rollback], |s| s.error = Some(reason.clone()))?;
                return Err(BulkLoadError::Transient(reason));
            }
        };
        let cancel = CancelToken::new();
        self.shared.lock().ingest_cancel = Some(cancel.clone());
        self.apply(&[Event::IngestStart], |_| {})?;
        let started = Instant::now();
        let entries = metadata.map(|m| m.files).unwrap_or_default();
        let load = LoadFiles {
            load_id,
            entries: &entries,
            files: &files,
        };
        let result = self
            .ingest_with_retries(&load, request, &cancel)
            .and_then(|()| self.target.checkpoint());
        self.shared.lock().ingest_cancel = None;
        self.metrics().ingest_finished(started.elapsed());
        self.finish_ingest(result)
    }

    fn finish_ingest(&self, result: Result<(), TargetError>) -> Result<(), BulkLoadError> {
        match result {
            Ok(()) => {
                self.apply(&[Event::IngestSucceeded], |s| s.error = None)?;
                self.remove_files()?;
                self.metrics().succeeded_inc();
                Ok(())
            }
            Err(TargetError::StaleBallot { request, current }) => {
                self.apply(&[Event::Rollback], |_| {})?;
                Err(BulkLoadError::StaleBallot { request, current })
            }
            Err(e) => {
                // The entry may be in the log already (proposed, then not applied everywhere
                // in time): a replica still to apply it copies the files from here, and
                // without them it would record a failure the others did not (divergence).
                // They are kept until `clear`, which runs once every replica caught up.
                let reason = format!(
                    "ingestion failed: {e}; its files are kept until every replica has \
                     applied the ingestion (cleared when the next load starts)"
                );
                self.apply(&[Event::IngestFailed], |s| {
                    s.error = Some(reason.clone());
                    s.files_kept = true;
                })?;
                if e != TargetError::Cancelled {
                    self.metrics().failed_inc();
                }
                Err(BulkLoadError::Failed(reason))
            }
        }
    }

    /// The local paths of the load's files, each present with the right size.
    fn local_files(&self, metadata: Option<&BulkLoadMetadata>) -> Result<Vec<PathBuf>, String> {
        let dir = self.config.bulk_load_dir();
        let mut files = Vec::new();
        for file in metadata.map(|m| m.files.as_slice()).unwrap_or_default() {
            let path = resolve_under(&dir, &file.name)?;
            let size = std::fs::metadata(&path).map(|m| m.len());
            if size.as_ref().ok() != Some(&file.size) {
                return Err(format!(
                    "{} is missing or changed before ingestion",
                    file.name
                ));
            }
            files.push(path);
        }
        if files.is_empty() {
            return Err("the load lists no files".into());
        }
        Ok(files)
    }

    fn ingest_with_retries(
        &self,
        load: &LoadFiles<'_>,
        ballot: Ballot,
        cancel: &CancelToken,
    ) -> Result<(), TargetError> {
        let config = &self.config;
        let dir = config.bulk_load_dir();
        let deadline = Instant::now() + config.ingest_timeout;
        let mut backoff = config.ingest_backoff_initial;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let request = IngestRequest {
                ballot,
                load_id: load.load_id,
                dir: &dir,
                entries: load.entries,
                files: load.files,
                deadline: deadline.min(Instant::now() + config.ingest_attempt_timeout),
                cancel,
            };
            let result = {
                // Set only around the engine call: the flag means "ingestion under way", and
                // the guard clears it on every path (seed S3).
                let _ingesting = IngestingGuard::enter(&self.gate);
                self.target.ingest(&request)
            };
            let message = match result {
                Err(TargetError::Retryable(message)) => message,
                other => return other,
            };
            let wait = jitter(backoff);
            if Instant::now() + wait >= deadline {
                return Err(TargetError::Fatal(format!(
                    "engine still busy after {attempts} attempts within {:?}: {message}",
                    config.ingest_timeout
                )));
            }
            self.metrics().ingest_retried();
            if !sleep_unless_cancelled(wait, cancel) {
                return Err(TargetError::Cancelled);
            }
            backoff = backoff.saturating_mul(2).min(config.ingest_backoff_max);
        }
    }
}

/// What one ingestion hands to the target, borrowed for its retries.
struct LoadFiles<'a> {
    load_id: u64,
    entries: &'a [super::metadata::FileEntry],
    files: &'a [PathBuf],
}

/// A random non-zero load id (0 marks states written before load ids existed).
fn new_load_id() -> u64 {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    random.max(1)
}

enum MetadataProblem {
    Transient(String),
    Permanent(String),
}

/// A duration in `[d/2, d]`, randomly.
pub(crate) fn jitter(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

fn remove_dir(dir: &Path) -> Result<(), BulkLoadError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BulkLoadError::io(dir, e)),
    }
    match dir.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Brings a state read at open to one a driver can continue from (module docs, "Restart").
fn recover(state: &mut PartitionState, dir: &Path) -> Result<(), BulkLoadError> {
    let event = match state.status {
        Status::Pausing => Some(Event::PauseComplete),
        Status::Ingesting => Some(Event::Rollback),
        Status::Downloaded => {
            let files = state.metadata.as_ref().map(|m| m.files.as_slice());
            let intact = files.unwrap_or_default().iter().all(|f| {
                resolve_under(dir, &f.name).is_ok_and(|path| verify_file(&path, f).is_ok())
            });
            (!intact).then_some(Event::Rollback)
        }
        Status::Invalid | Status::Succeed | Status::Failed | Status::Canceled => {
            remove_dir(dir)?;
            None
        }
        Status::Downloading | Status::Paused => None,
    };
    if let Some(event) = event {
        state.status = transition(state.status, event)?;
    }
    Ok(())
}
