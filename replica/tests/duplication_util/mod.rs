//! Helpers for the duplication integration tests: a single-replica group, a follower (a
//! `DbFollower`, or any sink such as a follower replica group) behind a `TestSink`, and the
//! operator API over them.
#![allow(dead_code)]

use crate::common::*;
use siltdb_replica::duplication::{
    DbFollower, DuplicationInfo, DuplicationOptions, DuplicationSink, Duplications, ReplicaSource,
    Status, TestMode, TestSink, TestSinkControl,
};
use siltdb_replica::network::Router;
use siltdb_replica::replica::Replica;
use siltdb_replica::Decree;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const REMOTE: &str = "follower";

pub fn dup_options() -> DuplicationOptions {
    DuplicationOptions {
        batch_max: 16,
        backoff_min: Duration::from_millis(2),
        backoff_max: Duration::from_millis(50),
        idle_poll: Duration::from_millis(5),
        ..DuplicationOptions::default()
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub router: Arc<Router>,
    pub replica: Option<Arc<Replica>>,
    pub follower: Arc<DbFollower>,
    /// The sink behind the `TestSink`: `follower` unless [`Env::with_follower`] chose another.
    pub inner: Arc<dyn DuplicationSink>,
    pub control: Arc<TestSinkControl>,
    pub dups: Option<Duplications>,
    /// The options [`Env::open_dups`] opens the duplications with.
    pub opts: DuplicationOptions,
}

pub fn replica_dir(dir: &Path) -> PathBuf {
    dir.join("r1")
}

impl Env {
    pub async fn new(mode: TestMode) -> Env {
        Env::with_follower(mode, None).await
    }

    /// An environment whose duplications ship to `inner` (the `DbFollower` when `None`).
    pub async fn with_follower(mode: TestMode, inner: Option<Arc<dyn DuplicationSink>>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let router = Router::new(GPID);
        let r = open(options(dir.path(), 1, None), &router).await;
        r.initialize(&[1]).await.unwrap();
        wait_leader(&[&r], None).await;
        let fo = siltdb::Options {
            memtable_size_bytes: 256 << 10,
            ..Default::default()
        };
        let follower = Arc::new(DbFollower::open(dir.path().join("follower"), fo).unwrap());
        let inner = inner.unwrap_or_else(|| Arc::clone(&follower) as Arc<dyn DuplicationSink>);
        let mut env = Env {
            dir,
            router,
            replica: Some(Arc::new(r)),
            follower,
            inner,
            control: TestSinkControl::new(mode),
            dups: None,
            opts: dup_options(),
        };
        env.open_dups();
        env
    }

    pub fn r(&self) -> &Arc<Replica> {
        self.replica.as_ref().expect("replica open")
    }

    pub fn dups(&self) -> &Duplications {
        self.dups.as_ref().expect("duplications open")
    }

    pub fn open_dups(&mut self) {
        let source = Arc::new(ReplicaSource::new(
            Arc::clone(self.r()),
            tokio::runtime::Handle::current(),
        ));
        let sink: Arc<dyn DuplicationSink> = Arc::new(TestSink::new(
            Arc::clone(&self.inner),
            Arc::clone(&self.control),
        ));
        let fs = Arc::clone(&options(self.dir.path(), 1, None).state_machine.db.fs);
        let dups = Duplications::open(
            &replica_dir(self.dir.path()),
            fs,
            source,
            Arc::new(move |name| (name == REMOTE).then(|| Arc::clone(&sink))),
            self.opts.clone(),
        )
        .expect("open duplications");
        self.dups = Some(dups);
    }

    /// Stops the duplicators and closes the replica (a clean process stop).
    pub async fn stop(&mut self) {
        if let Some(d) = self.dups.take() {
            // Joining the threads blocks: keep the runtime's workers free.
            tokio::task::block_in_place(move || drop(d));
        }
        if let Some(r) = self.replica.take() {
            let r = Arc::try_unwrap(r).ok().expect("no other replica handle");
            r.close().await.unwrap();
        }
    }

    /// Reopens the replica and the duplications from disk.
    pub async fn restart(&mut self) {
        self.stop().await;
        let r = open(options(self.dir.path(), 1, None), &self.router).await;
        wait_leader(&[&r], None).await;
        self.replica = Some(Arc::new(r));
        self.open_dups();
    }

    pub fn info(&self, id: u64) -> DuplicationInfo {
        self.dups().query(id).unwrap()
    }

    /// Waits until `pred` holds for duplication `id` (bounded).
    pub async fn wait_for(&self, id: u64, what: &str, pred: impl Fn(&DuplicationInfo) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let i = self.info(id);
            if pred(&i) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {i:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the duplication is in LOG and confirmed everything applied so far (and at
    /// least `decree`: the applied metric may lag a write's reply).
    pub async fn wait_caught_up(&self, id: u64, decree: u64) {
        let target = self
            .r()
            .applied()
            .unwrap_or(Decree::ZERO)
            .max(Decree(decree));
        self.wait_for(id, "catch up", |i| {
            i.status == Status::Log && i.confirmed_decree >= Some(target)
        })
        .await;
    }

    /// Asserts the follower holds what the source holds for keys `0..n`.
    pub fn assert_follower_equal(&self, n: u64) {
        for i in 0..n {
            let want = self.r().get(&key(i)).unwrap();
            let got = self.follower.get(&key(i)).unwrap();
            assert_eq!(got, want, "key {i}");
        }
    }
}

impl Env {
    /// Asserts the follower holds what the source holds for keys `a..b`.
    pub fn assert_follower_equal_range(&self, a: u64, b: u64) {
        for i in a..b {
            let want = self.r().get(&key(i)).unwrap();
            assert!(want.is_some(), "source key {i}");
            assert_eq!(self.follower.get(&key(i)).unwrap(), want, "key {i}");
        }
    }
}
