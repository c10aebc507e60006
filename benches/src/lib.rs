//! # siltdb-benches
//!
//! Criterion micro-benchmarks of the engine's hot paths and `silt-bench`, a db_bench-style load
//! tool that runs the same workloads against siltdb (and, behind the `peers` feature, RocksDB and
//! fjall) through [`engines::Engine`].
#![warn(missing_docs)]

pub mod engines;
pub mod values;
pub mod zipfian;
