//! Replays every committed corpus file (tools targets and engine targets) through the function
//! its fuzz target calls. Stable toolchain, no cargo-fuzz:
//! `cargo test --manifest-path fuzz/Cargo.toml --no-default-features`.
//!
//! `SILT_FUZZ_CORPUS=<dir>` replays `<dir>/<target>/*` instead, e.g. the scratch corpus of a long
//! fuzz run, under this build's debug assertions and overflow checks (which `cargo fuzz run`
//! leaves off unless given `-a`).

use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    match std::env::var_os("SILT_FUZZ_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
    }
}

fn replay(targets: &[(&str, siltdb::fuzzing::Target)]) {
    siltdb::fuzzing::corpus::replay(&corpus_root(), targets);
}

#[test]
fn replay_tools_corpora() {
    replay(siltdb_fuzz::TARGETS);
}

#[test]
fn replay_engine_corpora() {
    replay(siltdb::fuzzing::TARGETS);
}
