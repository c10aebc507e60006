//! # siltdb-tools
//!
//! The `sst-ingest` command-line tool: builds SST files from data, verifies and ingests them,
//! inspects them, and operates a database from the shell.
#![warn(missing_docs)]
