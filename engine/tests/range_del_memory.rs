//! 20k `delete_range("", cutoff)` calls with growing cutoffs — every tombstone overlaps every
//! other — must scan and compact in bounded memory: range-tombstone fragments cost O(tombstones)
//! (plus one seqno per snapshot stripe in compaction), not one seqno per tombstone per fragment
//! (about 1.6 GB per scan before). Peak RSS (`VmHWM`) is measured around each step; this file
//! holds a single test so nothing else moves the process's peak.

use siltdb::{Db, Options, ReadOptions};

const TOMBSTONES: usize = 20_000;
/// Allowed peak RSS growth of one scan or compaction over the 20k tombstones.
const MAX_GROWTH_BYTES: u64 = 96 << 20;

/// Peak resident set size of this process, from `/proc/self/status`.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

fn cutoff(i: usize) -> Vec<u8> {
    format!("c{i:06}").into_bytes()
}

fn scan(db: &Db, opts: &ReadOptions) -> Vec<Vec<u8>> {
    db.iter(opts)
        .map(|r| {
            let (k, _) = r.unwrap();
            AsRef::<[u8]>::as_ref(&k).to_vec()
        })
        .collect()
}

#[test]
fn twenty_thousand_overlapping_range_deletes_scan_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size_bytes: 256 << 20,
        ..Options::default()
    };
    let db = Db::open(dir.path().join("db"), opts).unwrap();
    for i in (0..TOMBSTONES).step_by(100) {
        db.put(cutoff(i), b"old").unwrap();
    }
    for i in 0..100 {
        db.put(format!("k{i:04}"), b"kept").unwrap();
    }
    let mut snap = None;
    for i in 1..=TOMBSTONES {
        db.delete_range("", cutoff(i)).unwrap();
        if i == TOMBSTONES / 2 {
            snap = Some(db.snapshot());
        }
    }
    db.put(cutoff(500), b"new").unwrap();
    let snap = snap.unwrap();
    let at_snap = ReadOptions {
        snapshot: Some(snap.clone()),
        ..ReadOptions::default()
    };
    let mut want_latest: Vec<Vec<u8>> = vec![cutoff(500)];
    want_latest.extend((0..100).map(|i| format!("k{i:04}").into_bytes()));
    // At the snapshot, cutoffs from TOMBSTONES / 2 up were not deleted yet.
    let mut want_snap: Vec<Vec<u8>> = (TOMBSTONES / 2..TOMBSTONES)
        .step_by(100)
        .map(cutoff)
        .collect();
    want_snap.extend((0..100).map(|i| format!("k{i:04}").into_bytes()));

    let mut figures = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut()| {
        let before = peak_rss_bytes();
        f();
        let after = peak_rss_bytes();
        let growth = after.saturating_sub(before);
        figures.push(format!("{name}: peak RSS +{} KiB", growth >> 10));
        assert!(
            growth <= MAX_GROWTH_BYTES,
            "{name} grew peak RSS by {} MiB (limit {} MiB)",
            growth >> 20,
            MAX_GROWTH_BYTES >> 20
        );
    };

    // Tombstones in the memtable.
    step("memtable scan", &mut || {
        assert_eq!(scan(&db, &ReadOptions::default()), want_latest);
    });
    step("memtable scan at snapshot", &mut || {
        assert_eq!(scan(&db, &at_snap), want_snap);
    });
    // Tombstones in an SST; compaction with a snapshot in the middle of them.
    step("flush", &mut || db.flush().unwrap());
    step("sst scan", &mut || {
        assert_eq!(scan(&db, &ReadOptions::default()), want_latest);
    });
    step("compaction with a snapshot", &mut || {
        db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
    });
    step("scans after compaction", &mut || {
        assert_eq!(scan(&db, &ReadOptions::default()), want_latest);
        assert_eq!(scan(&db, &at_snap), want_snap);
    });
    drop(snap);
    drop(at_snap);
    step("compaction without snapshots", &mut || {
        db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
        assert_eq!(scan(&db, &ReadOptions::default()), want_latest);
    });
    eprintln!(
        "{TOMBSTONES} overlapping range deletes: {}; process peak RSS {} MiB",
        figures.join(", "),
        peak_rss_bytes() >> 20
    );
    db.close().unwrap();
}
