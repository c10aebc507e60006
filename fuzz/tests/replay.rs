//! Replays every committed corpus file (tools targets and engine targets) through the function
//! its fuzz target calls. Stable toolchain, no cargo-fuzz:
//! `cargo test --manifest-path fuzz/Cargo.toml --no-default-features`.
//!
//! `SILT_FUZZ_CORPUS=<dir>` replays `<dir>/<target>/*` instead, e.g. the scratch corpus of a long
//! fuzz run, under this build's debug assertions and overflow checks (which `cargo fuzz run`
//! leaves off unless given `-a`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let root = match std::env::var_os("SILT_FUZZ_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
    };
    let dir = root.join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(targets: &[(&str, siltdb::fuzzing::Target)]) {
    let mut failures = Vec::new();
    for (name, target) in targets {
        let files = corpus_files(name);
        assert!(!files.is_empty(), "corpus of {name} is empty");
        for file in files {
            let bytes = std::fs::read(&file).expect("read corpus file");
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| target(&bytes))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {msg}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn replay_tools_corpora() {
    replay(siltdb_fuzz::TARGETS);
}

#[test]
fn replay_engine_corpora() {
    replay(siltdb::fuzzing::TARGETS);
}
