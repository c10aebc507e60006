//! Bulk load as the client sees it: the statuses of a partition's load, the report of a
//! table's load ([`BulkLoadReport`]) and the coordinator-to-node steps ([`ReplicaBulkOp`],
//! [`ReplicaBulkReply`]). The coordinator runs in the server (`siltdb_server::bulk_load`); the
//! replica layer re-exports [`BulkLoadStatus`].

use crate::layout::{NodeInfo, TableLayout};
use crate::types::{IngestCommand, WriteOp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The Pegasus bulk-load statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BulkLoadStatus {
    /// No bulk load.
    Invalid,
    /// Fetching metadata and files from the provider.
    Downloading,
    /// Every file is present and verified.
    Downloaded,
    /// The files are being ingested into the engine.
    Ingesting,
    /// Ingested and checkpointed.
    Succeed,
    /// Failed; the error text says why.
    Failed,
    /// A pause was asked; downloads are being stopped.
    Pausing,
    /// Downloads stopped; files kept for a restart.
    Paused,
    /// Cancelled by an operator.
    Canceled,
}

impl BulkLoadStatus {
    /// Every status, for exhaustive tests and tables.
    pub const ALL: [BulkLoadStatus; 9] = [
        BulkLoadStatus::Invalid,
        BulkLoadStatus::Downloading,
        BulkLoadStatus::Downloaded,
        BulkLoadStatus::Ingesting,
        BulkLoadStatus::Succeed,
        BulkLoadStatus::Failed,
        BulkLoadStatus::Pausing,
        BulkLoadStatus::Paused,
        BulkLoadStatus::Canceled,
    ];

    /// True for statuses in which nothing runs and nothing will without a new `Start`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BulkLoadStatus::Invalid
                | BulkLoadStatus::Succeed
                | BulkLoadStatus::Failed
                | BulkLoadStatus::Canceled
        )
    }
}

impl fmt::Display for BulkLoadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BulkLoadStatus::Invalid => "INVALID",
            BulkLoadStatus::Downloading => "DOWNLOADING",
            BulkLoadStatus::Downloaded => "DOWNLOADED",
            BulkLoadStatus::Ingesting => "INGESTING",
            BulkLoadStatus::Succeed => "SUCCEED",
            BulkLoadStatus::Failed => "FAILED",
            BulkLoadStatus::Pausing => "PAUSING",
            BulkLoadStatus::Paused => "PAUSED",
            BulkLoadStatus::Canceled => "CANCELED",
        };
        f.write_str(name)
    }
}

/// One bulk-load step on a hosting node's local replica of a partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReplicaBulkOp {
    /// Ballot, leader and applied decree of the local replica.
    State,
    /// Proposes the ingest control mutation on the local replica, which must lead; answered
    /// once the entry applied here (the leader), bounded by `timeout_ms`.
    Ingest {
        /// An ingest control mutation with the load's ballot.
        mutation: IngestMutation,
        /// Bound on the proposal and its apply.
        timeout_ms: u64,
    },
    /// Checkpoints the local replica and purges its log up to the checkpoint.
    Checkpoint,
}

/// The wire form of the replica layer's ingest control mutation (`Mutation` carrying
/// `ControlOp::Ingest`, no client writes): the same fields in the same order, so it encodes
/// exactly as that mutation does; the server converts between the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestMutation {
    /// The ballot of the load (`None` = unchecked).
    pub ballot: Option<u64>,
    /// Client writes: none in a well-formed ingestion (the node refuses any).
    pub ops: Vec<WriteOp>,
    /// The ingestion.
    pub control: Option<IngestControl>,
}

/// The control operation of an [`IngestMutation`] (the first variant of the replica layer's
/// `ControlOp`, with the same encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IngestControl {
    /// Ingest a bulk load's SST files.
    Ingest(IngestCommand),
}

/// A local replica's answer to a [`ReplicaBulkOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaBulkReply {
    /// The replica's state.
    State {
        /// The answering node.
        node_id: u64,
        /// Its ballot (Raft term).
        ballot: u64,
        /// The leader it knows of.
        leader: Option<u64>,
        /// Its last applied decree.
        applied: Option<u64>,
    },
    /// The ingestion applied on the leader at `decree`.
    Ingested {
        /// The decree of the ingest entry.
        decree: u64,
    },
    /// The mutation's ballot is older than the replica's.
    StaleBallot {
        /// The replica's ballot.
        current: u64,
    },
    /// Checkpointed (at `decree`) and log purged.
    Checkpointed {
        /// The checkpoint's decree.
        decree: Option<u64>,
    },
}

/// One partition's part of a [`BulkLoadReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// Partition index.
    pub partition: u32,
    /// Its status.
    pub status: BulkLoadStatus,
    /// Bytes downloaded so far.
    pub downloaded_bytes: u64,
    /// Bytes its metadata lists.
    pub total_bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// The status of a table's bulk load, as `QueryBulkLoad` and `StartBulkLoad` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkLoadReport {
    /// Table name.
    pub table: String,
    /// The directory the load reads (`<partition>/` sub-directories).
    pub source_dir: String,
    /// The coordinating node.
    pub coordinator: u64,
    /// The table-level status.
    pub status: BulkLoadStatus,
    /// Why the load failed, naming the partition.
    pub error: Option<String>,
    /// True while the coordinator still drives the load.
    pub running: bool,
    /// Every partition.
    pub partitions: Vec<PartitionReport>,
}

impl BulkLoadReport {
    /// True once the load ended (succeeded, failed or cancelled) and nothing runs any more.
    pub fn is_finished(&self) -> bool {
        !self.running && self.status.is_terminal()
    }

    /// Downloaded and total bytes over every partition.
    pub fn bytes(&self) -> (u64, u64) {
        self.partitions.iter().fold((0, 0), |(d, t), p| {
            (d + p.downloaded_bytes, t + p.total_bytes)
        })
    }

    /// A human-readable multi-line summary (what `silt-admin bulk-load-status` prints).
    pub fn to_text(&self) -> String {
        let (done, total) = self.bytes();
        let mut s = format!(
            "table {} bulk load {}{} (coordinator node {}, source {}), {done}/{total} bytes\n",
            self.table,
            self.status,
            if self.running { ", running" } else { "" },
            self.coordinator,
            self.source_dir
        );
        if let Some(e) = &self.error {
            s.push_str(&format!("error: {e}\n"));
        }
        for p in &self.partitions {
            s.push_str(&format!(
                "  partition {:>3} {:<11} {}/{} bytes",
                p.partition,
                p.status.to_string(),
                p.downloaded_bytes,
                p.total_bytes
            ));
            if let Some(e) = &p.error {
                s.push_str(&format!("  error: {e}"));
            }
            s.push('\n');
        }
        s
    }
}

/// The node that coordinates `layout`'s bulk loads: its first node.
pub fn coordinator(layout: &TableLayout) -> Option<&NodeInfo> {
    layout.nodes.first()
}
