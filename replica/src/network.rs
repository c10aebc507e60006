//! In-process `RaftNetwork` for replica groups living in one process (mapping §9).
//!
//! A [`Router`] maps node ids to running Rafts of one partition. Every request names the gpid
//! and the target; a node that is not registered, or that a test isolated, is `Unreachable`
//! (openraft backs off) rather than a network error (immediate retry). Snapshots travel as the
//! leader's pinned checkpoint handle; the receiver copies the files (`install_snapshot`).

use crate::raft::TypeConfig;
use crate::types::Gpid;
use openraft::error::{
    Fatal, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Raft, Snapshot, Vote};
use parking_lot::RwLock;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Wait between retries to an unreachable peer.
const BACKOFF: Duration = Duration::from_millis(100);

/// The nodes of one partition's replica group in this process.
#[derive(Default)]
pub struct Router {
    gpid: Option<Gpid>,
    nodes: RwLock<HashMap<u64, Raft<TypeConfig>>>,
    isolated: RwLock<HashSet<u64>>,
    snapshots_held: RwLock<bool>,
    snapshots_released: tokio::sync::Notify,
    snapshots_waiting: AtomicUsize,
}

impl Router {
    /// A router for partition `gpid`.
    pub fn new(gpid: Gpid) -> Arc<Router> {
        Arc::new(Router {
            gpid: Some(gpid),
            ..Router::default()
        })
    }

    /// The partition this router serves.
    pub fn gpid(&self) -> Option<Gpid> {
        self.gpid
    }

    /// Makes node `id` reachable through `raft`.
    pub fn register(&self, id: u64, raft: Raft<TypeConfig>) {
        self.nodes.write().insert(id, raft);
    }

    /// Makes node `id` unreachable (stopped).
    pub fn unregister(&self, id: u64) {
        self.nodes.write().remove(&id);
    }

    /// Drops every message to and from node `id` until [`Router::heal`].
    pub fn isolate(&self, id: u64) {
        self.isolated.write().insert(id);
    }

    /// Undoes [`Router::isolate`].
    pub fn heal(&self, id: u64) {
        self.isolated.write().remove(&id);
    }

    /// Holds every snapshot transfer before it reaches the receiver (the sender keeps its
    /// checkpoint pinned meanwhile) until [`Router::release_snapshots`]. For tests of what a
    /// transfer in progress protects.
    pub fn hold_snapshots(&self) {
        *self.snapshots_held.write() = true;
    }

    /// Lets held and later snapshot transfers through.
    pub fn release_snapshots(&self) {
        *self.snapshots_held.write() = false;
        self.snapshots_released.notify_waiters();
    }

    /// Snapshot transfers currently held by [`Router::hold_snapshots`].
    pub fn snapshots_waiting(&self) -> usize {
        self.snapshots_waiting.load(Ordering::SeqCst)
    }

    fn route(&self, from: u64, to: u64) -> Result<Raft<TypeConfig>, Unreachable> {
        let unreachable = |why: &str| {
            Unreachable::new(&std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("node {to} unreachable from {from}: {why}"),
            ))
        };
        {
            let iso = self.isolated.read();
            if iso.contains(&from) || iso.contains(&to) {
                return Err(unreachable("isolated"));
            }
        }
        self.nodes
            .read()
            .get(&to)
            .cloned()
            .ok_or_else(|| unreachable("not running"))
    }
}

/// Creates connections from node `from`.
pub struct NetworkFactory {
    router: Arc<Router>,
    from: u64,
}

impl NetworkFactory {
    /// Connections from node `from` through `router`.
    pub fn new(router: Arc<Router>, from: u64) -> Self {
        Self { router, from }
    }
}

/// A connection from one node to another.
pub struct Connection {
    router: Arc<Router>,
    from: u64,
    to: u64,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection {
            router: Arc::clone(&self.router),
            from: self.from,
            to: target,
        }
    }
}

type RpcErr = RPCError<u64, BasicNode, RaftError<u64>>;

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let raft = self.router.route(self.from, self.to)?;
        let resp = raft
            .append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))?;
        // A reply can be lost too.
        self.router.route(self.to, self.from)?;
        Ok(resp)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        let raft = self.router.route(self.from, self.to)?;
        let resp = raft
            .vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))?;
        self.router.route(self.to, self.from)?;
        Ok(resp)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        tokio::pin!(cancel);
        self.router.snapshots_waiting.fetch_add(1, Ordering::SeqCst);
        let released = loop {
            let notified = self.router.snapshots_released.notified();
            if !*self.router.snapshots_held.read() {
                break None;
            }
            tokio::select! {
                closed = &mut cancel => break Some(closed),
                _ = notified => {}
            }
        };
        self.router.snapshots_waiting.fetch_sub(1, Ordering::SeqCst);
        if let Some(closed) = released {
            return Err(StreamingError::Closed(closed));
        }
        let raft = self.router.route(self.from, self.to)?;
        let to = self.to;
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = raft.install_full_snapshot(vote, snapshot) => {
                r.map_err(|e| StreamingError::RemoteError(RemoteError::new(to, e)))
            }
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(BACKOFF))
    }
}
