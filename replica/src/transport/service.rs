//! The serving side of Raft RPCs: route by gpid to the local Raft, check the target node and
//! the fault hook, feed snapshot transfers to the [`SnapshotReceiver`].

use super::fault::FaultHook;
use super::message::{RaftEnvelope, RaftRequest, RaftResponse, Refusal};
use super::metrics::TransportMetrics;
use super::receiver::{InstallError, SnapshotReceiver};
use crate::raft::TypeConfig;
use crate::types::Gpid;
use openraft::error::RaftError;
use openraft::Raft;
use std::sync::Arc;

/// What a node hosts: the Rafts of its replicas, by partition.
pub trait RaftHost: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> u64;
    /// The local Raft of partition `gpid`, if this node hosts a replica of it.
    fn raft(&self, gpid: Gpid) -> Option<Raft<TypeConfig>>;
}

/// Serves Raft requests for every partition of one node.
pub struct RaftService {
    host: Arc<dyn RaftHost>,
    fault: Arc<FaultHook>,
    metrics: Arc<TransportMetrics>,
    receiver: SnapshotReceiver,
}

impl RaftService {
    /// A service over `host`'s Rafts, consulting `fault` and counting into `metrics`.
    pub fn new(
        host: Arc<dyn RaftHost>,
        fault: Arc<FaultHook>,
        metrics: Arc<TransportMetrics>,
    ) -> Self {
        Self {
            host,
            fault,
            metrics,
            receiver: SnapshotReceiver::default(),
        }
    }

    /// The fault hook this node's transport consults.
    pub fn fault(&self) -> &Arc<FaultHook> {
        &self.fault
    }

    /// The transport counters.
    pub fn metrics(&self) -> &Arc<TransportMetrics> {
        &self.metrics
    }

    /// Snapshot transfers being received.
    pub fn snapshot_sessions(&self) -> usize {
        self.receiver.sessions()
    }

    /// Answers one request.
    pub async fn handle(&self, env: RaftEnvelope) -> RaftResponse {
        TransportMetrics::add(&self.metrics.rpcs_served, 1);
        let this = self.host.node_id();
        if env.to != this {
            return RaftResponse::Refused(Refusal::WrongNode { this });
        }
        if self.fault.is_blocked(env.from, this) {
            TransportMetrics::add(&self.metrics.rpcs_dropped, 1);
            return RaftResponse::Refused(Refusal::Partitioned);
        }
        let Some(raft) = self.host.raft(env.gpid) else {
            return RaftResponse::Refused(Refusal::NoSuchPartition);
        };
        let gpid = env.gpid;
        match env.body {
            RaftRequest::AppendEntries(rpc) => match raft.append_entries(rpc).await {
                Ok(r) => RaftResponse::AppendEntries(r),
                Err(e) => RaftResponse::RaftError(e),
            },
            RaftRequest::Vote(rpc) => match raft.vote(rpc).await {
                Ok(r) => RaftResponse::Vote(r),
                Err(e) => RaftResponse::RaftError(e),
            },
            RaftRequest::SnapshotBegin { vote, meta, files } => {
                tracing::info!(%gpid, from = env.from, snapshot = %meta.snapshot_id,
                    files = files.len(), "receiving snapshot");
                ack(self.receiver.begin(gpid, &raft, vote, meta, files).await)
            }
            RaftRequest::SnapshotChunk {
                snapshot_id,
                file,
                offset,
                data,
            } => {
                let r = self
                    .receiver
                    .chunk(gpid, &snapshot_id, file, offset, data)
                    .await;
                if let Ok(n) = r {
                    TransportMetrics::add(&self.metrics.snapshot_bytes_received, n);
                }
                ack(r.map(|_| ()))
            }
            RaftRequest::SnapshotFileEnd {
                snapshot_id,
                file,
                crc32c,
            } => ack(self
                .receiver
                .file_end(gpid, &snapshot_id, file, crc32c)
                .await),
            RaftRequest::SnapshotInstall { snapshot_id } => {
                match self.receiver.install(gpid, &raft, &snapshot_id).await {
                    Ok(r) => {
                        TransportMetrics::add(&self.metrics.snapshots_received, 1);
                        tracing::info!(%gpid, snapshot = %snapshot_id, "snapshot installed");
                        RaftResponse::Snapshot(r)
                    }
                    Err(InstallError::Refused(r)) => RaftResponse::Refused(r),
                    Err(InstallError::Fatal(f)) => RaftResponse::RaftError(RaftError::Fatal(f)),
                }
            }
        }
    }
}

fn ack(r: Result<(), Refusal>) -> RaftResponse {
    match r {
        Ok(()) => RaftResponse::SnapshotAck,
        Err(e) => {
            tracing::warn!(refusal = ?e, "snapshot transfer step refused");
            RaftResponse::Refused(e)
        }
    }
}
