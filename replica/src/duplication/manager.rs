//! The operator API over every duplication of one replica: add, list/query, pause, start,
//! remove, set fail mode. Records live in `<replica dir>/duplication/`; [`Duplications::open`]
//! resumes each in whatever status it was persisted (seed S5).

use super::duplicator::{DuplicationOptions, Duplicator, Floors};
use super::metrics::MetricsSnapshot;
use super::sink::{DuplicationSink, SinkError, SinkResult};
use super::source::DuplicationSource;
use super::status::{Event, Status};
use super::store::{self, DuplicationRecord, FailMode};
use crate::error::{Error, Result};
use crate::mutation::Mutation;
use crate::types::Decree;
use parking_lot::Mutex;
use siltdb::fs::FileSystem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Finds the sink of a remote by name; `None` when unknown.
pub type SinkResolver = Arc<dyn Fn(&str) -> Option<Arc<dyn DuplicationSink>> + Send + Sync>;

/// What an operator sees of one duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicationInfo {
    /// The id.
    pub id: u64,
    /// The follower's name.
    pub remote: String,
    /// The status.
    pub status: Status,
    /// The fail mode.
    pub fail_mode: FailMode,
    /// The checkpoint the follower copied or will copy.
    pub checkpoint_decree: Option<Decree>,
    /// The last decree the follower acknowledged.
    pub confirmed_decree: Option<Decree>,
    /// Applied decrees not yet confirmed (pending mutations); `None` before APP completes.
    pub lag_decrees: Option<u64>,
    /// The last error, if the duplication is stuck on one.
    pub last_error: Option<String>,
    /// Counters.
    pub metrics: MetricsSnapshot,
}

/// A sink for a remote the resolver does not know: the duplication waits, visibly.
struct UnknownRemote(String);

impl DuplicationSink for UnknownRemote {
    fn hello(&self) -> SinkResult<()> {
        Err(SinkError::Unavailable(format!(
            "unknown remote {:?}",
            self.0
        )))
    }
    fn apply_checkpoint(&self, _: &Path, _: Decree) -> SinkResult<()> {
        self.hello()
    }
    fn ship(&self, _: &[(Decree, Mutation)]) -> SinkResult<Decree> {
        self.hello().map(|_| Decree::ZERO)
    }
}

/// Every duplication of one replica.
pub struct Duplications {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    source: Arc<dyn DuplicationSource>,
    sinks: SinkResolver,
    floors: Arc<Floors>,
    opts: DuplicationOptions,
    dups: Mutex<BTreeMap<u64, Duplicator>>,
}

impl Duplications {
    /// Loads the records under `replica_dir` and resumes each live one.
    pub fn open(
        replica_dir: &Path,
        fs: Arc<dyn FileSystem>,
        source: Arc<dyn DuplicationSource>,
        sinks: SinkResolver,
        opts: DuplicationOptions,
    ) -> Result<Duplications> {
        let dir = store::dir_of(replica_dir);
        let me = Duplications {
            floors: Floors::new(source.retain()),
            fs,
            dir,
            source,
            sinks,
            opts,
            dups: Mutex::default(),
        };
        for rec in store::load_all(me.fs.as_ref(), &me.dir)? {
            if rec.status.is_live() {
                me.spawn(rec)?;
            } else {
                // Removed but the file outlived a crash: finish the removal.
                store::delete(me.fs.as_ref(), &me.dir, rec.id)?;
            }
        }
        Ok(me)
    }

    fn spawn(&self, rec: DuplicationRecord) -> Result<()> {
        let id = rec.id;
        let sink = (self.sinks)(&rec.remote)
            .unwrap_or_else(|| Arc::new(UnknownRemote(rec.remote.clone())));
        let d = Duplicator::start(
            rec,
            Arc::clone(&self.fs),
            self.dir.clone(),
            Arc::clone(&self.source),
            sink,
            Arc::clone(&self.floors),
            self.opts.clone(),
        )?;
        self.dups.lock().insert(id, d);
        Ok(())
    }

    /// Adds a duplication to `remote` and starts it; returns its id.
    pub fn add(&self, remote: &str, fail_mode: FailMode) -> Result<u64> {
        if (self.sinks)(remote).is_none() {
            return Err(Error::InvalidArgument(format!("unknown remote {remote:?}")));
        }
        let id = self
            .dups
            .lock()
            .keys()
            .next_back()
            .map_or(Some(1), |m| m.checked_add(1))
            .ok_or_else(|| Error::InvalidArgument("duplication ids exhausted".into()))?;
        self.add_with_id(id, remote, fail_mode)?;
        Ok(id)
    }

    /// Adds duplication `id` to `remote` and starts it, for callers that give the same id to
    /// every replica of a table (a cluster). Refuses an id in use.
    pub fn add_with_id(&self, id: u64, remote: &str, fail_mode: FailMode) -> Result<()> {
        if (self.sinks)(remote).is_none() {
            return Err(Error::InvalidArgument(format!("unknown remote {remote:?}")));
        }
        if self.dups.lock().contains_key(&id) {
            return Err(Error::InvalidArgument(format!("duplication {id} exists")));
        }
        let rec = DuplicationRecord::new(id, remote, fail_mode);
        store::save(self.fs.as_ref(), &self.dir, &rec)?;
        self.spawn(rec)
    }

    /// Every duplication, by id.
    pub fn list(&self) -> Vec<DuplicationInfo> {
        let ids: Vec<u64> = self.dups.lock().keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.query(id).ok())
            .collect()
    }

    /// One duplication.
    pub fn query(&self, id: u64) -> Result<DuplicationInfo> {
        let dups = self.dups.lock();
        let d = dups.get(&id).ok_or_else(|| unknown(id))?;
        let r = d.shared.record.lock().clone();
        let applied = self.source.applied();
        let lag_decrees = match (r.confirmed_decree, applied) {
            (Some(c), Some(a)) => Some(c.distance_to(a).unwrap_or(0)),
            _ => None,
        };
        Ok(DuplicationInfo {
            id,
            remote: r.remote,
            status: r.status,
            fail_mode: r.fail_mode,
            checkpoint_decree: r.checkpoint_decree,
            confirmed_decree: r.confirmed_decree,
            lag_decrees,
            last_error: r.last_error,
            metrics: d.shared.metrics.snapshot(),
        })
    }

    fn fire(&self, id: u64, event: Event) -> Result<Status> {
        let shared = {
            let dups = self.dups.lock();
            Arc::clone(&dups.get(&id).ok_or_else(|| unknown(id))?.shared)
        };
        let next = shared
            .fire(event)?
            .map_err(|e| Error::InvalidArgument(format!("duplication {id}: {e}")))?;
        shared.wake();
        Ok(next)
    }

    /// Pauses shipping (LOG → PAUSE).
    pub fn pause(&self, id: u64) -> Result<()> {
        self.fire(id, Event::Pause).map(|_| ())
    }

    /// Resumes shipping (PAUSE → LOG) or starts an INIT duplication.
    pub fn start(&self, id: u64) -> Result<()> {
        self.fire(id, Event::Start).map(|_| ())
    }

    /// Removes the duplication: persisted REMOVED, thread joined, record deleted, its GC
    /// floor lifted.
    pub fn remove(&self, id: u64) -> Result<()> {
        self.fire(id, Event::Remove)?;
        let d = self.dups.lock().remove(&id);
        if let Some(mut d) = d {
            d.stop();
        }
        self.floors.update(id, None);
        store::delete(self.fs.as_ref(), &self.dir, id)
    }

    /// Changes the fail mode.
    pub fn set_fail_mode(&self, id: u64, mode: FailMode) -> Result<()> {
        let shared = {
            let dups = self.dups.lock();
            Arc::clone(&dups.get(&id).ok_or_else(|| unknown(id))?.shared)
        };
        shared.update(|r| r.fail_mode = mode)?;
        shared.wake();
        Ok(())
    }

    /// Stops every duplicator thread (the records stay on disk for the next open). Blocks
    /// until they are joined: from async code, call it (or drop) inside `block_in_place` or
    /// `spawn_blocking`, since a duplicator may be waiting on the runtime.
    pub fn close(&self) {
        let dups = std::mem::take(&mut *self.dups.lock());
        for (_, mut d) in dups {
            d.stop();
        }
    }
}

impl Drop for Duplications {
    fn drop(&mut self) {
        self.close();
    }
}

fn unknown(id: u64) -> Error {
    Error::InvalidArgument(format!("no duplication {id}"))
}
