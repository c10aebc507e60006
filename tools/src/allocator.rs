//! The process-wide allocator and its version, for `--version` and reports (seed S4).
//!
//! The `sst-ingest` binary installs mimalloc as its `#[global_allocator]`; mimalloc's C code
//! is compiled into the binary by `libmimalloc-sys` (no shared library), pinned to an exact
//! version in the workspace. The version printed is asked from the linked C library at run
//! time, so it cannot drift from what is actually running.

/// Name of the global allocator the project's binaries use.
pub const ALLOCATOR_NAME: &str = "mimalloc";

/// The version of the mimalloc C library linked in, e.g. `3.3.2`.
pub fn mimalloc_version() -> String {
    // SAFETY: mi_version has no preconditions; it returns a compile-time constant of the C
    // library (major * 10000 + minor * 100 + patch).
    let encoded = unsafe { libmimalloc_sys::mi_version() };
    decode_version(encoded)
}

/// `30302` -> `3.3.2`.
fn decode_version(encoded: i32) -> String {
    let encoded = encoded.max(0);
    format!(
        "{}.{}.{}",
        encoded / 10_000,
        (encoded / 100) % 100,
        encoded % 100
    )
}

/// `mimalloc 3.3.2`.
pub fn allocator_description() -> String {
    format!("{ALLOCATOR_NAME} {}", mimalloc_version())
}

/// The version of the siltdb engine this tool is built with.
///
/// The engine and the tools share the workspace version (`version.workspace = true`, and the
/// workspace pins `siltdb = "=<that version>"`), so the tool's own package version is the
/// engine's.
pub fn siltdb_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The `--version` line (without the program name):
/// `0.1.0 (siltdb 0.1.0, allocator mimalloc 3.3.2)`.
pub fn version_line() -> String {
    format!(
        "{} (siltdb {}, allocator {})",
        env!("CARGO_PKG_VERSION"),
        siltdb_version(),
        allocator_description()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_versions() {
        assert_eq!(decode_version(30302), "3.3.2");
        assert_eq!(decode_version(20118), "2.1.18");
        assert!(mimalloc_version().split('.').count() == 3);
    }
}
