//! The process-wide allocator and its version, for `--version` (seed S4).
//!
//! `silt-server` and `silt-admin` install mimalloc as their `#[global_allocator]`, like every
//! binary of the project; mimalloc's C code is compiled into the binary by `libmimalloc-sys`
//! (no shared library) with its `override` feature (C code allocates through it too), pinned to
//! an exact version in the workspace. The version printed is asked from the linked C library at
//! run time, so it cannot drift from what is actually running.

/// Name of the global allocator the project's binaries use.
pub const ALLOCATOR_NAME: &str = "mimalloc";

/// The version of the mimalloc C library linked in, e.g. `3.3.2`.
pub fn mimalloc_version() -> String {
    // SAFETY: mi_version has no preconditions; it returns a compile-time constant of the C
    // library (major * 10000 + minor * 100 + patch).
    let encoded = unsafe { libmimalloc_sys::mi_version() }.max(0);
    format!(
        "{}.{}.{}",
        encoded / 10_000,
        (encoded / 100) % 100,
        encoded % 100
    )
}

/// The `--version` line (without the program name):
/// `0.1.0 (siltdb 0.1.0, allocator mimalloc 3.3.2)`. The server shares the workspace version
/// with the engine.
pub fn version_line() -> String {
    format!(
        "{} (siltdb {}, allocator {ALLOCATOR_NAME} {})",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        mimalloc_version()
    )
}

/// Parses the process arguments into `A`, `--version` printing [`version_line`]: the one place
/// `silt-server` and `silt-admin` build their version line.
pub fn parse_args<A: clap::Parser>() -> A {
    let version: &'static str = Box::leak(version_line().into_boxed_str());
    let matches = <A as clap::CommandFactory>::command()
        .version(version)
        .get_matches();
    <A as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_mimalloc() {
        let v = mimalloc_version();
        assert_eq!(v.split('.').count(), 3, "{v}");
        assert!(version_line().ends_with(&format!("allocator mimalloc {v})")));
    }
}
