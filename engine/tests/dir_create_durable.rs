//! New directories survive power loss: `fs::create_dir_durable` fsyncs each new entry's parent,
//! and a checkpoint into a parent directory that did not exist yet survives with it.

use siltdb::fs::{self, FaultFs, FileSystem};
use siltdb::{Db, Options};
use std::sync::Arc;

#[test]
fn a_plain_create_dir_is_undone_by_power_loss_a_durable_one_is_not() {
    let root = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new();
    // Without the parent sync the directory (and the file synced into it) is lost: this is
    // what the fault filesystem models, so the durable case below is meaningful.
    // Separate parents: syncing one directory makes all of its pending entries durable.
    std::fs::create_dir(root.path().join("p")).unwrap();
    let plain = root.path().join("p").join("plain");
    ffs.create_dir_all(&plain).unwrap();
    fs::write_atomic(&ffs, &plain.join("f"), b"x").unwrap();
    let durable = root.path().join("a").join("b");
    fs::create_dir_durable(&ffs, &durable).unwrap();
    fs::write_atomic(&ffs, &durable.join("f"), b"y").unwrap();
    // Existing directories are fine too.
    fs::create_dir_durable(&ffs, &durable).unwrap();
    ffs.power_loss();
    assert!(
        !plain.exists(),
        "the fault filesystem kept an unsynced directory entry"
    );
    assert_eq!(std::fs::read(durable.join("f")).unwrap(), b"y");
}

#[test]
fn a_checkpoint_into_a_new_parent_survives_power_loss() {
    let root = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new();
    let opts = Options {
        fs: Arc::new(ffs.clone()),
        create_if_missing: true,
        ..Options::default()
    };
    let db = Db::open(root.path().join("db"), opts.clone()).unwrap();
    db.put("k", "v").unwrap();
    let ck = root.path().join("checkpoints").join("c1");
    db.checkpoint(&ck).unwrap();
    drop(db);
    ffs.power_loss();
    assert!(
        ck.exists(),
        "checkpoint lost with its unsynced parent directory"
    );
    let copy = Db::open(&ck, opts).unwrap();
    assert_eq!(copy.get("k").unwrap(), Some(b"v".to_vec()));
}
