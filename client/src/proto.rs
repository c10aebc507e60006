//! Client and operator messages, carried in `ClientRequest`/`ClientResponse` frames
//! ([`crate::frame`]; bincode payloads).
//!
//! Data requests name the table and the partition the client computed; the server checks
//! that every key belongs to that partition. Reads and scans are linearizable (ReadIndex on the
//! leader); writes are acknowledged once committed and applied on the leader.

use crate::backup::{BackupReply, BackupRequest};
use crate::bulk_load::{BulkLoadReport, ReplicaBulkOp, ReplicaBulkReply};
pub use crate::duplication::DuplicationReplicaStatus;
use crate::duplication::FailMode;
use crate::error::ServerError;
use crate::layout::{NodeInfo, TableLayout};
use crate::meta::{Catalog, MetaRequest};
use crate::pegasus::{PegasusRequest, PegasusResponse};
use crate::split::{SplitOp, SplitReply};
use crate::types::WriteOp;
use serde::{Deserialize, Serialize};

/// A request to a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Linearizable point read.
    Get {
        /// Table name.
        table: String,
        /// Partition of `key`.
        partition: u32,
        /// The key.
        key: Vec<u8>,
    },
    /// Puts and deletes applied atomically in one partition.
    Write {
        /// Table name.
        table: String,
        /// The partition every key belongs to.
        partition: u32,
        /// The writes (no range deletes: ranges span hash partitions).
        ops: Vec<WriteOp>,
    },
    /// Linearizable range read of one partition.
    Scan {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
        /// First key (inclusive).
        start: Vec<u8>,
        /// End key (exclusive); `None` = to the last key.
        end: Option<Vec<u8>>,
        /// Most rows wanted (the server caps it at `siltdb_server::node::MAX_SCAN_ROWS`).
        limit: u32,
        /// The partition count the client routed by: a server whose layout has another count
        /// (the table was split) answers `WrongPartition`, and the client scans again by the
        /// newest layout. 0: not checked.
        partition_count: u32,
    },
    /// Creates a table (idempotent for an identical layout); each hosting node must get it.
    CreateTable(TableLayout),
    /// The stored layouts.
    ListTables,
    /// Node statistics and per-partition state.
    Stats,
    /// A digest of one local replica's data (convergence checks).
    Digest {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
    },
    /// Checkpoints every local leader replica of `table` and purges its log.
    Checkpoint {
        /// Table name.
        table: String,
    },
    /// Fault injection: drop Raft traffic between this node and each of `peers`.
    Partition {
        /// The nodes to cut off from.
        peers: Vec<u64>,
    },
    /// Removes every partition of [`ClientRequest::Partition`].
    Heal,
    /// Stores a successor layout of a table (or a table this node joins): opens replicas newly
    /// assigned to the node, removes those moved away (`siltdb_server::membership`).
    UpdateTable(TableLayout),
    /// On a partition's leader: `to` replaces `from` as a voter (learner, catch-up, joint
    /// consensus), bounded by `timeout_ms`.
    ChangeReplicas {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
        /// The replica leaving.
        from: u64,
        /// The node joining.
        to: NodeInfo,
        /// Bound on the learner's catch-up and the change.
        timeout_ms: u64,
    },
    /// A catalog request for the meta service's leader ([`crate::meta`]).
    Meta(MetaRequest),
    /// Installs duplication `dup_id` of `table` to `remote_table` on the cluster reached
    /// through `remote_seeds`, on every local replica of `table` (idempotent for the same id
    /// and remote). The client sends it to every node of the layout ([`crate::duplication`]).
    AddDuplication {
        /// Source table.
        table: String,
        /// The id, the same on every node (chosen by the client).
        dup_id: u64,
        /// Some servers of the follower cluster.
        remote_seeds: Vec<String>,
        /// The follower table (same partition count).
        remote_table: String,
        /// Behaviour on unreadable log ranges; default SLOW.
        fail_mode: Option<FailMode>,
    },
    /// Removes duplication `dup_id` from every local replica of `table` (idempotent).
    RemoveDuplication {
        /// Source table.
        table: String,
        /// The id.
        dup_id: u64,
    },
    /// The duplications of every local replica of `table`.
    QueryDuplication {
        /// Source table.
        table: String,
    },
    /// A duplication write into one partition of a follower table: applied on the leader
    /// without user throttling, may hold range deletes (partition-local), and with `clear`
    /// first deletes every user key of the partition behind a barrier (checkpoint apply).
    DuplicationWrite {
        /// Follower table.
        table: String,
        /// The partition; puts and deletes must belong to it.
        partition: u32,
        /// Delete every user key of the partition before `ops`.
        clear: bool,
        /// The writes (may be empty with `clear`).
        ops: Vec<WriteOp>,
        /// Who ships: the same id from every node of the source partition.
        source: String,
        /// The term of the source partition's leader that ships; a write below a term
        /// already seen from `source` (a deposed leader) is refused.
        source_term: u64,
    },
    /// Starts a bulk load of `table` (sent to its coordinator, [`crate::bulk_load::coordinator`]).
    StartBulkLoad {
        /// Table name.
        table: String,
        /// Absolute directory holding `<partition>/` as `sst-ingest build --partitions N` writes.
        source_dir: String,
    },
    /// The status of `table`'s bulk load (sent to its coordinator).
    QueryBulkLoad {
        /// Table name.
        table: String,
    },
    /// Coordinator to hosting node: one bulk-load step on the local replica of a partition.
    BulkLoadReplica {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
        /// The step.
        op: ReplicaBulkOp,
    },
    /// A step of copying a partition's checkpoint into a cold backup ([`crate::backup`]).
    Backup(BackupRequest),
    /// A data-model request on one partition ([`crate::pegasus`]), routed by its hash key.
    Pegasus {
        /// Table name.
        table: String,
        /// The partition of the hash key.
        partition: u32,
        /// The request.
        req: PegasusRequest,
    },
    /// Splits a table ([`crate::split`]): sent to its coordinator (its first node) on a
    /// cluster without a meta service; answers [`ClientResponse::Tables`] with the new layout.
    SplitTable {
        /// Table name.
        table: String,
        /// The partition count wanted (twice the current one); `None`: double it.
        partitions: Option<u32>,
        /// Bound on the whole split, in ms.
        timeout_ms: u64,
    },
    /// One step of a split on this node ([`crate::split::SplitOp`]), answered with
    /// [`ClientResponse::Split`].
    SplitReplica {
        /// Table name.
        table: String,
        /// The step.
        op: SplitOp,
    },
    /// The Raft membership of a partition as the local replica knows it (answered with
    /// [`ClientResponse::Membership`]). A node asks the group before it deletes a replica
    /// directory: only a membership the group committed without it makes that safe.
    Membership {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
    },
    /// The hot keys this node counted on its replicas of a table (answered with
    /// [`ClientResponse::HotKeys`]; [`crate::hotkeys`]).
    HotKeys {
        /// Table name.
        table: String,
        /// Reads or writes only; `None`: both.
        kind: Option<crate::hotkeys::HotKeyKind>,
    },
}

/// A replica's view of its group's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipReply {
    /// The answering node.
    pub node: u64,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// Voters of the membership (both halves of a joint one).
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// True when that membership's log entry is applied on the answering replica, so the
    /// group committed it.
    pub committed: bool,
}

/// One partition's replica state on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStats {
    /// Table name.
    pub table: String,
    /// Partition index.
    pub partition: u32,
    /// The leader this replica knows of.
    pub leader: Option<u64>,
    /// Current term (ballot).
    pub term: u64,
    /// Last applied decree.
    pub applied: Option<u64>,
    /// Last log index.
    pub last_log: Option<u64>,
    /// Newest checkpoint (snapshot) decree.
    pub snapshot: Option<u64>,
    /// Last purged log index.
    pub purged: Option<u64>,
}

/// Request counters of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Get requests.
    pub gets: u64,
    /// Write requests.
    pub writes: u64,
    /// Scan requests.
    pub scans: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Errors that were `NotLeader`.
    pub not_leader: u64,
    /// Requests that timed out.
    pub timeouts: u64,
}

/// A copy of a node's Raft transport counters (the replica layer's `TransportMetrics`) for
/// reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportMetricsSnapshot {
    /// `TransportMetrics::rpcs_sent`.
    pub rpcs_sent: u64,
    /// `TransportMetrics::rpc_failures`.
    pub rpc_failures: u64,
    /// `TransportMetrics::rpcs_dropped`.
    pub rpcs_dropped: u64,
    /// `TransportMetrics::connects`.
    pub connects: u64,
    /// `TransportMetrics::rpcs_served`.
    pub rpcs_served: u64,
    /// `TransportMetrics::snapshots_sent`.
    pub snapshots_sent: u64,
    /// `TransportMetrics::snapshots_received`.
    pub snapshots_received: u64,
    /// `TransportMetrics::snapshot_bytes_sent`.
    pub snapshot_bytes_sent: u64,
    /// `TransportMetrics::snapshot_bytes_received`.
    pub snapshot_bytes_received: u64,
}

/// What a node reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Node id.
    pub node_id: u64,
    /// Listening address.
    pub addr: String,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Client request counters.
    pub requests: RequestStats,
    /// Raft transport counters.
    pub transport: TransportMetricsSnapshot,
    /// Node pairs whose traffic the fault hook drops.
    pub partitioned: Vec<(u64, u64)>,
    /// Every hosted replica.
    pub partitions: Vec<PartitionStats>,
    /// Replicas that did not open at start (not served; replace them with `move-replica`).
    pub quarantined: Vec<QuarantinedReplica>,
}

/// A replica a node could not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedReplica {
    /// Table name.
    pub table: String,
    /// Partition index.
    pub partition: u32,
    /// Why it did not open.
    pub error: String,
}

/// A replica digest (see `Replica::digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestReply {
    /// Applied decree (`None` if it moved while hashing).
    pub applied: Option<u64>,
    /// User keys.
    pub keys: u64,
    /// xxh3 of keys and values.
    pub hash: u64,
}

/// A server's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientResponse {
    /// Done, nothing to return.
    Ok,
    /// The value of a get.
    Value(Option<Vec<u8>>),
    /// A write was committed at `decree`.
    Written {
        /// The decree of the log entry.
        decree: u64,
    },
    /// A page of a scan.
    Rows {
        /// Rows in key order.
        rows: Vec<(Vec<u8>, Vec<u8>)>,
        /// Key to resume from, if the page stopped at a limit.
        resume_from: Option<Vec<u8>>,
    },
    /// Stored layouts.
    Tables(Vec<TableLayout>),
    /// Statistics.
    Stats(NodeStats),
    /// A digest.
    Digest(DigestReply),
    /// The request failed.
    Error(ServerError),
    /// The meta service's catalog.
    Catalog(Catalog),
    /// The duplications of a table's local replicas.
    Duplications(Vec<DuplicationReplicaStatus>),
    /// Removed a duplication from `replicas` local replicas (0: it was not here).
    DuplicationRemoved {
        /// Local replicas that held it.
        replicas: u32,
    },
    /// A table's bulk-load status.
    BulkLoad(BulkLoadReport),
    /// A local replica's answer to a bulk-load step.
    BulkLoadReplica(ReplicaBulkReply),
    /// The answer to a data-model request.
    Pegasus(PegasusResponse),
    /// The answer to a [`ClientRequest::Backup`].
    Backup(BackupReply),
    /// The answer to [`ClientRequest::Membership`].
    Membership(MembershipReply),
    /// The answer to [`ClientRequest::HotKeys`]: one report per partition and kind counted.
    HotKeys(Vec<crate::hotkeys::PartitionHotKeys>),
    /// The answer to [`ClientRequest::SplitReplica`].
    Split(SplitReply),
}
