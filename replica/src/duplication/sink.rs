//! Where a duplication sends data: the [`DuplicationSink`] trait and two implementations.
//!
//! - [`DbFollower`]: an in-process follower that is a plain `siltdb::Db` applying mutations in
//!   decree order (the follower that is a replica group is [`super::group_sink::GroupSink`]).
//! - [`TestSink`]: wraps another sink and, under a shared [`TestSinkControl`], fails, rejects
//!   (like the follower's authentication failure of seed S5), stalls, or acknowledges only part
//!   of a batch.
//!
//! Shipping is idempotent by construction: the source re-ships from `confirmed + 1`, and every
//! mutation re-applied in decree order leaves the same state.

use crate::checkpoint::copy_db_dir;
use crate::mutation::{Mutation, WriteOp};
use crate::types::Decree;
use parking_lot::Mutex;
use siltdb::{Db, Options, WriteBatch, WriteOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a sink call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The follower is unreachable or failed; retry.
    #[error("follower unavailable: {0}")]
    Unavailable(String),
    /// The follower refused the request (e.g. authentication); retried, and shown to the
    /// operator until it is fixed.
    #[error("follower rejected: {0}")]
    Rejected(String),
}

/// Result of a sink call.
pub type SinkResult<T> = std::result::Result<T, SinkError>;

/// A follower of a duplication.
pub trait DuplicationSink: Send + Sync {
    /// Checks the follower accepts this duplication (connect, authenticate). Called in PREPARE.
    fn hello(&self) -> SinkResult<()>;

    /// Replaces the follower's data with the checkpoint in `dir`, taken at `decree`.
    fn apply_checkpoint(&self, dir: &Path, decree: Decree) -> SinkResult<()>;

    /// Applies `batch` (contiguous decrees, ascending) and returns the last decree the
    /// follower holds durably from it; a prefix of the batch is a valid answer.
    fn ship(&self, batch: &[(Decree, Mutation)]) -> SinkResult<Decree>;
}

/// Refuses a batch holding a control mutation (bulk-load ingestion): shipped as its (empty)
/// client writes, it would silently lose the loaded data on the follower. The duplicator stops
/// before such a mutation (see [`crate::duplication`]); this is the sinks' own guard.
pub fn refuse_control(batch: &[(Decree, Mutation)]) -> SinkResult<()> {
    match batch.iter().find(|(_, m)| m.control.is_some()) {
        Some((d, _)) => Err(SinkError::Rejected(format!(
            "bulk-load ingestion at {d} cannot be duplicated"
        ))),
        None => Ok(()),
    }
}

/// An in-process follower: a plain `siltdb::Db` in `dir/db.<gen>`.
pub struct DbFollower {
    dir: PathBuf,
    opts: Options,
    state: Mutex<FollowerState>,
}

struct FollowerState {
    db: Arc<Db>,
    gen: u64,
}

impl DbFollower {
    /// Opens (creating) the follower in `dir` with engine options `opts`.
    pub fn open(dir: impl Into<PathBuf>, opts: Options) -> crate::Result<Self> {
        let dir = dir.into();
        let db = Db::open(dir.join("db.0"), opts.clone())?;
        Ok(Self {
            dir,
            opts,
            state: Mutex::new(FollowerState {
                db: Arc::new(db),
                gen: 0,
            }),
        })
    }

    /// The follower's current engine.
    pub fn db(&self) -> Arc<Db> {
        Arc::clone(&self.state.lock().db)
    }

    /// Reads `key` from the follower.
    pub fn get(&self, key: &[u8]) -> crate::Result<Option<Vec<u8>>> {
        Ok(self.db().get(key)?)
    }

    /// Closes the engine.
    pub fn close(&self) -> crate::Result<()> {
        Ok(self.db().close()?)
    }
}

fn unavailable(e: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(e.to_string())
}

impl DuplicationSink for DbFollower {
    fn hello(&self) -> SinkResult<()> {
        Ok(())
    }

    fn apply_checkpoint(&self, dir: &Path, _decree: Decree) -> SinkResult<()> {
        // The lock is held across the copy on purpose: no batch may land in the old engine
        // while it is being replaced.
        let mut st = self.state.lock();
        let gen = st
            .gen
            .checked_add(1)
            .ok_or_else(|| unavailable("gen overflow"))?;
        let new_dir = self.dir.join(format!("db.{gen}"));
        let fs = Arc::clone(&self.opts.fs);
        if fs.exists(&new_dir) {
            fs.remove_dir_all(&new_dir).map_err(unavailable)?;
        }
        copy_db_dir(fs.as_ref(), dir, &new_dir).map_err(unavailable)?;
        let db = Db::open(&new_dir, self.opts.clone()).map_err(unavailable)?;
        st.db.close().map_err(unavailable)?;
        st.db = Arc::new(db);
        st.gen = gen;
        Ok(())
    }

    fn ship(&self, batch: &[(Decree, Mutation)]) -> SinkResult<Decree> {
        let Some((last, _)) = batch.last() else {
            return Err(SinkError::Unavailable("empty batch".into()));
        };
        refuse_control(batch)?;
        let mut wb = WriteBatch::new();
        for (_, m) in batch {
            for op in &m.ops {
                match op {
                    WriteOp::Put { key, value } => wb.put(key, value),
                    WriteOp::Delete { key } => wb.delete(key),
                    WriteOp::DeleteRange { start, end } => wb.delete_range(start, end),
                }
            }
        }
        let db = self.db();
        db.write(wb, &WriteOptions::default())
            .map_err(unavailable)?;
        Ok(*last)
    }
}

/// How a [`TestSink`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestMode {
    /// Pass every call through.
    Ok,
    /// Fail every call as unavailable.
    Fail,
    /// Reject every call (authentication failure).
    Reject,
    /// Block each call until the mode changes (bounded by [`MAX_STALL`]), then behave per the
    /// new mode.
    Stall,
    /// Acknowledge only the first `n` (at least 1) mutations of each batch.
    Partial(usize),
    /// Fail each call as unavailable with this probability in percent, else pass through.
    RandomFail(u8),
}

/// Longest a stalled [`TestSink`] call blocks before failing as unavailable.
pub const MAX_STALL: Duration = Duration::from_secs(10);

/// The shared handle controlling a [`TestSink`], with call counters.
#[derive(Debug)]
pub struct TestSinkControl {
    mode: Mutex<TestMode>,
    rng: AtomicU64,
    /// Calls that reached the sink.
    pub calls: AtomicU64,
    /// Calls that failed or were rejected.
    pub failures: AtomicU64,
}

impl TestSinkControl {
    /// A control in `mode`.
    pub fn new(mode: TestMode) -> Arc<Self> {
        Arc::new(Self {
            mode: Mutex::new(mode),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// Changes the behaviour of every sink sharing this control.
    pub fn set(&self, mode: TestMode) {
        *self.mode.lock() = mode;
    }

    /// The current behaviour.
    pub fn mode(&self) -> TestMode {
        *self.mode.lock()
    }

    fn roll_percent(&self) -> u8 {
        // xorshift64: a test sink needs cheap, not good, randomness.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x % 100) as u8
    }

    /// Applies the mode before a call: `Ok(Some(n))` = acknowledge `n` mutations only.
    fn gate(&self) -> SinkResult<Option<usize>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + MAX_STALL;
        let r = loop {
            match self.mode() {
                TestMode::Ok => break Ok(None),
                TestMode::Fail => break Err(SinkError::Unavailable("injected failure".into())),
                TestMode::Reject => break Err(SinkError::Rejected("authentication failed".into())),
                TestMode::Partial(n) => break Ok(Some(n.max(1))),
                TestMode::RandomFail(p) => {
                    if self.roll_percent() < p {
                        break Err(SinkError::Unavailable("injected random failure".into()));
                    }
                    break Ok(None);
                }
                TestMode::Stall => {
                    if Instant::now() > deadline {
                        break Err(SinkError::Unavailable("stalled".into()));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        if r.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// A sink that misbehaves on demand in front of another sink.
pub struct TestSink {
    inner: Arc<dyn DuplicationSink>,
    control: Arc<TestSinkControl>,
}

impl TestSink {
    /// Wraps `inner`, controlled by `control`.
    pub fn new(inner: Arc<dyn DuplicationSink>, control: Arc<TestSinkControl>) -> Self {
        Self { inner, control }
    }
}

impl DuplicationSink for TestSink {
    fn hello(&self) -> SinkResult<()> {
        self.control.gate()?;
        self.inner.hello()
    }

    fn apply_checkpoint(&self, dir: &Path, decree: Decree) -> SinkResult<()> {
        self.control.gate()?;
        self.inner.apply_checkpoint(dir, decree)
    }

    fn ship(&self, batch: &[(Decree, Mutation)]) -> SinkResult<Decree> {
        match self.control.gate()? {
            Some(n) if n < batch.len() => self.inner.ship(&batch[..n]),
            _ => self.inner.ship(batch),
        }
    }
}
