//! Cluster duplication as the client sees it: the fail modes and statuses of a duplication,
//! one replica's view of it ([`DuplicationReplicaStatus`], the answer to `QueryDuplication`)
//! and every node's views gathered ([`DuplicationReport`]). The duplicators themselves run in
//! the server (`siltdb_server::duplication`) over the replica layer, which re-exports
//! [`FailMode`] and [`Status`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What to do when a plog range cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailMode {
    /// Retry forever with bounded exponential backoff.
    Slow,
    /// Skip the unreadable range and count it.
    Skip,
}

/// Where a duplication is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Added, not started.
    Init,
    /// Making a checkpoint the follower can copy.
    Prepare,
    /// The follower is copying the checkpoint.
    App,
    /// Shipping mutations from the plog.
    Log,
    /// Shipping paused by the operator.
    Pause,
    /// Removed; terminal.
    Removed,
}

impl Status {
    /// Every status, for exhaustive tests.
    pub const ALL: [Status; 6] = [
        Status::Init,
        Status::Prepare,
        Status::App,
        Status::Log,
        Status::Pause,
        Status::Removed,
    ];

    /// True unless removed: a live duplication holds plog GC back.
    pub fn is_live(self) -> bool {
        self != Status::Removed
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Status::Init => "INIT",
            Status::Prepare => "PREPARE",
            Status::App => "APP",
            Status::Log => "LOG",
            Status::Pause => "PAUSE",
            Status::Removed => "REMOVED",
        };
        f.write_str(s)
    }
}

/// One local replica's view of one duplication (an answer to
/// [`crate::proto::ClientRequest::QueryDuplication`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicationReplicaStatus {
    /// The duplication id.
    pub dup_id: u64,
    /// The source partition.
    pub partition: u32,
    /// The node answering.
    pub node: u64,
    /// Whether this replica's duplicator runs (the node leads the partition); only its
    /// numbers are current, the others are those of the last time the node led.
    pub primary: bool,
    /// The follower, `remote_table@seed,seed`.
    pub remote: String,
    /// The status.
    pub status: Status,
    /// The fail mode.
    pub fail_mode: FailMode,
    /// The checkpoint the follower copied or will copy.
    pub checkpoint_decree: Option<u64>,
    /// The last decree the follower acknowledged.
    pub confirmed_decree: Option<u64>,
    /// Applied decrees not yet confirmed (primary only).
    pub lag_decrees: Option<u64>,
    /// The last error, while the duplication is stuck on one.
    pub last_error: Option<String>,
    /// Mutations confirmed by the follower since this duplicator started.
    pub shipped_mutations: u64,
}

/// What [`crate::Client::query_duplication`] gathered from every node of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuplicationReport {
    /// Every replica's view, from every node that answered.
    pub replicas: Vec<DuplicationReplicaStatus>,
    /// Nodes that did not answer: (id, error).
    pub unreachable: Vec<(u64, String)>,
}

impl DuplicationReport {
    /// The duplication ids seen.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.replicas.iter().map(|r| r.dup_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// For duplication `id`, each partition's view from the node running its duplicator
    /// (`None` while no node does: election, or a takeover within the server's supervision interval).
    pub fn primaries(
        &self,
        id: u64,
        partition_count: u32,
    ) -> BTreeMap<u32, Option<&DuplicationReplicaStatus>> {
        (0..partition_count)
            .map(|p| {
                let prim = self
                    .replicas
                    .iter()
                    .filter(|r| r.dup_id == id && r.partition == p && r.primary)
                    .max_by_key(|r| r.confirmed_decree);
                (p, prim)
            })
            .collect()
    }

    /// Whether every partition of duplication `id` has a node running its duplicator, and
    /// every node that does (two may, for up to the server's supervision interval after a leader change)
    /// ships (LOG) with no lag.
    pub fn caught_up(&self, id: u64, partition_count: u32) -> bool {
        (0..partition_count).all(|p| {
            let mut prim = self
                .replicas
                .iter()
                .filter(|r| r.dup_id == id && r.partition == p && r.primary)
                .peekable();
            prim.peek().is_some()
                && prim.all(|s| s.status == Status::Log && s.lag_decrees == Some(0))
        })
    }
}
