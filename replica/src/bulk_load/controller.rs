//! The meta server's role for one table's bulk load, in process: [`BulkLoadController`].
//!
//! It starts every partition (retrying those refused as busy), polls them, and moves the table
//! through the same statuses as a partition: DOWNLOADING until every partition is DOWNLOADED,
//! then INGESTING (every partition ingests in parallel), SUCCEED when all have (a partition
//! that ingested before the others rolled back keeps its SUCCEED and is not ingested again). A
//! partition that FAILED fails the table with the partition and its reason named (the other
//! partitions are left alone; `cancel` cleans them up). A partition that went back to INVALID
//! (its ballot changed and it cleared its state) or reported a stale ballot is started again,
//! at most [`ControllerConfig::rollbacks_max`] times per partition. Operators: pause, restart,
//! cancel, force-cancel, query.

use super::partition::{PartitionBulkLoad, PartitionProgress};
use super::status::{transition, BulkLoadEvent as Event, BulkLoadStatus as Status};
use super::BulkLoadError;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Restarts per partition after a stale ballot or a cleared state. Default 10 (Pegasus).
    pub rollbacks_max: u32,
    /// Pause between polls in [`BulkLoadController::run`]. Default 2 ms.
    pub poll_interval: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            rollbacks_max: 10,
            poll_interval: Duration::from_millis(2),
        }
    }
}

/// The table's status and every partition's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProgress {
    /// The table-level status.
    pub status: Status,
    /// Why the table failed, naming the partition.
    pub error: Option<String>,
    /// One entry per partition.
    pub partitions: Vec<PartitionProgress>,
}

impl TableProgress {
    /// Sum of downloaded bytes over all partitions.
    pub fn downloaded_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.downloaded_bytes).sum()
    }
    /// Sum of total bytes over all partitions.
    pub fn total_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.total_bytes).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    Start,
    Restart,
}

struct Inner {
    status: Status,
    error: Option<String>,
    pending: Vec<Pending>,
    rollbacks: Vec<u32>,
}

/// Drives one table's partitions through a bulk load.
pub struct BulkLoadController {
    partitions: Vec<Arc<PartitionBulkLoad>>,
    config: ControllerConfig,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for BulkLoadController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkLoadController")
            .field("partitions", &self.partitions.len())
            .field("status", &self.inner.lock().status)
            .finish()
    }
}

impl BulkLoadController {
    /// A controller over `partitions` (one table).
    pub fn new(partitions: Vec<Arc<PartitionBulkLoad>>, config: ControllerConfig) -> Self {
        let n = partitions.len();
        BulkLoadController {
            partitions,
            config,
            inner: Mutex::new(Inner {
                status: Status::Invalid,
                error: None,
                pending: vec![Pending::None; n],
                rollbacks: vec![0; n],
            }),
        }
    }

    /// The partitions.
    pub fn partitions(&self) -> &[Arc<PartitionBulkLoad>] {
        &self.partitions
    }

    /// Starts a load on every partition (those refused as busy are retried by `tick`).
    pub fn start(&self) -> Result<TableProgress, BulkLoadError> {
        {
            let mut inner = self.inner.lock();
            inner.status = transition(inner.status, Event::Start)?;
            inner.error = None;
            inner.pending.fill(Pending::Start);
            inner.rollbacks.fill(0);
        }
        self.tick()
    }

    /// One round: retry pending starts, poll every partition, advance the table.
    pub fn tick(&self) -> Result<TableProgress, BulkLoadError> {
        self.run_pending();
        let progress = self.poll_all()?;
        self.advance(&progress)?;
        Ok(self.query_with(progress))
    }

    fn run_pending(&self) {
        let pending = self.inner.lock().pending.clone();
        for (i, op) in pending.into_iter().enumerate() {
            let partition = &self.partitions[i];
            let result = match op {
                Pending::None => continue,
                Pending::Start => partition.start(partition.target_ballot()),
                Pending::Restart => partition.restart(),
            };
            let keep = matches!(
                result,
                Err(BulkLoadError::Busy(_) | BulkLoadError::Transient(_))
                    | Err(BulkLoadError::StaleBallot { .. })
            );
            if !keep {
                // Done, or failed for good (the partition's status says why).
                self.inner.lock().pending[i] = Pending::None;
            }
        }
    }

    fn poll_all(&self) -> Result<Vec<PartitionProgress>, BulkLoadError> {
        self.partitions.iter().map(|p| p.poll()).collect()
    }

    fn advance(&self, progress: &[PartitionProgress]) -> Result<(), BulkLoadError> {
        let status = self.inner.lock().status;
        if status != Status::Downloading {
            return Ok(());
        }
        if let Some(failed) = progress.iter().find(|p| p.status == Status::Failed) {
            let reason = format!(
                "partition {}: {}",
                failed.gpid,
                failed.error.as_deref().unwrap_or("failed")
            );
            return self.fail(reason);
        }
        self.roll_back_cleared(progress)?;
        // A partition that already ingested (before a rollback of the others) stays SUCCEED.
        let all_downloaded = progress
            .iter()
            .all(|p| matches!(p.status, Status::Downloaded | Status::Succeed));
        if all_downloaded
            && self
                .inner
                .lock()
                .pending
                .iter()
                .all(|p| *p == Pending::None)
        {
            self.ingest_all()?;
        }
        Ok(())
    }

    /// Partitions back at INVALID while the table downloads lost their state to a ballot
    /// change: start them again, within the rollback bound.
    fn roll_back_cleared(&self, progress: &[PartitionProgress]) -> Result<(), BulkLoadError> {
        for (i, p) in progress.iter().enumerate() {
            let mut inner = self.inner.lock();
            if p.status != Status::Invalid || inner.pending[i] != Pending::None {
                continue;
            }
            inner.rollbacks[i] += 1;
            if inner.rollbacks[i] > self.config.rollbacks_max {
                drop(inner);
                return self.fail(format!(
                    "partition {}: rolled back more than {} times",
                    p.gpid, self.config.rollbacks_max
                ));
            }
            inner.pending[i] = Pending::Start;
        }
        Ok(())
    }

    fn fail(&self, reason: String) -> Result<(), BulkLoadError> {
        let mut inner = self.inner.lock();
        inner.status = transition(inner.status, Event::DownloadFailed)
            .or_else(|_| transition(inner.status, Event::IngestFailed))?;
        inner.error = Some(reason);
        Ok(())
    }

    fn ingest_all(&self) -> Result<(), BulkLoadError> {
        {
            let mut inner = self.inner.lock();
            inner.status = transition(inner.status, Event::DownloadsComplete)?;
            inner.status = transition(inner.status, Event::IngestStart)?;
        }
        let results: Vec<Result<(), BulkLoadError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .partitions
                .iter()
                .map(|p| {
                    scope.spawn(move || match p.status() {
                        // Ingested before a rollback of other partitions: not again.
                        Status::Succeed => Ok(()),
                        _ => p.ingest(),
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BulkLoadError::Failed("ingestion thread panicked".into()))
                    })
                })
                .collect()
        });
        self.after_ingest(results)
    }

    fn after_ingest(&self, results: Vec<Result<(), BulkLoadError>>) -> Result<(), BulkLoadError> {
        let mut stale = false;
        for (i, result) in results.into_iter().enumerate() {
            let gpid = self.partitions[i].gpid();
            match result {
                Ok(()) => {}
                Err(BulkLoadError::StaleBallot { .. } | BulkLoadError::Transient(_)) => {
                    let mut inner = self.inner.lock();
                    inner.rollbacks[i] += 1;
                    if inner.rollbacks[i] > self.config.rollbacks_max {
                        inner.status = transition(inner.status, Event::IngestFailed)?;
                        inner.error = Some(format!(
                            "partition {gpid}: rolled back more than {} times",
                            self.config.rollbacks_max
                        ));
                        return Ok(());
                    }
                    stale = true;
                }
                Err(e) => {
                    let mut inner = self.inner.lock();
                    inner.status = transition(inner.status, Event::IngestFailed)?;
                    inner.error = Some(format!("partition {gpid}: {e}"));
                    return Ok(());
                }
            }
        }
        let mut inner = self.inner.lock();
        let event = if stale {
            Event::Rollback
        } else {
            Event::IngestSucceeded
        };
        inner.status = transition(inner.status, event)?;
        Ok(())
    }

    /// Ticks until the table reaches a terminal status or PAUSED, or `timeout` passes.
    pub fn run(&self, timeout: Duration) -> Result<TableProgress, BulkLoadError> {
        let deadline = Instant::now() + timeout;
        loop {
            let progress = self.tick()?;
            if progress.status.is_terminal() || progress.status == Status::Paused {
                return Ok(progress);
            }
            if Instant::now() >= deadline {
                return Err(BulkLoadError::Timeout(format!(
                    "table still {} after {timeout:?}: {progress:?}",
                    progress.status
                )));
            }
            std::thread::sleep(self.config.poll_interval);
        }
    }

    /// Pauses every downloading partition (those already DOWNLOADED stay so).
    pub fn pause(&self) -> Result<TableProgress, BulkLoadError> {
        {
            let mut inner = self.inner.lock();
            inner.status = transition(inner.status, Event::Pause)?;
        }
        for p in &self.partitions {
            if p.poll()?.status == Status::Downloading {
                p.pause()?;
            }
        }
        let mut inner = self.inner.lock();
        inner.status = transition(inner.status, Event::PauseComplete)?;
        inner.pending.fill(Pending::None);
        drop(inner);
        self.query()
    }

    /// Restarts a paused table (partitions refused as busy are retried by `tick`).
    pub fn restart(&self) -> Result<TableProgress, BulkLoadError> {
        {
            let mut inner = self.inner.lock();
            inner.status = transition(inner.status, Event::Restart)?;
            for (i, p) in self.partitions.iter().enumerate() {
                if p.status() == Status::Paused {
                    inner.pending[i] = Pending::Restart;
                }
            }
        }
        self.tick()
    }

    /// Cancels the load: every partition's downloads joined and files removed. `force` also
    /// works during ingestion and interrupts it.
    pub fn cancel(&self, force: bool) -> Result<TableProgress, BulkLoadError> {
        {
            let mut inner = self.inner.lock();
            let event = if force {
                Event::ForceCancel
            } else {
                Event::Cancel
            };
            inner.status = transition(inner.status, event)?;
            inner.pending.fill(Pending::None);
        }
        for p in &self.partitions {
            p.force_cancel()?;
        }
        self.query()
    }

    /// The table's status and every partition's progress, without side effects.
    pub fn query(&self) -> Result<TableProgress, BulkLoadError> {
        let progress = self.partitions.iter().map(|p| p.progress()).collect();
        Ok(self.query_with(progress))
    }

    fn query_with(&self, partitions: Vec<PartitionProgress>) -> TableProgress {
        let inner = self.inner.lock();
        TableProgress {
            status: inner.status,
            error: inner.error.clone(),
            partitions,
        }
    }
}
