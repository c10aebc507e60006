//! # siltdb-tools
//!
//! The `sst-ingest` command-line tool: builds SST files from data, verifies and ingests them,
//! inspects them, and operates a database from the shell. The pieces are library modules so
//! they can be tested (and fuzzed) on their own:
//!
//! - [`input`] — CSV/TSV (RFC 4180) and JSON Lines parsers with exact `file:line:column` errors;
//! - [`key_encoding`] — `utf8`/`hex`/`base64` fields;
//! - [`external_sort`] — sorting under a memory budget, duplicates resolved;
//! - [`metadata`] — `bulk_load_metadata.json`;
//! - [`escape`] — how binary keys and values are printed;
//! - [`allocator`] — the pinned global allocator and its version.
#![warn(missing_docs)]

pub mod allocator;
pub mod escape;
pub mod external_sort;
pub mod input;
pub mod key_encoding;
pub mod metadata;

pub mod cli;
pub mod commands;
pub mod crash_test;
pub mod error;
pub mod progress;
pub mod size;
pub mod sst_access;
pub mod sst_build;
pub mod verify;
