//! Helpers shared by the engine's integration tests: the option sets the tests open their
//! databases with, and the `SILT_SOAK` switch.
//!
//! Each test binary includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::Rng;
use siltdb::fs::FaultFs;
use siltdb::{Options, SharedResources};
use std::sync::Arc;

/// True when `SILT_SOAK=1` asks for the long run; any other value (or none) is the short run.
pub fn soak() -> bool {
    std::env::var("SILT_SOAK").is_ok_and(|v| v == "1")
}

/// A small tree that flushes and compacts within a few KiB of writes: L0 compacts at two files.
pub fn small_tree(
    memtable_size_bytes: usize,
    target_file_size_bytes: u64,
    max_bytes_for_level_base: u64,
) -> Options {
    Options {
        memtable_size_bytes,
        l0_compaction_trigger: 2,
        target_file_size_bytes,
        max_bytes_for_level_base,
        ..Options::default()
    }
}

/// [`small_tree`] that also stalls early: one immutable memtable, slowdown at two L0 files and a
/// stop at three.
pub fn stalling_tree(
    memtable_size_bytes: usize,
    target_file_size_bytes: u64,
    max_bytes_for_level_base: u64,
) -> Options {
    Options {
        max_immutable_memtables: 1,
        l0_slowdown_trigger: 2,
        l0_stop_trigger: 3,
        ..small_tree(
            memtable_size_bytes,
            target_file_size_bytes,
            max_bytes_for_level_base,
        )
    }
}

/// Options for `process_kill`: a small tree with 64 KiB memtables.
pub fn process_kill_options() -> Options {
    small_tree(64 << 10, 64 << 10, 256 << 10)
}

/// Options for `concurrency`: a small tree with 32 KiB memtables and 1 KiB blocks.
pub fn concurrency_options() -> Options {
    Options {
        block_size_bytes: 1024,
        ..small_tree(32 << 10, 64 << 10, 256 << 10)
    }
}

/// Options for `power_loss`: a small tree on `fs` whose memtable size and immutable-memtable count
/// are drawn from `rng`.
pub fn power_loss_options(fs: &FaultFs, rng: &mut StdRng) -> Options {
    let memtable_size_bytes = rng.gen_range(4 << 10..32 << 10);
    let max_immutable_memtables = rng.gen_range(1..3);
    Options {
        fs: Arc::new(fs.clone()),
        max_immutable_memtables,
        block_size_bytes: 512,
        max_write_stall_ms: 10_000,
        ..small_tree(memtable_size_bytes, 16 << 10, 64 << 10)
    }
}

/// Options for `fault_matrix`: a very small tree on `fs` with a 256 KiB block cache.
pub fn fault_matrix_options(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        max_immutable_memtables: 2,
        block_size_bytes: 1 << 10,
        block_cache_size_bytes: 256 << 10,
        max_write_stall_ms: 10_000,
        ..small_tree(4 << 10, 8 << 10, 32 << 10)
    }
}

/// Options for `background_error`: a stalling tree on `fs` that waits up to 120 s in a stall.
pub fn background_error_options(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        max_write_stall_ms: 120_000,
        ..stalling_tree(4 << 10, 16 << 10, 64 << 10)
    }
}

/// Options for `stall`: a stalling tree whose background writes are limited to 256 KiB/s.
pub fn stall_options() -> Options {
    Options {
        background_write_rate_bytes: 256 << 10,
        ..stalling_tree(4 << 10, 32 << 10, 128 << 10)
    }
}

/// Options for `corruption`: 1 MiB memtables, 1 KiB blocks, one background job and no automatic
/// compaction, so reads are deterministic and compaction is run explicitly.
pub fn corruption_options() -> Options {
    Options {
        memtable_size_bytes: 1 << 20,
        block_size_bytes: 1024,
        l0_compaction_trigger: 100,
        l0_slowdown_trigger: 200,
        l0_stop_trigger: 300,
        target_file_size_bytes: 48 << 10,
        max_background_jobs: 1,
        ..Options::default()
    }
}

/// Options for `shared_resources`: defaults with `memtable_size_bytes` memtables that draw on the
/// shared resources `r`.
pub fn shared_resources_options(r: &Arc<SharedResources>, memtable_size_bytes: usize) -> Options {
    Options {
        memtable_size_bytes,
        resources: Some(Arc::clone(r)),
        ..Options::default()
    }
}

/// The text of a caught panic's payload (`String` or `&str`; empty for any other payload).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
