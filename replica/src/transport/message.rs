//! The Raft RPC messages carried in [`super::frame::FrameKind::RaftRequest`] frames.
//!
//! Every request is a [`RaftEnvelope`] naming the partition ([`Gpid`]), the sending node and the
//! target node, so one listener serves every partition of a node and refuses a request meant for
//! another node (a wrong target could split the brain, mapping §9).

use crate::raft::TypeConfig;
use crate::types::Gpid;
use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

/// A Raft request with its routing.
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftEnvelope {
    /// The partition.
    pub gpid: Gpid,
    /// The sending node.
    pub from: u64,
    /// The node the sender believes it talks to.
    pub to: u64,
    /// The request.
    pub body: RaftRequest,
}

/// One file of a snapshot (a checkpoint directory), announced before its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// File name inside the checkpoint directory (one path component).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// A Raft RPC.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// openraft's AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// openraft's RequestVote.
    Vote(VoteRequest<u64>),
    /// Starts a snapshot transfer: the receiver opens a staging directory.
    SnapshotBegin {
        /// The leader's vote.
        vote: Vote<u64>,
        /// The snapshot's meta (its id names the transfer).
        meta: SnapshotMeta<u64, BasicNode>,
        /// The files that follow, in order.
        files: Vec<SnapshotFile>,
    },
    /// A piece of one file, at `offset` = bytes of that file already sent.
    SnapshotChunk {
        /// The transfer.
        snapshot_id: String,
        /// Index into the announced files.
        file: u32,
        /// Byte offset of `data` in the file.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The end of one file, with the crc32c of all its bytes.
    SnapshotFileEnd {
        /// The transfer.
        snapshot_id: String,
        /// Index into the announced files.
        file: u32,
        /// crc32c of the whole file.
        crc32c: u32,
    },
    /// Every file was sent: verify, fsync and install.
    SnapshotInstall {
        /// The transfer.
        snapshot_id: String,
    },
}

/// Why a node did not serve a Raft request (transport level; the sender backs off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The node hosts no replica of the partition (yet).
    NoSuchPartition,
    /// The request named another node id.
    WrongNode {
        /// This node's id.
        this: u64,
    },
    /// The fault hook drops traffic between the two nodes.
    Partitioned,
    /// Too many concurrent snapshot transfers.
    Busy,
    /// A snapshot transfer failed its checks (sequence, size, checksum, name, I/O).
    Snapshot(String),
}

/// The answer to a [`RaftEnvelope`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// openraft's AppendEntries response.
    AppendEntries(AppendEntriesResponse<u64>),
    /// openraft's vote response.
    Vote(VoteResponse<u64>),
    /// A snapshot begin, chunk or file end was accepted.
    SnapshotAck,
    /// The snapshot was installed (or ignored as not newer).
    Snapshot(SnapshotResponse<u64>),
    /// The Raft answered with an error (fatal on the receiver).
    RaftError(RaftError<u64>),
    /// The request was not served.
    Refused(Refusal),
}
