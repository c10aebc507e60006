//! `Db::wait_for_background_work` returns once flushes and compactions have settled.

use siltdb::{Db, Options};
use std::time::Duration;

#[test]
fn background_work_settles_below_the_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size_bytes: 8 << 10,
        l0_compaction_trigger: 2,
        target_file_size_bytes: 32 << 10,
        max_bytes_for_level_base: 128 << 10,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..20_000u32 {
        db.put(format!("key{:08}", (i * 7919) % 20_000), [b'v'; 50])
            .unwrap();
    }
    db.flush().unwrap();
    db.wait_for_background_work(Duration::from_secs(120))
        .unwrap();
    let l0: usize = db
        .property("siltdb.num-files-at-level0")
        .unwrap()
        .parse()
        .unwrap();
    assert!(l0 < 2, "L0 still has {l0} files");
    assert_eq!(db.property("siltdb.num-immutable-mem-table").unwrap(), "0");
    assert_eq!(db.stats().stall.current_cause, None);
    let wa = db.stats().write_amplification();
    assert!(
        wa > 1.0,
        "flushes and compactions rewrote data: write amp {wa}"
    );
    for i in (0..20_000u32).step_by(997) {
        assert!(db.get(format!("key{i:08}")).unwrap().is_some());
    }
}
