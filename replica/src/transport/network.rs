//! openraft's `RaftNetworkFactory` / `RaftNetwork` over TCP frames (mapping §9).
//!
//! One [`TcpConnection`] per (partition, target) replication stream, opened lazily to the
//! address in the target's `BasicNode`. Failures to reach a peer (connect, timeout, a refusal,
//! the fault hook) are `Unreachable`, so openraft backs off instead of spinning; an error the
//! remote Raft returned is a `RemoteError`. An AppendEntries too large for one frame is
//! `PayloadTooLarge`, and openraft retries it with fewer entries.
//!
//! Snapshots stream the checkpoint directory (`full_snapshot`): `SnapshotBegin` with the file
//! list, then each file in [`SNAPSHOT_CHUNK_BYTES`] chunks and a `SnapshotFileEnd` with its
//! crc32c, then `SnapshotInstall`. Each step has its own timeout and the whole transfer stops
//! when openraft cancels it.

use super::conn::{CallError, FramedConn};
use super::fault::FaultHook;
use super::frame::{self, FrameKind};
use super::message::{RaftEnvelope, RaftRequest, RaftResponse, SnapshotFile};
use super::metrics::TransportMetrics;
use crate::raft::TypeConfig;
use crate::types::Gpid;
use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Snapshot, Vote};
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of file data per snapshot chunk frame.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Timeout of one snapshot begin, chunk or file-end exchange.
pub const SNAPSHOT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of the final install (the receiver copies the checkpoint and reopens its engine).
pub const SNAPSHOT_INSTALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Shortest timeout given to a Raft RPC, whatever openraft's TTL (a vote's TTL can be tiny).
pub const RPC_TIMEOUT_MIN: Duration = Duration::from_millis(200);
/// Wait before retrying an unreachable peer.
pub const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);
/// Most files a snapshot may announce.
pub const MAX_SNAPSHOT_FILES: usize = 100_000;

/// Creates TCP connections from one node's replica of one partition.
#[derive(Clone)]
pub struct TcpNetworkFactory {
    gpid: Gpid,
    from: u64,
    fault: Arc<FaultHook>,
    metrics: Arc<TransportMetrics>,
    token: Option<siltdb_client::auth::Secret>,
    tls: Option<siltdb_client::tls::TlsClient>,
}

impl TcpNetworkFactory {
    /// Connections for partition `gpid` from node `from`.
    pub fn new(
        gpid: Gpid,
        from: u64,
        fault: Arc<FaultHook>,
        metrics: Arc<TransportMetrics>,
    ) -> Self {
        Self {
            gpid,
            from,
            fault,
            metrics,
            token: None,
            tls: None,
        }
    }

    /// These connections speaking TLS with `tls` when set.
    pub fn with_tls(mut self, tls: Option<siltdb_client::tls::TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    /// These connections presenting `token` in their handshake (the node's admin secret on an
    /// authenticated cluster).
    pub fn with_token(mut self, token: Option<siltdb_client::auth::Secret>) -> Self {
        self.token = token;
        self
    }
}

/// A connection from one replica to one peer replica of the same partition.
pub struct TcpConnection {
    gpid: Gpid,
    from: u64,
    to: u64,
    conn: FramedConn,
    fault: Arc<FaultHook>,
    metrics: Arc<TransportMetrics>,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetworkFactory {
    type Network = TcpConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpConnection {
        TcpConnection {
            gpid: self.gpid,
            from: self.from,
            to: target,
            conn: FramedConn::with_token(node.addr.clone(), self.token.clone())
                .with_tls(self.tls.clone()),
            fault: Arc::clone(&self.fault),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// A failed call, before mapping to openraft's error types.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("remote raft error: {0}")]
    Remote(RaftError<u64>),
}

fn io_error(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, msg)
}

fn unreachable(msg: String) -> Unreachable {
    Unreachable::new(&io_error(msg))
}

type RpcErr = RPCError<u64, BasicNode, RaftError<u64>>;
type SnapErr = StreamingError<TypeConfig, Fatal<u64>>;

impl TcpConnection {
    async fn call(
        &mut self,
        body: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, SendError> {
        TransportMetrics::add(&self.metrics.rpcs_sent, 1);
        let r = self.call_inner(body, timeout).await;
        if r.is_err() {
            TransportMetrics::add(&self.metrics.rpc_failures, 1);
        }
        r
    }

    async fn call_inner(
        &mut self,
        body: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, SendError> {
        if self.fault.is_blocked(self.from, self.to) {
            TransportMetrics::add(&self.metrics.rpcs_dropped, 1);
            return Err(SendError::Unreachable(format!(
                "{} -> {}: partitioned by the fault hook",
                self.from, self.to
            )));
        }
        let env = RaftEnvelope {
            gpid: self.gpid,
            from: self.from,
            to: self.to,
            body,
        };
        let payload =
            frame::encode_payload(&env).map_err(|e| SendError::TooLarge(e.to_string()))?;
        let was_connected = self.conn.is_connected();
        let answer = self
            .conn
            .call(
                FrameKind::RaftRequest,
                FrameKind::RaftResponse,
                payload,
                timeout.max(RPC_TIMEOUT_MIN),
            )
            .await;
        if !was_connected && self.conn.is_connected() {
            TransportMetrics::add(&self.metrics.connects, 1);
        }
        let bytes = answer.map_err(|e| match e {
            CallError::TooLarge(m) => SendError::TooLarge(m),
            other => SendError::Unreachable(other.to_string()),
        })?;
        let resp: RaftResponse = frame::decode_payload(&bytes)
            .map_err(|e| SendError::Unreachable(format!("answer from {}: {e}", self.to)))?;
        match resp {
            RaftResponse::RaftError(e) => Err(SendError::Remote(e)),
            RaftResponse::Refused(r) => Err(SendError::Unreachable(format!(
                "node {} refused {} from {}: {r:?}",
                self.to, self.gpid, self.from
            ))),
            ok => Ok(ok),
        }
    }

    fn rpc_error(&self, e: SendError, entries: usize) -> RpcErr {
        match e {
            SendError::Unreachable(m) => RPCError::Unreachable(unreachable(m)),
            SendError::TooLarge(_) if entries > 1 => {
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint((entries / 2) as u64))
            }
            SendError::TooLarge(m) => RPCError::Network(NetworkError::new(&io_error(m))),
            SendError::Remote(r) => RPCError::RemoteError(RemoteError::new(self.to, r)),
        }
    }

    fn snapshot_error(&self, e: SendError) -> SnapErr {
        match e {
            SendError::Unreachable(m) | SendError::TooLarge(m) => {
                StreamingError::Unreachable(unreachable(m))
            }
            SendError::Remote(RaftError::Fatal(f)) => {
                StreamingError::RemoteError(RemoteError::new(self.to, f))
            }
            SendError::Remote(other) => StreamingError::Unreachable(unreachable(other.to_string())),
        }
    }

    async fn expect_ack(&mut self, body: RaftRequest) -> Result<(), SnapErr> {
        match self.call(body, SNAPSHOT_STEP_TIMEOUT).await {
            Ok(RaftResponse::SnapshotAck) => Ok(()),
            Ok(other) => Err(self.snapshot_error(SendError::Unreachable(format!(
                "unexpected snapshot answer {other:?}"
            )))),
            Err(e) => Err(self.snapshot_error(e)),
        }
    }

    async fn send_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
    ) -> Result<SnapshotResponse<u64>, SnapErr> {
        let dir = snapshot.snapshot.dir.clone();
        let snapshot_id = snapshot.meta.snapshot_id.clone();
        let files = list_files(dir.clone())
            .await
            .map_err(|e| StreamingError::Unreachable(unreachable(e)))?;
        self.expect_ack(RaftRequest::SnapshotBegin {
            vote,
            meta: snapshot.meta.clone(),
            files: files.clone(),
        })
        .await?;
        for (i, f) in files.iter().enumerate() {
            let index = u32::try_from(i).map_err(|_| {
                StreamingError::Unreachable(unreachable("too many snapshot files".into()))
            })?;
            self.send_file(&snapshot_id, index, dir.join(&f.name), f.size_bytes)
                .await?;
        }
        let r = self
            .call(
                RaftRequest::SnapshotInstall {
                    snapshot_id: snapshot_id.clone(),
                },
                SNAPSHOT_INSTALL_TIMEOUT,
            )
            .await;
        // The handle (and its pin on the checkpoint) lives until the install answered.
        drop(snapshot);
        match r {
            Ok(RaftResponse::Snapshot(resp)) => {
                TransportMetrics::add(&self.metrics.snapshots_sent, 1);
                Ok(resp)
            }
            Ok(other) => Err(self.snapshot_error(SendError::Unreachable(format!(
                "unexpected install answer {other:?}"
            )))),
            Err(e) => Err(self.snapshot_error(e)),
        }
    }

    async fn send_file(
        &mut self,
        snapshot_id: &str,
        index: u32,
        path: PathBuf,
        size_bytes: u64,
    ) -> Result<(), SnapErr> {
        let local = |e: String| StreamingError::Unreachable(unreachable(e));
        let open_path = path.clone();
        let mut file = tokio::task::spawn_blocking(move || std::fs::File::open(&open_path))
            .await
            .map_err(|e| local(e.to_string()))?
            .map_err(|e| local(format!("{}: {e}", path.display())))?;
        let mut offset: u64 = 0;
        let mut crc: u32 = 0;
        loop {
            let (f, data) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                let mut n = 0;
                while n < buf.len() {
                    let got = file.read(&mut buf[n..])?;
                    if got == 0 {
                        break;
                    }
                    n += got;
                }
                buf.truncate(n);
                Ok::<_, std::io::Error>((file, buf))
            })
            .await
            .map_err(|e| local(e.to_string()))?
            .map_err(|e| local(format!("{}: {e}", path.display())))?;
            file = f;
            if data.is_empty() {
                break;
            }
            crc = crc32c::crc32c_append(crc, &data);
            let len = data.len() as u64;
            self.expect_ack(RaftRequest::SnapshotChunk {
                snapshot_id: snapshot_id.to_string(),
                file: index,
                offset,
                data,
            })
            .await?;
            TransportMetrics::add(&self.metrics.snapshot_bytes_sent, len);
            offset = offset
                .checked_add(len)
                .ok_or_else(|| local("file offset overflow".into()))?;
        }
        if offset != size_bytes {
            return Err(local(format!(
                "{} changed size during the transfer: {offset} != {size_bytes}",
                path.display()
            )));
        }
        self.expect_ack(RaftRequest::SnapshotFileEnd {
            snapshot_id: snapshot_id.to_string(),
            file: index,
            crc32c: crc,
        })
        .await
    }
}

/// The regular files of a checkpoint directory, by name.
async fn list_files(dir: PathBuf) -> Result<Vec<SnapshotFile>, String> {
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let meta = entry
                .metadata()
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            if !meta.is_file() {
                continue;
            }
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| format!("non-UTF-8 file name {n:?}"))?;
            files.push(SnapshotFile {
                name,
                size_bytes: meta.len(),
            });
        }
        if files.len() > MAX_SNAPSHOT_FILES {
            return Err(format!("{} files in {}", files.len(), dir.display()));
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    })
    .await
    .map_err(|e| e.to_string())?
}

impl RaftNetwork<TypeConfig> for TcpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let entries = rpc.entries.len();
        match self
            .call(RaftRequest::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftResponse::AppendEntries(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(
                SendError::Unreachable(format!("unexpected answer {other:?}")),
                entries,
            )),
            Err(e) => Err(self.rpc_error(e, entries)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        match self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await {
            Ok(RaftResponse::Vote(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(
                SendError::Unreachable(format!("unexpected answer {other:?}")),
                0,
            )),
            Err(e) => Err(self.rpc_error(e, 0)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, SnapErr> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = self.send_snapshot(vote, snapshot) => r,
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}
