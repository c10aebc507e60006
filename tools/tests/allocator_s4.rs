//! Seed S4: one allocator, statically linked, pinned, and reported.
//!
//! Every binary of this package (`sst-ingest`, `silt-crash`) passes the shared check
//! ([`allocator_check::assert_one_static_allocator`]: no allocator shared library, mimalloc
//! linked in, `malloc`/`free` defined by the binary); `--version` names the allocator with its
//! exact version. The server's (`silt-server`, `silt-admin`) and the benches' (`silt-bench`)
//! binaries run the same check from their own `tests/allocator_s4.rs`.

mod allocator_check;
mod common;
use common::*;
use std::path::Path;

#[test]
fn version_names_the_allocator_and_its_version() {
    let out = run(["--version"]).ok().stdout;
    let line = out.trim_end();
    let rest = line
        .strip_prefix("sst-ingest 0.1.0 (siltdb 0.1.0, allocator mimalloc ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let version = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{version}");
    assert!(parts[0] >= 2, "{version}");
}

#[test]
fn no_allocator_library_is_linked_dynamically() {
    allocator_check::assert_one_static_allocator(&bin());
    allocator_check::assert_one_static_allocator(Path::new(env!("CARGO_BIN_EXE_silt-crash")));
}
