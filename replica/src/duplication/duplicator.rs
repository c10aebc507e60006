//! Drives one duplication on its own named thread: resumes the persisted status and walks
//! PREPARE → APP → LOG, persisting every step before acting on it.
//!
//! - PREPARE: the follower must accept us ([`DuplicationSink::hello`]), then a checkpoint at or
//!   above the minimum checkpoint decree is made (re-derived when absent, seed S5).
//! - APP: the follower copies the checkpoint; confirmed = its decree.
//! - LOG: committed mutations from `confirmed + 1` are read in batches of at most
//!   [`DuplicationOptions::batch_max`] and shipped; the acknowledged prefix advances
//!   `confirmed`. A plog gap is retried forever (SLOW) or skipped and counted (SKIP). A
//!   bulk-load ingestion (a control mutation) is never shipped: the duplicator stops in front
//!   of it with the error visible, in both fail modes (see [`crate::duplication`]).
//!
//! Every failure is retried with exponential backoff between [`DuplicationOptions::backoff_min`]
//! and [`DuplicationOptions::backoff_max`], recorded in `last_error` for the operator, and
//! cancellable: [`Duplicator::stop`] wakes the thread and joins it.

use super::metrics::DuplicationMetrics;
use super::sink::DuplicationSink;
use super::source::{DuplicationSource, ReadOutcome};
use super::status::{transition, Event, Rejected, Status};
use super::store::{self, DuplicationRecord, FailMode};
use crate::error::Result;
use crate::plog::RetainFrom;
use crate::types::Decree;
use parking_lot::{Condvar, Mutex};
use siltdb::fs::FileSystem;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Duplicator tuning.
#[derive(Debug, Clone)]
pub struct DuplicationOptions {
    /// Most mutations per ship request. Default 64.
    pub batch_max: u64,
    /// First retry delay. Default 10 ms.
    pub backoff_min: Duration,
    /// Largest retry delay. Default 2 s.
    pub backoff_max: Duration,
    /// How often an idle duplicator (paused, or caught up) looks again. Default 10 ms.
    pub idle_poll: Duration,
    /// Decrees a duplication may lag behind the applied decree while it holds plog GC back.
    /// Past it the duplication stops holding the log (which is then purged as if it did not
    /// exist) and its `last_error` says so; once what it needs is purged, its fail mode
    /// applies (SLOW waits with the error visible, SKIP skips and counts). Default
    /// [`MAX_LAG_DECREES`].
    pub lag_max_decrees: u64,
}

/// Default [`DuplicationOptions::lag_max_decrees`]: about a million mutations.
pub const MAX_LAG_DECREES: u64 = 1 << 20;

impl Default for DuplicationOptions {
    fn default() -> Self {
        Self {
            batch_max: 64,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(2),
            idle_poll: Duration::from_millis(10),
            lag_max_decrees: MAX_LAG_DECREES,
        }
    }
}

/// The plog GC floor over every live duplication of a replica.
pub(crate) struct Floors {
    keep_from: Mutex<BTreeMap<u64, Option<Decree>>>,
    retain: Arc<RetainFrom>,
}

impl Floors {
    pub(crate) fn new(retain: Arc<RetainFrom>) -> Arc<Self> {
        Arc::new(Self {
            keep_from: Mutex::default(),
            retain,
        })
    }

    /// Records what duplication `id` still needs (`None`: nothing) and publishes the minimum.
    pub(crate) fn update(&self, id: u64, keep_from: Option<Decree>) {
        let mut m = self.keep_from.lock();
        match keep_from {
            Some(_) => m.insert(id, keep_from),
            None => m.remove(&id),
        };
        self.retain.set(m.values().flatten().min().copied());
    }
}

/// What one step achieved.
enum Progress {
    /// Moved forward: go on at once.
    Moved,
    /// Nothing to do now: look again after the idle poll.
    Idle,
}

/// State shared by a duplicator's thread and the operator API.
pub(crate) struct Shared {
    pub(crate) record: Mutex<DuplicationRecord>,
    pub(crate) metrics: DuplicationMetrics,
    // Serializes record writes so an older clone never lands after a newer one; held across
    // the write on purpose (it is the writers' order, never a reader's lock).
    persist_lock: Mutex<()>,
    stop: Mutex<bool>,
    wake: Condvar,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    source: Arc<dyn DuplicationSource>,
    sink: Arc<dyn DuplicationSink>,
    floors: Arc<Floors>,
    opts: DuplicationOptions,
}

impl Shared {
    /// Applies `f` to the record, persists it and republishes the GC floor.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut DuplicationRecord) -> T) -> Result<T> {
        let _order = self.persist_lock.lock();
        let (out, rec) = {
            let mut r = self.record.lock();
            let out = f(&mut r);
            (out, r.clone())
        };
        store::save(self.fs.as_ref(), &self.dir, &rec)?;
        self.publish_floor(&rec);
        Ok(out)
    }

    /// Fires `event` on the persisted status.
    pub(crate) fn fire(&self, event: Event) -> Result<std::result::Result<Status, Rejected>> {
        self.update(|r| {
            let next = transition(r.status, event);
            if let Ok(s) = next {
                r.status = s;
            }
            next
        })
    }

    /// Publishes the record's GC floor, or none when it lags past the limit.
    pub(crate) fn publish_floor(&self, rec: &DuplicationRecord) {
        let keep = match self.over_lag_limit(rec) {
            Some(_) => None,
            None => rec.keep_from(self.source.applied()),
        };
        self.floors.update(rec.id, keep);
    }

    /// The operator's note when `rec` lags more than the limit behind the applied decree
    /// (it no longer holds plog GC back); `None` within the limit.
    fn over_lag_limit(&self, rec: &DuplicationRecord) -> Option<String> {
        let applied = self.source.applied()?;
        let keep = rec.keep_from(Some(applied))?;
        let lag = keep.distance_to(applied)?.saturating_add(1);
        (lag > self.opts.lag_max_decrees).then(|| {
            format!(
                "lagging past the lag limit of {} decrees: the plog is no longer held for this \
                 duplication (once purged, fail mode {:?} applies)",
                self.opts.lag_max_decrees, rec.fail_mode
            )
        })
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_all();
    }

    fn stopped(&self) -> bool {
        *self.stop.lock()
    }

    /// Sleeps up to `d`, returning early when stopped or woken.
    fn sleep(&self, d: Duration) {
        let mut s = self.stop.lock();
        if !*s {
            self.wake.wait_for(&mut s, d);
        }
    }

    fn set_error(&self, e: Option<String>) -> Result<()> {
        if self.record.lock().last_error == e {
            return Ok(());
        }
        self.update(|r| r.last_error = e)
    }
}

/// One running duplication: its shared state and its thread.
pub struct Duplicator {
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Duplicator {
    /// Starts the thread for `record` (resuming its status).
    pub(crate) fn start(
        record: DuplicationRecord,
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        source: Arc<dyn DuplicationSource>,
        sink: Arc<dyn DuplicationSink>,
        floors: Arc<Floors>,
        opts: DuplicationOptions,
    ) -> Result<Duplicator> {
        let id = record.id;
        let shared = Arc::new(Shared {
            record: Mutex::new(record),
            metrics: DuplicationMetrics::default(),
            persist_lock: Mutex::new(()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            fs,
            dir,
            source,
            sink,
            floors,
            opts,
        });
        // The floor holds before the thread (or openraft) can purge anything we need.
        let rec = shared.record.lock().clone();
        shared.publish_floor(&rec);
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("silt-dup-{id}"))
            .spawn(move || run(&sh))
            .map_err(|e| crate::Error::io("duplicator thread", e))?;
        Ok(Duplicator {
            shared,
            thread: Some(thread),
        })
    }

    /// Signals the thread to stop and joins it.
    pub fn stop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            // A panicking duplicator thread is a bug; it has already been reported by the
            // panic hook, and stopping must still complete.
            let _ = t.join();
        }
    }
}

impl Drop for Duplicator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(sh: &Shared) {
    let mut backoff = sh.opts.backoff_min;
    while !sh.stopped() {
        let rec = sh.record.lock().clone();
        // Re-evaluated every round: the applied decree moves without the record changing.
        sh.publish_floor(&rec);
        let lag_note = sh.over_lag_limit(&rec);
        let step = match rec.status {
            Status::Init => sh
                .fire(Event::Start)
                .map(|_| Progress::Moved)
                .map_err(StepError::from),
            Status::Prepare => step_prepare(sh, &rec),
            Status::App => step_app(sh, &rec),
            // LOG without a confirmed decree cannot come from this code, only from a damaged
            // or foreign record: copy a checkpoint again rather than guess (seed S5).
            Status::Log if rec.confirmed_decree.is_none() => step_app(sh, &rec),
            Status::Log => step_log(sh, &rec),
            Status::Pause => Ok(Progress::Idle),
            Status::Removed => return,
        };
        match step {
            Ok(p) => {
                backoff = sh.opts.backoff_min;
                if sh.set_error(lag_note).is_err() {
                    // Progress was made and persisted; only clearing the error failed.
                    sh.sleep(backoff);
                }
                if matches!(p, Progress::Idle) {
                    sh.sleep(sh.opts.idle_poll);
                }
            }
            Err(e) => {
                // The record keeps the first line an operator needs; a failed persist of it is
                // itself only worth a retry.
                let shown = match &lag_note {
                    Some(note) => format!("{e}; {note}"),
                    None => e.to_string(),
                };
                let _ = sh.set_error(Some(shown));
                sh.sleep(backoff);
                backoff = backoff.saturating_mul(2).min(sh.opts.backoff_max);
            }
        }
    }
}

/// A step failure, shown to the operator.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("{0}")]
    Sink(#[from] super::sink::SinkError),
    #[error("{0}")]
    Source(#[from] crate::Error),
    #[error("{0}")]
    Other(String),
}

type Step = std::result::Result<Progress, StepError>;

fn step_prepare(sh: &Shared, rec: &DuplicationRecord) -> Step {
    sh.sink.hello()?;
    let min = rec.min_checkpoint_decree(sh.source.applied());
    let (decree, _pin) = sh.source.checkpoint(min)?;
    sh.update(|r| {
        if r.status == Status::Prepare {
            r.checkpoint_decree = Some(decree);
            if let Ok(s) = transition(r.status, Event::CheckpointReady) {
                r.status = s;
            }
        }
    })?;
    Ok(Progress::Moved)
}

fn step_app(sh: &Shared, rec: &DuplicationRecord) -> Step {
    // Never copy a checkpoint older than what the follower already confirmed: the plog floor
    // only keeps decrees above the confirmed one.
    let confirmed = rec.confirmed_decree.unwrap_or(Decree::ZERO);
    let min = rec
        .min_checkpoint_decree(sh.source.applied())
        .max(confirmed);
    // The checkpoint made in PREPARE may have been collected since (restart, GC): any newer
    // one is as good, the plog floor keeps everything above the older one.
    let (decree, pin) = sh.source.checkpoint(min)?;
    sh.sink.apply_checkpoint(&pin.dir, decree)?;
    sh.update(|r| {
        let copying = r.status == Status::App || r.status == Status::Log;
        if copying {
            r.checkpoint_decree = Some(decree);
            r.confirmed_decree = Some(decree);
        }
        if let Ok(s) = transition(r.status, Event::CheckpointCopied) {
            r.status = s;
        }
    })?;
    Ok(Progress::Moved)
}

fn step_log(sh: &Shared, rec: &DuplicationRecord) -> Step {
    let Some(from) = Decree::after(rec.confirmed_decree) else {
        return Ok(Progress::Idle);
    };
    let Some(applied) = sh.source.applied().filter(|a| *a >= from) else {
        return Ok(Progress::Idle);
    };
    let span = sh.opts.batch_max.max(1) - 1;
    let to = from.checked_add(span).map_or(applied, |t| t.min(applied));
    let mut batch = match sh.source.read(from, to)? {
        ReadOutcome::Mutations(b) => b,
        ReadOutcome::Gap { next, bytes } => return on_gap(sh, rec, from, to, next, bytes),
    };
    // A bulk-load ingestion cannot be duplicated (module docs of `duplication`): ship what
    // comes before it, then stop in front of it, in every fail mode.
    match batch.iter().position(|(_, m)| m.control.is_some()) {
        Some(0) => return Err(StepError::Other(control_refused(from))),
        Some(i) => batch.truncate(i),
        None => {}
    }
    let Some((last, _)) = batch.last() else {
        return Ok(Progress::Idle);
    };
    let last = *last;
    let acked = match sh.sink.ship(&batch) {
        Ok(a) => a,
        Err(e) => {
            sh.metrics.failed();
            return Err(e.into());
        }
    };
    if acked < from || acked > last {
        sh.metrics.failed();
        return Err(StepError::Other(format!(
            "follower acknowledged {acked} for a batch [{from}, {last}]"
        )));
    }
    let (n, bytes) = batch
        .iter()
        .filter(|(d, _)| *d <= acked)
        .fold((0u64, 0u64), |(n, b), (_, m)| {
            (n + 1, b.saturating_add(m.size_bytes()))
        });
    sh.metrics.shipped(n, bytes);
    advance(sh, from, acked)?;
    Ok(Progress::Moved)
}

/// The operator's error for a bulk-load ingestion at `decree` in the shipped range.
fn control_refused(decree: Decree) -> String {
    format!(
        "bulk-load ingestion at {decree} cannot be duplicated (its data is in SST files, not \
         in the plog); the duplication stops before it: remove it and add it again, and the \
         new checkpoint carries the loaded data"
    )
}

/// Moves `confirmed` to `to` if it still is just below `from` (an operator may have acted).
fn advance(sh: &Shared, from: Decree, to: Decree) -> Result<()> {
    sh.update(|r| {
        if r.status.is_live() && Decree::after(r.confirmed_decree) == Some(from) {
            r.confirmed_decree = Some(to);
        }
    })
}

fn on_gap(
    sh: &Shared,
    rec: &DuplicationRecord,
    from: Decree,
    to: Decree,
    next: Option<Decree>,
    bytes: u64,
) -> Step {
    match rec.fail_mode {
        FailMode::Slow => Err(StepError::Other(format!(
            "plog unreadable from {from} (next readable {next:?}); fail mode SLOW retries"
        ))),
        FailMode::Skip => {
            let skip_to = next.and_then(Decree::prev).unwrap_or(to);
            sh.metrics.skipped(bytes);
            advance(sh, from, skip_to)?;
            Ok(Progress::Moved)
        }
    }
}
