//! Seed S4 for `silt-bench`: the one pinned, statically linked mimalloc, checked like every
//! other binary by the shared check of the tools' tests.

#[path = "../../tools/tests/allocator_check/mod.rs"]
mod allocator_check;

#[test]
fn silt_bench_links_mimalloc_statically() {
    allocator_check::assert_one_static_allocator(std::path::Path::new(env!(
        "CARGO_BIN_EXE_silt-bench"
    )));
}
