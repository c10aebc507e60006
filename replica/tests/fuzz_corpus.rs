//! Replays every committed corpus file of the replica's fuzz targets (`fuzz/corpus/plog/`,
//! `fuzz/corpus/throttle/`) through the same entry point its cargo-fuzz target calls
//! (`siltdb_replica::fuzzing`), so the corpora run on stable in every `cargo test`.
//!
//! `SILT_WRITE_FUZZ_SEEDS=1 cargo test -p siltdb-replica --test fuzz_corpus` (re)writes the
//! generated seed files `fuzz/corpus/<target>/seed-*` from `siltdb_replica::fuzzing::seeds()`.

use siltdb_replica::fuzzing::{self, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_replica_target_has_a_wrapper_and_a_corpus() {
    for (name, _) in TARGETS {
        let wrapper = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&wrapper)
            .unwrap_or_else(|e| panic!("{}: {e}", wrapper.display()));
        assert!(
            text.contains(&format!("siltdb_replica::fuzzing::{name}(")),
            "{} must call siltdb_replica::fuzzing::{name}",
            wrapper.display()
        );
        assert!(!corpus_files(name).is_empty(), "corpus of {name} is empty");
    }
}

#[test]
fn seeds_are_committed() {
    let root = fuzz_dir().join("corpus");
    if std::env::var_os("SILT_WRITE_FUZZ_SEEDS").is_some() {
        let n = fuzzing::write_seeds(&root).expect("write seeds");
        eprintln!("wrote {n} seed files under {}", root.display());
    }
    for (target, name, bytes) in fuzzing::seeds() {
        let path = root.join(target).join(format!("seed-{name}"));
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with SILT_WRITE_FUZZ_SEEDS=1 to write the seeds)",
                path.display()
            )
        });
        assert_eq!(on_disk, bytes, "{} is stale", path.display());
    }
}

#[test]
fn replay_every_corpus_file() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, target) in TARGETS {
        for file in corpus_files(name) {
            let bytes = std::fs::read(&file).expect("read corpus file");
            count += 1;
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
    eprintln!("replayed {count} corpus files");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
