//! Replays every committed fuzz corpus file through the same entry point its cargo-fuzz target
//! calls (`siltdb::fuzzing`), so the corpora run on stable in every `cargo test`.
//!
//! `SILT_WRITE_FUZZ_SEEDS=1 cargo test -p siltdb --test fuzz_corpus` (re)writes the generated
//! seed files `fuzz/corpus/<target>/seed-*` from `siltdb::fuzzing::seeds()`.

use siltdb::fuzzing::{self, corpus, TARGETS};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn every_engine_target_has_a_wrapper_and_a_corpus() {
    corpus::check_wrappers(&fuzz_dir(), "siltdb", TARGETS);
}

#[test]
fn seeds_are_committed() {
    let root = fuzz_dir().join("corpus");
    if std::env::var_os("SILT_WRITE_FUZZ_SEEDS").is_some() {
        let n = fuzzing::write_seeds(&root).expect("write seeds");
        eprintln!("wrote {n} seed files under {}", root.display());
    }
    // Seeds holding a table carry a creation time: compare only their length.
    corpus::check_seeds(&root, fuzzing::seeds(), &["sst_table"]);
}

#[test]
fn replay_every_corpus_file() {
    let count = corpus::replay(&fuzz_dir().join("corpus"), TARGETS);
    eprintln!("replayed {count} corpus files");
}
