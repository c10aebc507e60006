//! Fuzzing entry points (not a stable API).
//!
//! Every cargo-fuzz target in `fuzz/fuzz_targets/` is a one-line wrapper around one function
//! here, and `engine/tests/fuzz_corpus.rs` replays every committed corpus file in
//! `fuzz/corpus/<target>/` through the same function on the stable toolchain. Each function
//! takes arbitrary bytes and panics only when it finds a bug: a decoder that panics, reads out
//! of bounds, does not terminate, or breaks a round trip with its encoder.
//!
//! Several targets start with a mode byte that selects between "decode these bytes" and "build
//! something valid from these bytes, encode it, decode it and compare". [`seeds`] writes the
//! seed corpora.

#![doc(hidden)]

use crate::coding;
use crate::iter::InternalIterator;
use crate::key::{self, RangeTombstone, ValueKind, MAX_SEQNO};
use crate::manifest::edit::{self, NewFile, VersionEdit};
use crate::manifest::version::Version;
use crate::sst::block::{self, Block, BlockBuilder, BlockIter};
use crate::sst::filter::{self, BloomFilter};
use crate::sst::footer::{BlockHandle, Footer, FOOTER_LEN};
use crate::sst::properties::Properties;
use crate::sst::{
    range_del, BlockCache, InMemoryFile, ReadFlags, SharedBufferFile, Table, TableBuildOptions,
    TableBuilder,
};
use crate::wal::{self, LogWriter};
use crate::write_batch::{BatchOp, DecodedBatch, WriteBatch};
use crate::{Compression, Db, Options, ReadOptions, WriteOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fuzz target body: panics only on a bug.
pub type Target = fn(&[u8]);

/// Every engine fuzz target: `(name, entry point)`. The name is the directory under
/// `fuzz/corpus/` and the file name under `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("sst_block", sst_block),
    ("sst_meta", sst_meta),
    ("sst_table", sst_table),
    ("rocksdb_table", rocksdb_table),
    ("wal_log", wal_log),
    ("write_batch", write_batch),
    ("manifest", manifest),
    ("db_ops", db_ops),
];

/// Reads structured values out of fuzz input; past the end every read returns zeros.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Starts at the first byte.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }

    /// Everything not consumed yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

const NO_FILE: &str = "fuzz-input";

fn path() -> &'static Path {
    Path::new(NO_FILE)
}

// ---------------------------------------------------------------------------------------------
// sst_block

/// `sst_block`: data/index block decoding and iteration.
///
/// Mode byte `% 4`: 0 = [`Block::new`] over raw contents; 1 = [`block::decode_block`] without
/// checksum verification (exercises the zstd and lz4 paths); 2 = with verification; 3 = round
/// trip: entries built from the input go through [`BlockBuilder`] (optionally compressed: mode bit
/// `0x20` = lz4, else bit `0x10` = zstd) and must decode, iterate both ways and seek exactly.
pub fn sst_block(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    match mode % 4 {
        0 => {
            if let Ok(b) = Block::new(input.rest().to_vec()) {
                exercise_block(Arc::new(b), data);
            }
        }
        1 | 2 => {
            let verify = mode % 4 == 2;
            if let Ok(b) = block::decode_block(path(), 0, input.rest(), verify) {
                exercise_block(Arc::new(b), data);
            }
        }
        _ => block_round_trip(&mut input, mode),
    }
}

/// Internal keys to seek to, derived from the input (always well-formed).
fn seek_targets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![
        key::seek_key(b"", MAX_SEQNO),
        key::internal_key(b"", 0, ValueKind::Delete),
        key::seek_key(&[0xff; 4], MAX_SEQNO),
    ];
    for chunk in data.chunks(7).take(8) {
        out.push(key::seek_key(chunk, u64::from(chunk[0]) & MAX_SEQNO));
    }
    out
}

/// Scans a block both ways and seeks; every loop must stop within the block's size.
fn exercise_block(block: Arc<Block>, data: &[u8]) {
    let bound = block.size_bytes() + 1;
    let mut it = BlockIter::new(block);
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        let _ = (it.key().len(), it.value().len());
        it.next();
        n += 1;
        assert!(n <= bound, "forward block scan did not terminate");
    }
    it.seek_to_last();
    let mut n = 0;
    while it.valid() {
        it.prev();
        n += 1;
        assert!(n <= bound, "backward block scan did not terminate");
    }
    for t in seek_targets(data) {
        it.seek(&t);
        if it.valid() {
            assert!(key::cmp_internal(it.key(), &t).is_ge() || it.corruption().is_some());
            it.next();
        }
        it.seek_for_prev(&t);
        if it.valid() {
            it.prev();
        }
    }
    let _ = it.corruption();
}

/// Sorted, deduplicated internal keys with values, built from the input.
fn entries_from(input: &mut Input<'_>, max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    while !input.is_empty() && entries.len() < max {
        let b = input.u8();
        let ulen = usize::from(b % 6);
        let user: Vec<u8> = input.bytes(ulen).iter().map(|c| b'a' + c % 4).collect();
        let seq = u64::from(input.u8() % 8);
        let kind = if b & 0x80 != 0 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let vlen = usize::from(input.u8() % 24);
        let value = if kind == ValueKind::Delete {
            Vec::new()
        } else {
            input.bytes(vlen).to_vec()
        };
        entries.push((key::internal_key(&user, seq, kind), value));
    }
    entries.sort_by(|a, b| key::cmp_internal(&a.0, &b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    entries
}

fn zstd_payload(contents: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    coding::put_varint(&mut payload, contents.len() as u64);
    let frame = zstd::bulk::compress(contents, 1).expect("zstd compress");
    payload.extend_from_slice(&frame);
    payload
}

fn lz4_payload(contents: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    coding::put_varint(&mut payload, contents.len() as u64);
    payload.extend_from_slice(&lz4_flex::block::compress(contents));
    payload
}

fn block_round_trip(input: &mut Input<'_>, mode: u8) {
    let interval = usize::from(input.u8() % 20);
    let lz4 = mode & 0x20 != 0;
    let compress = mode & 0x10 != 0;
    let entries = entries_from(input, 300);
    let mut builder = BlockBuilder::new(interval);
    for (k, v) in &entries {
        builder.add(k, v);
    }
    assert_eq!(builder.num_entries(), entries.len());
    let contents = builder.finish().to_vec();
    let mut raw = Vec::new();
    if lz4 {
        block::append_block(&mut raw, &lz4_payload(&contents), block::COMPRESSION_LZ4);
    } else if compress {
        block::append_block(&mut raw, &zstd_payload(&contents), block::COMPRESSION_ZSTD);
    } else {
        block::append_block(&mut raw, &contents, block::COMPRESSION_NONE);
    }
    let b = Arc::new(block::decode_block(path(), 0, &raw, true).expect("decode of a built block"));
    assert_eq!(b.size_bytes(), contents.len());
    let mut it = BlockIter::new(b);
    it.seek_to_first();
    for (k, v) in &entries {
        assert!(it.valid(), "forward scan ended early");
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
        it.next();
    }
    assert!(!it.valid());
    it.seek_to_last();
    for (k, v) in entries.iter().rev() {
        assert!(it.valid(), "backward scan ended early");
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
        it.prev();
    }
    assert!(!it.valid());
    for (k, _) in &entries {
        it.seek(k);
        assert!(it.valid());
        assert_eq!(it.key(), &k[..]);
        it.seek_for_prev(k);
        assert!(it.valid());
        assert_eq!(it.key(), &k[..]);
        let probe = key::seek_key(key::user_key(k), MAX_SEQNO);
        it.seek(&probe);
        let expect = entries
            .iter()
            .find(|(e, _)| key::cmp_internal(e, &probe).is_ge());
        assert_eq!(
            it.valid().then(|| it.key().to_vec()),
            expect.map(|e| e.0.clone())
        );
    }
    assert!(it.corruption().is_none());
    // Every truncation and every single-bit flip of the raw block decodes or fails cleanly.
    if raw.len() < 512 {
        for cut in 0..raw.len() {
            let _ = block::decode_block(path(), 0, &raw[..cut], true);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sst_meta

/// `sst_meta`: the SST meta-block decoders. Selector byte `% 8`: 0 footer, 1 block handle,
/// 2 properties, 3 range-deletion block, 4 filter; 5 footer round trip, 6 properties and
/// range-deletion round trip, 7 filter round trip (no false negatives).
pub fn sst_meta(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.u8();
    let rest = input.rest();
    match sel % 8 {
        0 => {
            if let Ok(f) = Footer::decode(rest) {
                // The footer is fixed-size and canonical: re-encoding gives the same bytes.
                assert_eq!(&f.encode()[..], rest);
            }
        }
        1 => {
            if let Some(h) = BlockHandle::decode_varint(rest) {
                let mut out = Vec::new();
                h.encode_varint(&mut out);
                assert_eq!(BlockHandle::decode_varint(&out), Some(h));
                let _ = h.end_with_trailer();
            }
        }
        2 => {
            if let Ok(p) = Properties::decode(rest) {
                let again = Properties::decode(&p.encode()).expect("re-decode of properties");
                assert_eq!(again, p);
            }
        }
        3 => {
            if let Ok(ts) = range_del::decode(rest) {
                let again = range_del::decode(&range_del::encode(&ts)).expect("re-decode");
                assert_eq!(again, ts);
            }
        }
        4 => {
            if let Ok(f) = BloomFilter::decode(rest.to_vec()) {
                for chunk in rest.chunks(8).take(64) {
                    let mut h = [0u8; 8];
                    h[..chunk.len()].copy_from_slice(chunk);
                    let _ = f.may_contain_hash(u64::from_le_bytes(h));
                }
                let _ = f.may_contain(rest);
            }
        }
        5 => {
            let mut i = Input::new(rest);
            let mut h = || BlockHandle {
                offset: u64::from(i.u16()) << (i.u8() % 48),
                size: u64::from(i.u16()) << (i.u8() % 48),
            };
            let f = Footer {
                filter: h(),
                range_del: h(),
                properties: h(),
                index: h(),
                format_version: crate::sst::footer::FORMAT_VERSION,
            };
            let enc = f.encode();
            assert_eq!(Footer::decode(&enc), Ok(f));
        }
        6 => {
            let mut i = Input::new(rest);
            let mut ts = Vec::new();
            while !i.is_empty() && ts.len() < 64 {
                let la = usize::from(i.u8() % 4);
                let a = i.bytes(la);
                let lb = usize::from(i.u8() % 4);
                let b = i.bytes(lb);
                let seq = u64::from(i.u16());
                let (start, end) = (a.to_vec(), [a, b, &[1]].concat());
                ts.push(RangeTombstone { start, end, seq });
            }
            ts.sort_by(range_del::cmp_tombstones);
            let enc = range_del::encode(&ts);
            assert_eq!(range_del::decode(&enc).expect("range-del round trip"), ts);
            let smallest = key::internal_key(b"a", 1, ValueKind::Put);
            let p = Properties {
                num_entries: ts.len() as u64 + 1,
                num_data_blocks: u64::from(sel),
                num_range_tombstones: ts.len() as u64,
                data_size: enc.len() as u64,
                smallest: smallest.clone(),
                largest: key::range_end_sentinel(&[&b"z"[..], &enc].concat()),
                smallest_seqno: 0,
                largest_seqno: MAX_SEQNO,
                compression: String::from_utf8_lossy(&enc).into_owned(),
                creator: "fuzz".into(),
                ..Properties::default()
            };
            let decoded = Properties::decode(&p.encode()).expect("properties round trip");
            assert_eq!(decoded, p);
        }
        _ => {
            let bits = u32::from(sel >> 3) % 24 + 1;
            let hashes: Vec<u64> = rest.chunks(3).map(filter::hash_key).collect();
            let f = BloomFilter::decode(filter::build_filter(&hashes, bits)).expect("filter");
            for c in rest.chunks(3) {
                assert!(f.may_contain(c), "bloom filter false negative");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sst_table

/// `sst_table`: whole SST files through [`Table::open`] over an [`InMemoryFile`].
///
/// Flag byte: bit 0 = recompute every checksum the footer and index reach before opening (so
/// mutations get past the CRCs into the decoders), bit 1 = open with a global seqno, bit 2 = use a
/// block cache, bit 3 = skip data-block checksums on reads, bit 7 = round trip (entries from the
/// input through [`TableBuilder`], then open, verify, scan both ways and get every key).
pub fn sst_table(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    if flags & 0x80 != 0 {
        table_round_trip(&mut input, flags);
        return;
    }
    let mut file = input.rest().to_vec();
    if flags & 1 != 0 {
        fix_checksums(&mut file);
    }
    let global = (flags & 2 != 0).then_some(u64::from(flags >> 4) + 1);
    let cache = (flags & 4 != 0).then(|| BlockCache::new(1 << 20));
    let read = ReadFlags {
        verify_checksums: flags & 8 == 0,
        fill_cache: true,
    };
    let Ok(table) = Table::open(
        Arc::new(InMemoryFile(file.clone())),
        PathBuf::from(NO_FILE),
        cache,
        global,
    ) else {
        return;
    };
    let _ = table.properties();
    let _ = table.range_tombstones();
    let verified = table.verify();
    // Bound on steps: an index may point many times at the same block.
    let limit = 50_000;
    let mut forward = Vec::new();
    let mut it = table.iter(read);
    it.seek_to_first();
    while it.valid() && forward.len() < limit {
        forward.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    let forward_err = it.status().is_err();
    let mut backward = Vec::new();
    it.seek_to_last();
    while it.valid() && backward.len() < limit {
        backward.push((it.key().to_vec(), it.value().to_vec()));
        it.prev();
    }
    let backward_err = it.status().is_err();
    if let Ok(count) = verified {
        // A file that verifies reads the same both ways.
        if !forward_err && !backward_err && forward.len() < limit {
            assert_eq!(count as usize, forward.len(), "verify count vs scan");
            backward.reverse();
            assert_eq!(
                forward, backward,
                "verified table reads differently backwards"
            );
        }
    }
    let mut targets = seek_targets(&file[..file.len().min(64)]);
    targets.extend(forward.iter().take(16).map(|(k, _)| k.clone()));
    for t in &targets {
        let mut it = table.iter(read);
        it.seek(t);
        if it.valid() {
            it.next();
        }
        it.seek_for_prev(t);
        if it.valid() {
            it.prev();
        }
        let _ = it.status();
        let _ = table.get(t, read);
        let _ = table.approximate_offset_of(t);
        let _ = table.may_contain(key::user_key(t));
    }
}

/// Rewrites the checksums of the footer, the meta blocks and every data block the index names,
/// wherever they lie inside the file.
pub fn fix_checksums(file: &mut [u8]) {
    let Some(meta_end) = file.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let handle = |f: &[u8], i: usize| BlockHandle {
        offset: coding::u64_at(f, meta_end + 16 * i).unwrap_or(0),
        size: coding::u64_at(f, meta_end + 16 * i + 8).unwrap_or(0),
    };
    let fix_block = |f: &mut [u8], h: BlockHandle| -> Option<Vec<u8>> {
        let end = usize::try_from(h.end_with_trailer()?).ok()?;
        if end > meta_end {
            return None;
        }
        let start = usize::try_from(h.offset).ok()?;
        let body = end - block::BLOCK_TRAILER_LEN;
        let crc = coding::crc32c_masked(&[&f[start..body + 1]]);
        f[body + 1..end].copy_from_slice(&crc.to_le_bytes());
        Some(f[start..body].to_vec())
    };
    let handles: Vec<BlockHandle> = (0..4).map(|i| handle(file, i)).collect();
    for h in &handles[..3] {
        fix_block(file, *h);
    }
    if let Some(contents) = fix_block(file, handles[3]) {
        let index_type = usize::try_from(handles[3].offset + handles[3].size)
            .ok()
            .and_then(|at| file.get(at).copied());
        if index_type == Some(block::COMPRESSION_NONE) {
            if let Ok(index) = Block::new(contents) {
                let mut it = BlockIter::new(Arc::new(index));
                it.seek_to_first();
                let mut data_handles = Vec::new();
                while it.valid() && data_handles.len() < 10_000 {
                    if let Some(h) = BlockHandle::decode_varint(it.value()) {
                        data_handles.push(h);
                    }
                    it.next();
                }
                for h in data_handles {
                    fix_block(file, h);
                }
            }
        }
    }
    let crc = coding::crc32c_masked(&[&file[meta_end..meta_end + 68]]);
    file[meta_end + 68..meta_end + 72].copy_from_slice(&crc.to_le_bytes());
}

fn table_round_trip(input: &mut Input<'_>, flags: u8) {
    let opts_byte = input.u8();
    let opts = TableBuildOptions {
        block_size_bytes: usize::from(input.u8()) + 1,
        bloom_bits_per_key: if opts_byte & 1 != 0 { 10 } else { 0 },
        compression: if opts_byte & 2 != 0 {
            // With bit 0x80 (which also raises the tombstone seqno) lz4 instead of zstd.
            if opts_byte & 0x80 != 0 {
                Compression::Lz4
            } else {
                Compression::Zstd { level: 1 }
            }
        } else {
            Compression::None
        },
        creator: "fuzz".into(),
    };
    let global = (flags & 2 != 0).then_some(u64::from(flags & 0x0c) + 3);
    let mut entries = entries_from(input, 400);
    if global.is_some() {
        // Files opened with a global seqno come from SstWriter: one seqno-0 entry per user key.
        entries.dedup_by(|a, b| key::user_key(&a.0) == key::user_key(&b.0));
        for (k, _) in entries.iter_mut() {
            let kind = key::kind_byte(k);
            let user = key::user_key(k).to_vec();
            k.clear();
            key::append_internal_key(k, &user, 0, kind);
        }
    }
    let mut tombstones = Vec::new();
    if opts_byte & 4 != 0 && global.is_none() {
        tombstones.push(RangeTombstone {
            start: b"b".to_vec(),
            end: b"c".to_vec(),
            seq: u64::from(opts_byte >> 3),
        });
    }
    let buf = SharedBufferFile::default();
    let mut tb = TableBuilder::new(Box::new(buf.clone()), PathBuf::from(NO_FILE), opts);
    for (k, v) in &entries {
        tb.add(k, v).expect("table add");
    }
    for t in &tombstones {
        tb.add_range_tombstone(t.clone());
    }
    let info = tb.finish().expect("table finish");
    let bytes = buf.0.lock().clone();
    assert_eq!(info.file_size, bytes.len() as u64);
    assert_eq!(info.num_entries, entries.len() as u64);
    let cache = (flags & 4 != 0).then(|| BlockCache::new(1 << 16));
    let table = Table::open(
        Arc::new(InMemoryFile(bytes)),
        PathBuf::from(NO_FILE),
        cache,
        global,
    )
    .expect("open of a built table");
    assert_eq!(table.verify().expect("verify"), entries.len() as u64);
    assert_eq!(table.range_tombstones().len(), tombstones.len());
    let expose = |k: &[u8]| match global {
        Some(g) => key::internal_key(
            key::user_key(k),
            g,
            ValueKind::from_u8(key::kind_byte(k)).expect("kind"),
        ),
        None => k.to_vec(),
    };
    let expected: Vec<(Vec<u8>, Vec<u8>)> = entries
        .iter()
        .map(|(k, v)| (expose(k), v.clone()))
        .collect();
    let read = ReadFlags::default();
    let mut it = table.iter(read);
    it.seek_to_first();
    for (k, v) in &expected {
        assert!(it.valid(), "table scan ended early");
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
        it.next();
    }
    assert!(!it.valid());
    it.seek_to_last();
    for (k, v) in expected.iter().rev() {
        assert!(it.valid(), "reverse table scan ended early");
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
        it.prev();
    }
    assert!(!it.valid());
    it.status().expect("iterator status");
    for (k, v) in &expected {
        let user = key::user_key(k);
        let newest = expected
            .iter()
            .find(|(e, _)| key::user_key(e) == user)
            .expect("present");
        let got = table
            .get(&key::seek_key(user, MAX_SEQNO), read)
            .expect("get");
        assert_eq!(got.as_ref(), Some(newest));
        it.seek(k);
        assert!(it.valid());
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
        it.seek_for_prev(k);
        assert!(it.valid());
        assert_eq!(it.key(), &k[..]);
    }
    let absent = key::seek_key(b"zzzzzzz", MAX_SEQNO);
    assert_eq!(table.get(&absent, read).expect("get absent"), None);
}

// ---------------------------------------------------------------------------------------------
// wal_log

/// `wal_log`: the record log shared by the WAL and the MANIFEST.
///
/// Mode byte odd = [`wal::read_log`] over the rest (records must be in order and inside the
/// input). Even = round trip: records described by the input are written with [`LogWriter`] and
/// read back exactly; every truncation reads back a prefix with no corruption reported; a single
/// flipped bit never yields a record that was not written at that offset.
pub fn wal_log(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    if mode % 2 == 1 {
        let rest = input.rest();
        let r = wal::read_log(rest);
        let mut prev = None;
        for (off, rec) in &r.records {
            assert!((*off as usize) < rest.len());
            assert!(rec.len() <= rest.len());
            assert!(prev.is_none_or(|p| p < *off), "records out of order");
            prev = Some(*off);
        }
        return;
    }
    let mut records: Vec<Vec<u8>> = Vec::new();
    while !input.is_empty() && records.len() < 32 {
        let spec = input.u8();
        let rec = if spec & 0x80 != 0 {
            // A long record of one repeated byte crosses block boundaries cheaply.
            let len = usize::from(input.u16()) % (3 * wal::BLOCK_SIZE);
            vec![spec; len]
        } else {
            input.bytes(usize::from(spec)).to_vec()
        };
        records.push(rec);
    }
    let buf = SharedBufferFile::default();
    let mut w = LogWriter::new(Box::new(buf.clone()), PathBuf::from(NO_FILE));
    for r in &records {
        w.add_record(r).expect("log append");
    }
    w.sync().expect("log sync");
    let log = buf.0.lock().clone();
    let r = wal::read_log(&log);
    assert!(r.corruption.is_none(), "{:?}", r.corruption);
    assert!(r.torn_tail.is_none(), "{:?}", r.torn_tail);
    let got: Vec<&Vec<u8>> = r.records.iter().map(|(_, d)| d).collect();
    let want: Vec<&Vec<u8>> = records.iter().collect();
    assert_eq!(got, want);
    let written: BTreeMap<u64, &Vec<u8>> = r.records.iter().map(|(o, d)| (*o, d)).collect();
    if log.is_empty() {
        return;
    }
    let cut = usize::from(input.u16()) * log.len() / 65536;
    let t = wal::read_log(&log[..cut]);
    assert!(
        t.corruption.is_none(),
        "truncation at {cut}: {:?}",
        t.corruption
    );
    for (i, (_, d)) in t.records.iter().enumerate() {
        assert_eq!(d, &records[i], "truncated log record {i}");
    }
    let flip = usize::from(input.u16()) * log.len() / 65536;
    let mut damaged = log;
    damaged[flip] ^= 1 << (input.u8() % 8);
    let d = wal::read_log(&damaged);
    for (off, rec) in &d.records {
        assert_eq!(
            written.get(off).copied(),
            Some(rec),
            "bit flip at {flip} produced a record at {off} that was never written"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// write_batch

/// `write_batch`: the write-batch encoding (the payload of every WAL record).
///
/// Mode byte odd = decode the rest; a batch that decodes is rebuilt, re-encoded and must decode to
/// the same operations. Even = a batch built from the input with the [`WriteBatch`] API encodes
/// and decodes to exactly those operations.
pub fn write_batch(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    if mode % 2 == 1 {
        let rest = input.rest();
        let decodes = crate::write_batch::fuzz_decode(rest);
        let Ok(d) = DecodedBatch::decode(rest) else {
            assert!(!decodes);
            return;
        };
        assert!(decodes);
        let mut b = WriteBatch::new();
        for op in &d.ops {
            push_op(&mut b, op);
        }
        if let Some(t) = d.tag {
            b.set_tag(t);
        }
        let enc = b.encode(d.seq).to_vec();
        let again = DecodedBatch::decode(&enc).expect("re-decode of a rebuilt batch");
        assert_eq!(
            (again.seq, again.count, again.tag, &again.ops),
            (d.seq, d.count, d.tag, &d.ops)
        );
        assert_eq!(b.ops().collect::<Vec<_>>(), d.ops);
        return;
    }
    let mut b = WriteBatch::new();
    let mut want: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut tag = None;
    while !input.is_empty() && want.len() < 200 {
        let op = input.u8();
        let k = input.bytes(usize::from(op >> 3) % 12).to_vec();
        let vlen = usize::from(input.u8()) % 40;
        let v = input.bytes(vlen).to_vec();
        match op % 4 {
            0 => {
                b.put(&k, &v);
                want.push((0, k, v));
            }
            1 => {
                b.delete(&k);
                want.push((1, k, Vec::new()));
            }
            2 => {
                b.delete_range(&k, &v);
                want.push((2, k, v));
            }
            _ => {
                let t = u64::from(input.u16());
                b.set_tag(t);
                tag = Some(tag.map_or(t, |x: u64| x.max(t)));
            }
        }
    }
    assert_eq!(b.len(), want.len());
    let seq = u64::from(mode) << 40;
    let enc = b.encode(seq).to_vec();
    // Encoding twice gives the same bytes.
    assert_eq!(b.encode(seq), &enc[..]);
    let d = DecodedBatch::decode(&enc).expect("decode of an encoded batch");
    assert_eq!((d.seq, d.count as usize, d.tag), (seq, want.len(), tag));
    for (op, (kind, k, v)) in d.ops.iter().zip(&want) {
        let same = match (op, kind) {
            (BatchOp::Put(a, b), 0) => a == k && b == v,
            (BatchOp::Delete(a), 1) => a == k,
            (BatchOp::DeleteRange(a, b), 2) => a == k && b == v,
            _ => false,
        };
        assert!(same, "decoded {op:?}, wrote kind {kind}");
    }
    for cut in 0..enc.len().min(256) {
        let _ = DecodedBatch::decode(&enc[..cut]);
    }
}

fn push_op(b: &mut WriteBatch, op: &BatchOp<'_>) {
    match *op {
        BatchOp::Put(k, v) => b.put(k, v),
        BatchOp::Delete(k) => b.delete(k),
        BatchOp::DeleteRange(s, e) => b.delete_range(s, e),
    }
}

// ---------------------------------------------------------------------------------------------
// manifest

/// `manifest`: version edits and whole MANIFEST logs.
///
/// Mode byte `% 3`: 0 = one edit (decode, re-encode, re-decode equal); 1 = a whole manifest
/// (record log, each record an edit applied to a `Version`, as recovery does); 2 = round trip of
/// an edit built from the input.
pub fn manifest(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    match mode % 3 {
        0 => {
            edit::fuzz_decode(input.rest());
        }
        1 => {
            let log = wal::read_log(input.rest());
            let mut version = Version::default();
            for (_, rec) in &log.records {
                let Ok(e) = VersionEdit::decode(rec) else {
                    return;
                };
                match version.apply(&e, &None) {
                    Ok(v) => version = v,
                    Err(_) => return,
                }
                let files = version.files_per_level();
                assert_eq!(files.iter().sum::<usize>(), version.all_files().count());
            }
            let snap = version.snapshot_edit();
            let rebuilt = Version::default()
                .apply(&snap, &None)
                .expect("a version's snapshot edit applies to an empty version");
            assert_eq!(rebuilt.files_per_level(), version.files_per_level());
        }
        _ => {
            let mut e = VersionEdit::default();
            let next = |i: &mut Input<'_>| u64::from(i.u16()) << (i.u8() % 50);
            let flags = input.u8();
            if flags & 1 != 0 {
                e.log_number = Some(next(&mut input));
            }
            if flags & 2 != 0 {
                e.next_file_number = Some(next(&mut input));
            }
            if flags & 4 != 0 {
                e.last_seqno = Some(next(&mut input));
            }
            if flags & 8 != 0 {
                e.durable_tag = Some(next(&mut input));
            }
            while !input.is_empty() && e.added.len() + e.deleted.len() < 64 {
                let op = input.u8();
                let level = usize::from(op) % crate::manifest::NUM_LEVELS;
                match op >> 6 {
                    0 => e.deleted.push((level, next(&mut input))),
                    1 => {
                        let k = input.bytes(usize::from(op % 5)).to_vec();
                        e.compact_pointers
                            .push((level, key::internal_key(&k, 1, ValueKind::Put)));
                    }
                    _ => {
                        let a = input.bytes(3).to_vec();
                        let f = NewFile {
                            number: next(&mut input),
                            size: next(&mut input),
                            smallest: key::internal_key(&a, 2, ValueKind::Put),
                            largest: key::internal_key(&[&a[..], b"z"].concat(), 1, ValueKind::Put),
                            smallest_seqno: 1,
                            largest_seqno: next(&mut input),
                            global_seqno: (op & 1 != 0).then(|| next(&mut input)),
                            num_entries: next(&mut input),
                            num_range_tombstones: u64::from(op & 3),
                        };
                        e.added.push((level, f));
                    }
                }
            }
            let enc = e.encode();
            assert_eq!(VersionEdit::decode(&enc).expect("edit round trip"), e);
            assert!(edit::fuzz_decode(&enc));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// db_ops

/// One operation of the `db_ops` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `db.put`.
    Put(Vec<u8>, Vec<u8>),
    /// `db.delete`.
    Delete(Vec<u8>),
    /// `db.delete_range` (end exclusive).
    DeleteRange(Vec<u8>, Vec<u8>),
    /// A write batch of puts/deletes/range deletes.
    Batch(Vec<Op>),
    /// `db.get`, compared with the model.
    Get(Vec<u8>),
    /// A bounded scan, forward (`false`) or backward (`true`), compared with the model.
    Scan(Option<Vec<u8>>, Option<Vec<u8>>, bool),
    /// `db.flush`.
    Flush,
    /// `db.close` and `Db::open` again.
    Reopen,
}

fn op_key(input: &mut Input<'_>) -> Vec<u8> {
    let b = input.u8();
    let mut k = format!("k{:02}", b % 48).into_bytes();
    if b >= 0xf0 {
        // A few long keys, and one byte past the short ones' prefix.
        k.extend(std::iter::repeat_n(b'x', usize::from(b & 0x0f) * 9));
    }
    k
}

fn op_value(input: &mut Input<'_>) -> Vec<u8> {
    let b = input.u8();
    let len = if b >= 0xf8 {
        usize::from(b & 7) * 200
    } else {
        usize::from(b % 24)
    };
    let fill = input.u8();
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn op_from(input: &mut Input<'_>, in_batch: bool) -> Op {
    let b = input.u8();
    if in_batch {
        return match b % 3 {
            0 => Op::Put(op_key(input), op_value(input)),
            1 => Op::Delete(op_key(input)),
            _ => Op::DeleteRange(op_key(input), op_key(input)),
        };
    }
    match b % 11 {
        0 | 1 => Op::Put(op_key(input), op_value(input)),
        2 => Op::Delete(op_key(input)),
        3 => Op::DeleteRange(op_key(input), op_key(input)),
        4 => {
            let len = usize::from(input.u8() % 8);
            Op::Batch((0..len).map(|_| op_from(input, true)).collect())
        }
        5 | 6 => Op::Get(op_key(input)),
        7 => {
            let f = input.u8();
            let lo = (f & 1 != 0).then(|| op_key(input));
            let hi = (f & 2 != 0).then(|| op_key(input));
            Op::Scan(lo, hi, f & 4 != 0)
        }
        8 => Op::Flush,
        9 => Op::Reopen,
        _ => Op::Scan(None, None, b >= 0x80),
    }
}

/// Encodes operations as `db_ops` input (the inverse of [`decode_ops`] for keys `kNN` with
/// `NN < 48` and values of under 24 bytes, or a multiple of 200 bytes up to 1400); used to write
/// readable seeds.
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    fn key_byte(k: &[u8]) -> u8 {
        let n: u8 = std::str::from_utf8(&k[1..3])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let extra = k.len().saturating_sub(3);
        if extra > 0 {
            0xf0 | (extra / 9) as u8
        } else {
            n
        }
    }
    fn value_bytes(v: &[u8]) -> [u8; 2] {
        let fill = v.first().copied().unwrap_or(0);
        if v.len() < 24 {
            [v.len() as u8, fill]
        } else {
            [0xf8 | (v.len() / 200) as u8, fill]
        }
    }
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                out.extend_from_slice(&[0, key_byte(k)]);
                out.extend_from_slice(&value_bytes(v));
            }
            Op::Delete(k) => out.extend_from_slice(&[2, key_byte(k)]),
            Op::DeleteRange(s, e) => out.extend_from_slice(&[3, key_byte(s), key_byte(e)]),
            Op::Batch(ops) => {
                out.extend_from_slice(&[4, ops.len() as u8]);
                for o in ops {
                    match o {
                        Op::Put(k, v) => {
                            out.extend_from_slice(&[0, key_byte(k)]);
                            out.extend_from_slice(&value_bytes(v));
                        }
                        Op::Delete(k) => out.extend_from_slice(&[1, key_byte(k)]),
                        Op::DeleteRange(s, e) => {
                            out.extend_from_slice(&[2, key_byte(s), key_byte(e)])
                        }
                        _ => {}
                    }
                }
            }
            Op::Get(k) => out.extend_from_slice(&[5, key_byte(k)]),
            Op::Scan(None, None, rev) => out.push(if *rev { 142 } else { 10 }),
            Op::Scan(lo, hi, rev) => {
                let f = u8::from(lo.is_some()) | u8::from(hi.is_some()) << 1 | u8::from(*rev) << 2;
                out.extend_from_slice(&[7, f]);
                out.extend(lo.iter().chain(hi.iter()).map(|k| key_byte(k)));
            }
            Op::Flush => out.push(8),
            Op::Reopen => out.push(9),
        }
    }
    out
}

/// Decodes `db_ops` input into operations (at most 256; at most 3 reopens).
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut input = Input::new(data);
    let mut ops = Vec::new();
    let mut reopens = 0;
    while !input.is_empty() && ops.len() < 256 {
        let op = op_from(&mut input, false);
        if op == Op::Reopen {
            reopens += 1;
            if reopens > 3 {
                continue;
            }
        }
        ops.push(op);
    }
    ops
}

/// The options `db_ops` runs with: tiny memtables and blocks so flushes, multi-block SSTs and
/// compactions happen within a few hundred operations.
pub fn tiny_options() -> Options {
    Options {
        memtable_size_bytes: 4096,
        block_size_bytes: 64,
        block_cache_size_bytes: 1 << 16,
        target_file_size_bytes: 8 << 10,
        max_bytes_for_level_base: 32 << 10,
        l0_compaction_trigger: 2,
        max_background_jobs: 1,
        max_open_files: 32,
        ..Options::default()
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("siltdb-fuzz-{}-{n}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn model_apply(model: &mut Model, op: &Op) {
    match op {
        Op::Put(k, v) => {
            model.insert(k.clone(), v.clone());
        }
        Op::Delete(k) => {
            model.remove(k);
        }
        Op::DeleteRange(s, e) if s < e => {
            let doomed: Vec<Vec<u8>> = model
                .range(s.clone()..e.clone())
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                model.remove(&k);
            }
        }
        Op::Batch(ops) => ops.iter().for_each(|o| model_apply(model, o)),
        _ => {}
    }
}

fn model_scan(
    model: &Model,
    lo: &Option<Vec<u8>>,
    hi: &Option<Vec<u8>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| lo.as_ref().is_none_or(|l| *k >= l))
        .filter(|(k, _)| hi.as_ref().is_none_or(|h| *k < h))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `db_ops`: operations decoded by [`decode_ops`] run against a [`Db`] (with [`tiny_options`])
/// and a `BTreeMap`; every read and a final full scan (before and after a last reopen) must
/// agree with the model.
pub fn db_ops(data: &[u8]) {
    run_ops(&decode_ops(data));
}

/// Runs `ops` against a fresh database and the model (see [`db_ops`]).
pub fn run_ops(ops: &[Op]) {
    let dir = TempDir::new();
    let open = || Db::open(&dir.0, tiny_options()).expect("Db::open");
    let mut db = open();
    let mut model = Model::new();
    for (step, op) in ops.iter().enumerate() {
        let ctx = |what: &str| format!("step {step} {op:?}: {what}");
        match op {
            Op::Put(k, v) => db.put(k, v).expect("put"),
            Op::Delete(k) => db.delete(k).expect("delete"),
            Op::DeleteRange(s, e) => db.delete_range(s, e).expect("delete_range"),
            Op::Batch(ops) => {
                let mut b = WriteBatch::new();
                for o in ops {
                    match o {
                        Op::Put(k, v) => b.put(k, v),
                        Op::Delete(k) => b.delete(k),
                        Op::DeleteRange(s, e) => b.delete_range(s, e),
                        _ => {}
                    }
                }
                db.write(b, &WriteOptions::default()).expect("write batch");
            }
            Op::Get(k) => {
                let got = db.get(k).expect("get");
                assert_eq!(got.as_ref(), model.get(k), "{}", ctx("get"));
            }
            Op::Scan(lo, hi, reverse) => {
                let opts = ReadOptions {
                    lower_bound: lo.clone(),
                    upper_bound: hi.clone(),
                    ..ReadOptions::default()
                };
                let it = db.iter(&opts);
                let mut got: Vec<(Vec<u8>, Vec<u8>)> = if *reverse {
                    it.rev().map(|r| r.expect("scan item")).collect()
                } else {
                    it.map(|r| r.expect("scan item")).collect()
                };
                if *reverse {
                    got.reverse();
                }
                assert_eq!(got, model_scan(&model, lo, hi), "{}", ctx("scan"));
            }
            Op::Flush => db.flush().expect("flush"),
            Op::Reopen => {
                db.close().expect("close");
                drop(db);
                db = open();
            }
        }
        model_apply(&mut model, op);
    }
    let all = |db: &Db| -> Vec<(Vec<u8>, Vec<u8>)> {
        db.iter(&ReadOptions::default())
            .map(|r| r.expect("final scan item"))
            .collect()
    };
    assert_eq!(all(&db), model_scan(&model, &None, &None), "final scan");
    db.close().expect("close");
    drop(db);
    let db = open();
    assert_eq!(
        all(&db),
        model_scan(&model, &None, &None),
        "scan after reopen"
    );
    db.close().expect("final close");
}

// ---------------------------------------------------------------------------------------------
// seeds

/// Seed inputs for every engine target, as `(target, file name, bytes)`: valid encodings made by
/// the engine's own writers (prefixed by the target's mode byte) plus a few damaged copies.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |t: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((t, name.to_string(), bytes));
    };
    let with = |mode: u8, body: &[u8]| [&[mode][..], body].concat();

    // Blocks.
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..40u32)
        .map(|i| {
            let k = key::internal_key(
                format!("key{:03}", i / 2).as_bytes(),
                u64::from(i % 3),
                ValueKind::Put,
            );
            (k, vec![b'v'; (i % 7) as usize])
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let mut sorted = entries.clone();
    sorted.sort_by(|a, b| key::cmp_internal(&a.0, &b.0));
    let mut bb = BlockBuilder::new(4);
    for (k, v) in &sorted {
        bb.add(k, v);
    }
    let contents = bb.finish().to_vec();
    let mut raw = Vec::new();
    block::append_block(&mut raw, &contents, block::COMPRESSION_NONE);
    let mut zraw = Vec::new();
    block::append_block(&mut zraw, &zstd_payload(&contents), block::COMPRESSION_ZSTD);
    add("sst_block", "contents", with(0, &contents));
    add("sst_block", "raw-unverified", with(1, &raw));
    add("sst_block", "raw-verified", with(2, &raw));
    add("sst_block", "zstd-unverified", with(1, &zraw));
    let mut lraw = Vec::new();
    block::append_block(&mut lraw, &lz4_payload(&contents), block::COMPRESSION_LZ4);
    add("sst_block", "lz4-unverified", with(1, &lraw));
    add("sst_block", "lz4-verified", with(2, &lraw));
    let mut bad = contents.clone();
    let n = bad.len();
    bad[n - 8] = 0xff; // last restart point out of bounds
    add("sst_block", "bad-restart", with(0, &bad));
    let mut bad = contents.clone();
    bad[0] = 5; // first entry shares bytes with nothing
    add("sst_block", "bad-shared", with(0, &bad));
    add(
        "sst_block",
        "round-trip",
        with(
            3,
            b"\x04\x03abc\x01\x05hello\x82ab\x02\x00\x05xyzzy\x07\x03abc",
        ),
    );
    add("sst_block", "round-trip-zstd", with(0x13, &[7u8; 64]));
    add("sst_block", "round-trip-lz4", with(0x23, &[7u8; 64]));

    // Meta blocks.
    let footer = Footer {
        filter: BlockHandle {
            offset: 100,
            size: 69,
        },
        range_del: BlockHandle {
            offset: 174,
            size: 1,
        },
        properties: BlockHandle {
            offset: 180,
            size: 90,
        },
        index: BlockHandle {
            offset: 275,
            size: 30,
        },
        format_version: crate::sst::footer::FORMAT_VERSION,
    };
    add("sst_meta", "footer", with(0, &footer.encode()));
    let mut h = Vec::new();
    BlockHandle {
        offset: 1 << 33,
        size: 4000,
    }
    .encode_varint(&mut h);
    add("sst_meta", "handle", with(1, &h));
    let props = Properties {
        num_entries: 10,
        num_data_blocks: 2,
        num_range_tombstones: 1,
        data_size: 1000,
        index_size: 40,
        filter_size: 64,
        smallest: key::internal_key(b"a", 3, ValueKind::Put),
        largest: key::range_end_sentinel(b"z"),
        smallest_seqno: 1,
        largest_seqno: 9,
        creation_time_secs: 1_700_000_000,
        compression: "zstd(3)".into(),
        creator: "fuzz".into(),
        format_version: 0,
    };
    add("sst_meta", "properties", with(2, &props.encode()));
    let ts = vec![
        RangeTombstone {
            start: b"".to_vec(),
            end: b"b".to_vec(),
            seq: 9,
        },
        RangeTombstone {
            start: b"m".to_vec(),
            end: b"p".to_vec(),
            seq: 7,
        },
        RangeTombstone {
            start: b"m".to_vec(),
            end: b"n".to_vec(),
            seq: 4,
        },
    ];
    add("sst_meta", "range-del", with(3, &range_del::encode(&ts)));
    let hashes: Vec<u64> = (0..40)
        .map(|i: u32| filter::hash_key(&i.to_le_bytes()))
        .collect();
    add(
        "sst_meta",
        "filter",
        with(4, &filter::build_filter(&hashes, 10)),
    );
    add(
        "sst_meta",
        "footer-round-trip",
        with(5, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    );
    add(
        "sst_meta",
        "meta-round-trip",
        with(6, b"\x02ab\x01c\x00\x07\x01z\x00\x01"),
    );
    add(
        "sst_meta",
        "filter-round-trip",
        with(7 | 8, b"abcdefghijklmnopqrstuvwxyz"),
    );

    // Tables.
    let table = |compression: Compression, bloom: u32, block_size: usize, tombs: bool| {
        let buf = SharedBufferFile::default();
        let mut tb = TableBuilder::new(
            Box::new(buf.clone()),
            PathBuf::from(NO_FILE),
            TableBuildOptions {
                block_size_bytes: block_size,
                bloom_bits_per_key: bloom,
                compression,
                creator: "fuzz-seed".into(),
            },
        );
        for (k, v) in &sorted {
            tb.add(k, v).expect("seed table add");
        }
        if tombs {
            tb.add_range_tombstone(RangeTombstone {
                start: b"key005".to_vec(),
                end: b"key009".to_vec(),
                seq: 2,
            });
        }
        tb.finish().expect("seed table finish");
        let bytes = buf.0.lock().clone();
        bytes
    };
    let plain = table(Compression::None, 10, 128, true);
    add("sst_table", "plain", with(0, &plain));
    add("sst_table", "plain-fixcrc-global", with(0x13, &plain));
    add("sst_table", "plain-cache-nocrc", with(0x0c, &plain));
    add(
        "sst_table",
        "zstd-nofilter",
        with(0x01, &table(Compression::Zstd { level: 1 }, 0, 256, false)),
    );
    add(
        "sst_table",
        "lz4-nofilter",
        with(0x01, &table(Compression::Lz4, 0, 256, false)),
    );
    let mut damaged = plain.clone();
    damaged[40] ^= 0x20;
    add("sst_table", "damaged-data-fixcrc", with(0x01, &damaged));
    let mut damaged = plain.clone();
    let n = damaged.len();
    damaged[n - 80 + 60] ^= 0x01; // index size
    add("sst_table", "damaged-footer-fixcrc", with(0x01, &damaged));
    add(
        "sst_table",
        "round-trip",
        with(
            0x80,
            b"\x07\x10\x02ab\x01\x03xyz\x01a\x02\x02hi\x83abc\x04\x00\x04bcd\x05\x04wxyz",
        ),
    );
    add(
        "sst_table",
        "round-trip-global",
        with(0x86, b"\x03\x08\x03abc\x00\x02hi\x02ab\x01\x00"),
    );

    // Record logs.
    let log_of = |records: &[Vec<u8>]| {
        let buf = SharedBufferFile::default();
        let mut w = LogWriter::new(Box::new(buf.clone()), PathBuf::from(NO_FILE));
        for r in records {
            w.add_record(r).expect("seed log");
        }
        let bytes = buf.0.lock().clone();
        bytes
    };
    let mut batch = WriteBatch::new();
    batch.put(b"key1", b"value1");
    batch.delete(b"key2");
    batch.delete_range(b"a", b"c");
    batch.set_tag(77);
    let batch_bytes = batch.encode(100).to_vec();
    let wal = log_of(&[batch_bytes.clone(), b"second".to_vec(), vec![9u8; 300]]);
    add("wal_log", "wal", with(1, &wal));
    let mut torn = wal.clone();
    torn.truncate(wal.len() - 20);
    add("wal_log", "torn-tail", with(1, &torn));
    let mut mid = wal.clone();
    mid[12] ^= 4;
    add("wal_log", "mid-corruption", with(1, &mid));
    add(
        "wal_log",
        "round-trip",
        with(0, b"\x05hello\x00\x03abc\xff\xff\x90\x40\x02\x7f\x7f\x03"),
    );
    add(
        "wal_log",
        "round-trip-long",
        with(0, b"\x81\x00\x90\x82\x00\x40\x10\x12\x34\x56\x70"),
    );

    add("write_batch", "batch", with(1, &batch_bytes));
    let mut empty = WriteBatch::new();
    add("write_batch", "empty", with(1, empty.encode(0)));
    let mut cut = batch_bytes.clone();
    cut.truncate(cut.len() - 3);
    add("write_batch", "truncated", with(1, &cut));
    add(
        "write_batch",
        "built",
        with(0, b"\x08ab\x03xyz\x11c\x02\x22de\x03fg\x03\x05\x00"),
    );

    // Manifests.
    let e = VersionEdit {
        log_number: Some(4),
        next_file_number: Some(9),
        last_seqno: Some(1000),
        deleted: vec![(0, 3)],
        added: vec![(
            1,
            NewFile {
                number: 8,
                size: 4096,
                smallest: key::internal_key(b"a", 1, ValueKind::Put),
                largest: key::internal_key(b"m", 2, ValueKind::Put),
                smallest_seqno: 1,
                largest_seqno: 2,
                global_seqno: Some(7),
                num_entries: 10,
                num_range_tombstones: 1,
            },
        )],
        durable_tag: Some(42),
        compact_pointers: vec![(1, key::internal_key(b"c", 3, ValueKind::Put))],
    };
    let first = VersionEdit {
        added: vec![(
            0,
            NewFile {
                number: 3,
                size: 100,
                smallest: key::internal_key(b"b", 5, ValueKind::Put),
                largest: key::internal_key(b"q", 6, ValueKind::Delete),
                ..NewFile::default()
            },
        )],
        ..VersionEdit::default()
    };
    add("manifest", "edit", with(0, &e.encode()));
    add(
        "manifest",
        "manifest-log",
        with(1, &log_of(&[first.encode(), e.encode()])),
    );
    add("manifest", "built", with(2, b"\x0f\x01\x02\x03\x04\x05\x06\x07\x08\x81abc\x01\x02\x03\x04\x05\x06\x42xy\x03\x00\x00"));

    // Operation sequences.
    let k = |n: u8| format!("k{n:02}").into_bytes();
    let v = |len: usize, fill: u8| -> Vec<u8> {
        (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
    };
    let mixed = vec![
        Op::Put(k(1), v(3, 7)),
        Op::Put(k(2), v(400, 9)),
        Op::Get(k(1)),
        Op::Delete(k(2)),
        Op::DeleteRange(k(0), k(5)),
        Op::Batch(vec![
            Op::Put(k(7), v(1, 1)),
            Op::Delete(k(3)),
            Op::DeleteRange(k(8), k(12)),
        ]),
        Op::Flush,
        Op::Scan(Some(k(1)), Some(k(9)), false),
        Op::Scan(Some(k(0)), Some(k(40)), true),
        Op::Reopen,
        Op::Get(k(7)),
        Op::Scan(None, None, true),
    ];
    let mut heavy = Vec::new();
    for i in 0..60u8 {
        heavy.push(Op::Put(k(i % 48), v(600, i)));
        if i % 10 == 9 {
            heavy.push(Op::Scan(Some(k(i % 20)), Some(k(30 + i % 10)), true));
            heavy.push(Op::DeleteRange(k(5), k(20)));
        }
    }
    heavy.extend([
        Op::Reopen,
        Op::Scan(None, None, false),
        Op::Scan(None, None, true),
    ]);
    for (name, ops) in [("mixed", mixed), ("heavy", heavy)] {
        let bytes = encode_ops(&ops);
        debug_assert_eq!(decode_ops(&bytes), ops, "db_ops seed {name}");
        add("db_ops", name, bytes);
    }

    // RocksDB tables written by RocksDB (engine/tests/fixtures/rocksdb).
    let rocks: [(&str, &[u8]); 4] = [
        (
            "v4-snappy",
            include_bytes!("../tests/fixtures/rocksdb/format_v4.sst"),
        ),
        (
            "v6-xxh3-lz4",
            include_bytes!("../tests/fixtures/rocksdb/checksum_xxh3_v6.sst"),
        ),
        (
            "v6-zstd-mixed",
            include_bytes!("../tests/fixtures/rocksdb/puts_deletes_large_empty.sst"),
        ),
        (
            "v6-range-del",
            include_bytes!("../tests/fixtures/rocksdb/db_flushed_range_del.sst"),
        ),
    ];
    for (name, bytes) in rocks {
        add("rocksdb_table", name, with(0, bytes));
        add("rocksdb_table", &format!("{name}-nocrc"), with(1, bytes));
    }
    out
}

/// `rocksdb_table`: whole RocksDB block-based tables through
/// [`crate::sst::rocksdb::RocksTable`]: open, list data blocks, range deletions, and the
/// collapsed scan. Flag bit 0 rewrites the footer's checksum type to "none" (for
/// format_version < 6 at byte `len - 53`; a v6 footer's own checksum is then skipped too), so
/// mutations get past the checksums into the decoders. A scan that succeeds yields strictly
/// increasing user keys.
pub fn rocksdb_table(data: &[u8]) {
    use crate::sst::rocksdb::{convert, RocksTable};
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut file = input.rest().to_vec();
    if flags & 1 != 0 {
        if let Some(at) = file
            .len()
            .checked_sub(crate::sst::rocksdb::footer::FOOTER_BYTES)
        {
            file[at] = 0;
        }
    }
    let Ok(t) = RocksTable::open(Arc::new(InMemoryFile(file)), PathBuf::from(NO_FILE)) else {
        return;
    };
    let _ = t.properties().num_entries();
    let _ = t.data_blocks();
    let _ = t.range_tombstones();
    let mut last: Option<Vec<u8>> = None;
    let _ = convert::collapsed(&t, |k, _| {
        if let Some(l) = &last {
            assert!(l.as_slice() < k, "collapsed keys out of order");
        }
        last = Some(k.to_vec());
        Ok(())
    });
}

/// Writes [`seeds`] under `corpus_dir/<target>/seed-<name>` (existing files are kept).
pub fn write_seeds(corpus_dir: &Path) -> std::io::Result<usize> {
    corpus::write_seeds(corpus_dir, &seeds())
}

/// The committed corpora under `fuzz/corpus/<target>/`, shared by every crate's corpus-replay
/// test (engine, replica, the fuzz crate's own) so they replay files the same way.
pub mod corpus {
    use super::Target;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::{Path, PathBuf};

    /// Writes generated seeds `(target, name, bytes)` as `root/<target>/seed-<name>` (other
    /// files are kept); returns how many.
    pub fn write_seeds<N: AsRef<str>>(
        root: &Path,
        seeds: &[(&str, N, Vec<u8>)],
    ) -> std::io::Result<usize> {
        for (target, name, bytes) in seeds {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("seed-{}", name.as_ref())), bytes)?;
        }
        Ok(seeds.len())
    }

    /// The corpus files of `target` under `root`, sorted. Panics when the directory is missing.
    pub fn files(root: &Path, target: &str) -> Vec<PathBuf> {
        let dir = root.join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }

    /// Runs every corpus file of every target through it, catching panics; returns how many
    /// files ran. Panics listing every failure, or when a target has no corpus.
    pub fn replay(root: &Path, targets: &[(&str, Target)]) -> usize {
        let mut failures = Vec::new();
        let mut count = 0;
        for (name, target) in targets {
            let files = files(root, name);
            assert!(!files.is_empty(), "corpus of {name} is empty");
            for file in files {
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
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
        count
    }

    /// Asserts that `fuzz_targets/<name>.rs` under `fuzz_dir` calls `<krate>::fuzzing::<name>(`
    /// for every target, and that each has a corpus.
    pub fn check_wrappers(fuzz_dir: &Path, krate: &str, targets: &[(&str, Target)]) {
        for (name, _) in targets {
            let wrapper = fuzz_dir.join("fuzz_targets").join(format!("{name}.rs"));
            let text = std::fs::read_to_string(&wrapper)
                .unwrap_or_else(|e| panic!("{}: {e}", wrapper.display()));
            assert!(
                text.contains(&format!("{krate}::fuzzing::{name}(")),
                "{} must call {krate}::fuzzing::{name}",
                wrapper.display()
            );
            assert!(
                !files(&fuzz_dir.join("corpus"), name).is_empty(),
                "corpus of {name} is empty"
            );
        }
    }

    /// Asserts every generated seed `(target, name, bytes)` is committed as
    /// `root/<target>/seed-<name>` with these bytes (only the length for targets in
    /// `length_only`, whose seeds carry a timestamp).
    pub fn check_seeds<N: AsRef<str>>(
        root: &Path,
        seeds: Vec<(&str, N, Vec<u8>)>,
        length_only: &[&str],
    ) {
        for (target, name, bytes) in seeds {
            let path = root.join(target).join(format!("seed-{}", name.as_ref()));
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with SILT_WRITE_FUZZ_SEEDS=1 to write the seeds)",
                    path.display()
                )
            });
            if length_only.contains(&target) {
                assert_eq!(on_disk.len(), bytes.len(), "{}", path.display());
            } else {
                assert_eq!(on_disk, bytes, "{} is stale", path.display());
            }
        }
    }
}
