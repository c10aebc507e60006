//! Replays every committed corpus file of the server's fuzz target (`fuzz/corpus/server_request/`)
//! through the entry point its cargo-fuzz target calls (`siltdb_server::fuzzing`), so the corpus
//! runs on stable in every `cargo test`.
//!
//! `SILT_WRITE_FUZZ_SEEDS=1 cargo test -p siltdb-server --test fuzz_corpus` (re)writes the
//! generated seed files `fuzz/corpus/server_request/seed-*`.

use siltdb::fuzzing::corpus;
use siltdb_server::fuzzing::{self, TARGETS};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn seeds_are_committed_and_the_target_has_a_wrapper() {
    let root = fuzz_dir().join("corpus");
    if std::env::var_os("SILT_WRITE_FUZZ_SEEDS").is_some() {
        let n = fuzzing::write_seeds(&root).expect("write seeds");
        eprintln!("wrote {n} seed files under {}", root.display());
    }
    corpus::check_seeds(&root, fuzzing::seeds(), &[]);
    corpus::check_wrappers(&fuzz_dir(), "siltdb_server", TARGETS);
}

#[test]
fn replay_every_corpus_file() {
    let count = corpus::replay(&fuzz_dir().join("corpus"), TARGETS);
    eprintln!("replayed {count} corpus files");
}
