//! The manifest: a log of version edits describing which SST files make up the database.
//!
//! `MANIFEST-NNNNNN` is a record log (see `wal`) whose records are encoded `edit::VersionEdit`s.
//! Replaying every edit from the start yields the current `version::Version` and the counters
//! (next file number, last sequence number, WAL number, durable tag). `CURRENT` names the live
//! manifest and is switched atomically (temp file, sync, rename, sync dir). A fresh manifest,
//! starting with a snapshot of the whole state, is written on every open.

pub(crate) mod edit;
pub(crate) mod version;
pub(crate) mod version_set;

/// Number of levels, L0..L6.
pub const NUM_LEVELS: usize = 7;
