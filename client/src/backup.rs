//! Cold backup as the client sees it: the requests an operator's client sends to a
//! partition's leader to copy a consistent checkpoint of it ([`BackupRequest`]) and the
//! answers ([`BackupReply`]). The copy itself, the backup root's layout and restore run in the
//! client (`siltdb_server::backup`); the server only stages checkpoints and serves their bytes,
//! so it never writes outside its own data directory.
//!
//! A session: [`BackupRequest::Prepare`] on the leader checkpoints the partition and stages
//! the checkpoint's files (hard links) under the session; [`BackupRequest::Read`] returns
//! chunks of at most [`MAX_BACKUP_CHUNK_BYTES`]; [`BackupRequest::Release`] removes the staged
//! copy (an idle session is removed by the server after a bound).

use serde::{Deserialize, Serialize};

/// Largest chunk one [`BackupRequest::Read`] returns (well under the frame limit).
pub const MAX_BACKUP_CHUNK_BYTES: u32 = 4 << 20;

/// A step of copying one partition's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupRequest {
    /// On the partition's leader: checkpoint now (after a linearizable barrier, so every
    /// acknowledged write is in it) and stage the checkpoint for reading.
    Prepare {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
    },
    /// Up to `len_max` bytes (capped at [`MAX_BACKUP_CHUNK_BYTES`]) of a staged file from
    /// `offset`; an empty chunk means the end of the file.
    Read {
        /// The session [`BackupReply::Prepared`] named.
        session: u64,
        /// A file name of the session.
        file: String,
        /// Byte offset.
        offset: u64,
        /// Most bytes wanted.
        len_max: u32,
    },
    /// Removes a session's staged files (idempotent).
    Release {
        /// The session.
        session: u64,
    },
}

/// One file of a staged checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// File name (one path component).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// The answer to a [`BackupRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupReply {
    /// A checkpoint is staged.
    Prepared {
        /// The session to read it through, on the node that answered.
        session: u64,
        /// The node that answered (the partition's leader).
        node_id: u64,
        /// Its address: the session's reads go there.
        addr: String,
        /// The decree the checkpoint is consistent at: every entry up to it, nothing after.
        decree: u64,
        /// The term of that decree's entry.
        term: u64,
        /// The checkpoint's files.
        files: Vec<StagedFile>,
    },
    /// Bytes of a staged file (empty: end of file).
    Chunk(Vec<u8>),
    /// The session is gone.
    Released,
}
