//! `sst-ingest`: see `sst-ingest --help` and `tools/README.md`.

/// The one allocator of this process (seed S4): mimalloc, compiled in statically and pinned to
/// an exact version in the workspace. `--version` reports its version as linked.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(siltdb_tools::cli::main())
}
