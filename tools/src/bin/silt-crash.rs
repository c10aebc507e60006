//! `silt-crash`: kill -9 crash testing of siltdb with an expected-state oracle; see
//! `silt-crash --help` and the `siltdb_tools::crash_test` module docs.

/// The same allocator as `sst-ingest` (seed S4): mimalloc, statically linked.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    siltdb_tools::crash_test::main()
}
