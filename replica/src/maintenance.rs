//! The replica's periodic maintenance task: checkpoint, plog purge, checkpoint GC.
//!
//! Pegasus checkpoints every replica on a timer so that a learner copies a recent checkpoint
//! and a short log tail, and so the private log can be cut. Here one tokio task per replica does
//! that every [`MaintenanceOptions::interval`]:
//!
//! 1. if the applied decree moved at least [`MaintenanceOptions::min_new_decrees`] past the newest
//!    checkpoint, take a checkpoint (an openraft snapshot: engine flush + hard links). Building
//!    it runs checkpoint GC, which keeps the newest `checkpoints_keep` and never removes a
//!    checkpoint that is pinned by a transfer (learn) in progress;
//! 2. purge the plog up to the newest checkpoint (the plog itself keeps everything above the
//!    durable decree and above the duplication floor), re-running a purge the floor cut short
//!    once the floor moved ([`Plog::retry_purge`]).
//!
//! The task is owned by the [`crate::replica::Replica`]: cancelled and joined by `close` and
//! `kill` before the Raft shuts down. A failed round is counted and its error kept in
//! [`MaintenanceStats::last_error`]; the next round tries again. Every wait inside a round is
//! bounded by [`crate::replica::MAX_WAIT`].

use crate::error::{Error, Result};
use crate::plog::Plog;
use crate::raft::TypeConfig;
use crate::replica::MAX_WAIT;
use crate::types::Decree;
use openraft::Raft;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Smallest accepted maintenance interval (a tighter timer would only burn CPU).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// How often a replica checkpoints and purges its log.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// Time between rounds; `None` turns the task off (checkpoints only on demand).
    /// Default: 60 s.
    pub interval: Option<Duration>,
    /// A round checkpoints only when the applied decree is at least this far past the newest
    /// checkpoint. Default: 1 (any new mutation).
    pub min_new_decrees: u64,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(60)),
            min_new_decrees: 1,
        }
    }
}

/// What the maintenance task did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceStats {
    /// Rounds finished (with or without a checkpoint).
    pub rounds: u64,
    /// Checkpoints taken by the task.
    pub checkpoints: u64,
    /// Rounds that failed.
    pub errors: u64,
    /// The decree of the newest checkpoint the task took.
    pub last_checkpoint: Option<Decree>,
    /// The error of the last failed round.
    pub last_error: Option<String>,
}

/// Takes a checkpoint (an openraft snapshot) and waits until the snapshot covers the decree
/// applied when the call started, bounded by [`MAX_WAIT`].
pub async fn checkpoint(raft: &Raft<TypeConfig>) -> Result<Option<Decree>> {
    checkpoint_at(raft, applied(raft)).await
}

/// [`checkpoint`], waiting until the snapshot reaches at least `target` (the state machine's
/// applied decree, which openraft's metrics can trail right after a write was answered: a
/// target read from the metrics could be met by an older snapshot).
pub async fn checkpoint_at(
    raft: &Raft<TypeConfig>,
    target: Option<Decree>,
) -> Result<Option<Decree>> {
    raft.trigger()
        .snapshot()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        let (snap, running) = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.snapshot.map(|l| Decree(l.index)), m.running_state.clone())
        };
        if snap >= target {
            return Ok(snap);
        }
        if let Err(fatal) = running {
            // A failed build (e.g. an I/O error) stops the Raft: no snapshot will come.
            return Err(Error::Raft(format!("checkpoint failed: {fatal}")));
        }
        if Instant::now() > deadline {
            return Err(Error::Raft(format!(
                "checkpoint did not reach {target:?} within {MAX_WAIT:?} (at {snap:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asks openraft to purge the plog up to the newest snapshot (the plog keeps what its floors
/// require), then re-runs the furthest purge asked so far on the plog itself, so a purge the
/// duplication floor cut short goes through once the floor moved ([`Plog::retry_purge`]).
pub async fn purge_log(raft: &Raft<TypeConfig>, plog: &Plog) -> Result<()> {
    let snap = raft.metrics().borrow().snapshot;
    if let Some(s) = snap {
        raft.trigger()
            .purge_log(s.index)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
    }
    let plog = plog.clone();
    tokio::task::spawn_blocking(move || plog.retry_purge())
        .await
        .map_err(|e| Error::Raft(format!("plog purge task: {e}")))?
}

fn applied(raft: &Raft<TypeConfig>) -> Option<Decree> {
    raft.metrics()
        .borrow()
        .last_applied
        .map(|l| Decree(l.index))
}

fn snapshot(raft: &Raft<TypeConfig>) -> Option<Decree> {
    raft.metrics().borrow().snapshot.map(|l| Decree(l.index))
}

/// One round: checkpoint if enough is new, then purge. Returns the checkpoint taken, if any.
async fn round(raft: &Raft<TypeConfig>, plog: &Plog, min_new: u64) -> Result<Option<Decree>> {
    let Some(applied) = applied(raft) else {
        return Ok(None);
    };
    let due = match snapshot(raft) {
        None => true,
        Some(s) => applied.0.saturating_sub(s.0) >= min_new.max(1),
    };
    let taken = if due { checkpoint(raft).await? } else { None };
    purge_log(raft, plog).await?;
    Ok(taken)
}

/// The running task: its stop signal and join handle.
pub struct Maintenance {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    stats: Arc<Mutex<MaintenanceStats>>,
}

impl Maintenance {
    /// Starts the task for `raft` (no task when `opts.interval` is `None`).
    pub fn start(raft: Raft<TypeConfig>, plog: Plog, opts: &MaintenanceOptions) -> Maintenance {
        let (stop, mut stopped) = watch::channel(false);
        let stats = Arc::new(Mutex::new(MaintenanceStats::default()));
        let task = opts.interval.map(|interval| {
            let interval = interval.max(MIN_INTERVAL);
            let min_new = opts.min_new_decrees;
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        _ = tokio::time::sleep(interval) => {}
                    }
                    // A round is cancelled at its next await point when the replica closes.
                    let r = tokio::select! {
                        _ = stopped.changed() => return,
                        r = round(&raft, &plog, min_new) => r,
                    };
                    let mut s = stats.lock();
                    s.rounds += 1;
                    match r {
                        Ok(Some(d)) => {
                            s.checkpoints += 1;
                            s.last_checkpoint = Some(d);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            s.errors += 1;
                            s.last_error = Some(e.to_string());
                        }
                    }
                }
            })
        });
        Maintenance { stop, task, stats }
    }

    /// What the task did so far.
    pub fn stats(&self) -> MaintenanceStats {
        self.stats.lock().clone()
    }

    /// Stops the task and waits for it to end.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        // Dropped without `stop` (a replica dropped without close): the task sees the closed
        // channel at its next await and ends; abort makes sure it does not outlive the runtime.
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
