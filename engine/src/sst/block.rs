//! Blocks: the unit of I/O, checksumming, compression and caching in an SST file.
//!
//! On disk every block is `contents | compression type u8 | masked crc32c u32 LE` (the CRC covers
//! contents and type). Data and index blocks hold LevelDB-style prefix-compressed entries with
//! restart points; see `docs/format.md`, "Block trailer" and "Data block".
//!
//! ```text
//! entry   := shared varint | unshared varint | value_len varint | key_delta | value
//! block   := entry* | restart u32 LE * num_restarts | num_restarts u32 LE
//! ```
//!
//! Every key in these blocks is an internal key (at least 8 bytes, kind Put or Delete); the
//! decoder checks this so that callers can compare keys with [`key::cmp_internal`] safely.

use crate::coding::{self, Cursor};
use crate::key::{self, ValueKind};
use crate::{Error, Result};
use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

/// Bytes after the contents of every block on disk: compression type (1) + CRC (4).
pub const BLOCK_TRAILER_LEN: usize = 5;

/// Compression type byte: contents stored as is.
pub const COMPRESSION_NONE: u8 = 0;
/// Compression type byte: contents are `uncompressed_len varint | zstd frame`.
pub const COMPRESSION_ZSTD: u8 = 1;
/// Compression type byte: contents are `uncompressed_len varint | lz4 block` (raw LZ4 block
/// format, no frame).
pub const COMPRESSION_LZ4: u8 = 2;

/// Most bytes one byte of an LZ4 block can expand to (a match token extended by 255-valued
/// length bytes copies at most 255 bytes per input byte). The decoder rejects a stated length
/// above `payload * MAX_LZ4_EXPANSION_RATIO + MAX_LZ4_EXPANSION_SLACK_BYTES` before allocating.
const MAX_LZ4_EXPANSION_RATIO: usize = 255;
/// Constant slack added to the LZ4 expansion bound (the minimal match and last literals).
const MAX_LZ4_EXPANSION_SLACK_BYTES: usize = 64;

/// Largest uncompressed block the decoder accepts, so a corrupt length field can never make it
/// allocate more than this.
pub const MAX_BLOCK_UNCOMPRESSED_BYTES: usize = 64 << 20;

/// Largest key + value of one entry: a block holding just it (entry header, 8-byte key
/// trailer, restart array) stays within [`MAX_BLOCK_UNCOMPRESSED_BYTES`]. Writes refuse larger
/// entries (`Db::write`, `SstWriter`), and table building cuts data blocks at that limit.
pub const MAX_ENTRY_BYTES: usize = MAX_BLOCK_UNCOMPRESSED_BYTES - 4096;

/// Entries between restart points in data blocks.
pub const DATA_RESTART_INTERVAL: usize = 16;

/// Builds one block of prefix-compressed entries (keys must be added in increasing order).
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    counter: usize,
    num_entries: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    /// A builder placing a restart point every `restart_interval` entries (at least 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            counter: 0,
            num_entries: 0,
            last_key: Vec::new(),
        }
    }

    /// Appends an entry; `key` must sort after the previous key (checked by the table builder).
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut shared = 0;
        if self.counter < self.restart_interval {
            let max = self.last_key.len().min(key.len());
            while shared < max && self.last_key[shared] == key[shared] {
                shared += 1;
            }
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
        }
        let unshared = key.len() - shared;
        coding::put_varint(&mut self.buf, shared as u64);
        coding::put_varint(&mut self.buf, unshared as u64);
        coding::put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
        self.num_entries += 1;
    }

    /// Size of the block if finished now.
    pub fn size_estimate(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    /// True when no entry was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.num_entries == 0
    }

    /// Entries added since the last reset.
    pub fn num_entries(&self) -> usize {
        self.num_entries
    }

    /// The last key added.
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the finished contents; call [`Self::reset`] next.
    pub fn finish(&mut self) -> &[u8] {
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        &self.buf
    }

    /// Empties the builder, keeping its buffers.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.num_entries = 0;
        self.last_key.clear();
    }
}

/// Appends `contents` as an on-disk block (`contents | type | crc`) to `out`.
pub fn append_block(out: &mut Vec<u8>, contents: &[u8], compression_type: u8) {
    let crc = coding::crc32c_masked(&[contents, &[compression_type]]);
    out.extend_from_slice(contents);
    out.push(compression_type);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Checks the trailer of an on-disk block (`raw` = contents + trailer) and returns the
/// uncompressed contents. `file` and `offset` name the block in errors.
pub fn unwrap_block(
    file: &Path,
    offset: u64,
    raw: &[u8],
    verify_checksum: bool,
) -> Result<Vec<u8>> {
    let (body_len, ctype) = check_trailer(file, offset, raw, verify_checksum)?;
    let contents = &raw[..body_len];
    match ctype {
        COMPRESSION_NONE => Ok(contents.to_vec()),
        _ => decompress(file, offset, contents, ctype),
    }
}

/// [`unwrap_block`] that takes the buffer it reads: an uncompressed block keeps it (cut to
/// its contents) instead of copying, which is what the read path does for every block miss.
pub fn unwrap_block_owned(
    file: &Path,
    offset: u64,
    mut raw: Vec<u8>,
    verify_checksum: bool,
) -> Result<Vec<u8>> {
    let (body_len, ctype) = check_trailer(file, offset, &raw, verify_checksum)?;
    match ctype {
        COMPRESSION_NONE => {
            raw.truncate(body_len);
            Ok(raw)
        }
        _ => decompress(file, offset, &raw[..body_len], ctype),
    }
}

/// Validates the trailer (and, when asked, the checksum): the contents' length and the
/// compression type.
fn check_trailer(
    file: &Path,
    offset: u64,
    raw: &[u8],
    verify_checksum: bool,
) -> Result<(usize, u8)> {
    let Some(body_len) = raw.len().checked_sub(BLOCK_TRAILER_LEN) else {
        return Err(Error::corruption(
            file,
            offset,
            format!("block of {} bytes is shorter than its trailer", raw.len()),
        ));
    };
    let ctype = raw[body_len];
    if verify_checksum {
        let stored = coding::u32_at(raw, body_len + 1).unwrap_or(0);
        let actual = coding::crc32c_masked(&[&raw[..body_len], &[ctype]]);
        if stored != actual {
            return Err(Error::corruption(
                file,
                offset,
                format!("block checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
            ));
        }
    }
    Ok((body_len, ctype))
}

/// Decompresses the contents of a block of compression type `ctype` (not `NONE`).
fn decompress(file: &Path, offset: u64, contents: &[u8], ctype: u8) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::corruption(file, offset, reason);
    match ctype {
        COMPRESSION_ZSTD => decompress_zstd(contents).map_err(corrupt),
        COMPRESSION_LZ4 => decompress_lz4(contents).map_err(corrupt),
        t => Err(corrupt(format!("unknown block compression type {t}"))),
    }
}

/// Decompresses `uncompressed_len varint | zstd frame`, refusing lengths above
/// [`MAX_BLOCK_UNCOMPRESSED_BYTES`] before allocating.
fn decompress_zstd(payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut c = Cursor::new(payload);
    let len = c.varint().ok_or("zstd block: bad uncompressed length")?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_BLOCK_UNCOMPRESSED_BYTES {
        return Err(format!(
            "zstd block: uncompressed length {len} above the {MAX_BLOCK_UNCOMPRESSED_BYTES} byte limit"
        ));
    }
    let frame = &payload[c.pos()..];
    let mut out = Vec::with_capacity(len);
    let n = thread_local_decompress(frame, &mut out)
        .map_err(|e| format!("zstd block: decompression failed: {e}"))?;
    if n != len {
        return Err(format!(
            "zstd block: decompressed {n} bytes, header says {len}"
        ));
    }
    Ok(out)
}

/// Decompresses `uncompressed_len varint | lz4 block`, refusing lengths above
/// [`MAX_BLOCK_UNCOMPRESSED_BYTES`] or beyond what the payload could expand to before
/// allocating, and requiring the block to decode to exactly that length.
fn decompress_lz4(payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut c = Cursor::new(payload);
    let len = c.varint().ok_or("lz4 block: bad uncompressed length")?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_BLOCK_UNCOMPRESSED_BYTES {
        return Err(format!(
            "lz4 block: uncompressed length {len} above the {MAX_BLOCK_UNCOMPRESSED_BYTES} byte limit"
        ));
    }
    let body = &payload[c.pos()..];
    let bound = body
        .len()
        .saturating_mul(MAX_LZ4_EXPANSION_RATIO)
        .saturating_add(MAX_LZ4_EXPANSION_SLACK_BYTES);
    if len > bound {
        return Err(format!(
            "lz4 block: uncompressed length {len} impossible for {} compressed bytes",
            body.len()
        ));
    }
    let mut out = vec![0u8; len];
    let n = lz4_flex::block::decompress_into(body, &mut out)
        .map_err(|e| format!("lz4 block: decompression failed: {e}"))?;
    if n != len {
        return Err(format!(
            "lz4 block: decompressed {n} bytes, header says {len}"
        ));
    }
    Ok(out)
}

fn thread_local_decompress(frame: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(frame, out),
            None => Err(std::io::Error::other("no zstd decompressor")),
        }
    })
}

/// Decodes an on-disk block (contents + trailer) into a searchable [`Block`]. The entry point for
/// fuzzing: any input yields `Ok` or [`Error::Corruption`].
pub fn decode_block(file: &Path, offset: u64, raw: &[u8], verify_checksum: bool) -> Result<Block> {
    let contents = unwrap_block(file, offset, raw, verify_checksum)?;
    Block::new(contents).map_err(|reason| Error::corruption(file, offset, reason))
}

/// [`decode_block`] over a buffer it may keep (see [`unwrap_block_owned`]).
pub fn decode_block_owned(
    file: &Path,
    offset: u64,
    raw: Vec<u8>,
    verify_checksum: bool,
) -> Result<Block> {
    let contents = unwrap_block_owned(file, offset, raw, verify_checksum)?;
    Block::new(contents).map_err(|reason| Error::corruption(file, offset, reason))
}

/// A decoded block of prefix-compressed entries, ready for search.
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    /// Offset of the restart array = end of the entries.
    restarts_offset: usize,
    num_restarts: usize,
    /// The key of every restart entry as `(start, end)` offsets into `data`, decoded once when
    /// the block is built so that a seek's binary search compares slices without parsing
    /// headers; [`BAD_RESTART_KEY`] for a malformed restart entry (reported when a seek meets
    /// it, as before).
    restart_keys: Vec<(u32, u32)>,
}

/// Marks a restart entry whose key could not be decoded.
const BAD_RESTART_KEY: (u32, u32) = (u32::MAX, u32::MAX);

impl Block {
    /// Validates the restart array of uncompressed block contents.
    pub fn new(data: Vec<u8>) -> std::result::Result<Block, String> {
        let len = data.len();
        let n = coding::u32_at(&data, len.wrapping_sub(4)).ok_or("block shorter than 4 bytes")?;
        let n = n as usize;
        let restarts_offset = n
            .checked_mul(4)
            .and_then(|b| len.checked_sub(4 + b))
            .ok_or_else(|| format!("block of {len} bytes cannot hold {n} restart points"))?;
        if n == 0 {
            return Err("block has no restart points".into());
        }
        let mut prev = None;
        for i in 0..n {
            let r = coding::u32_at(&data, restarts_offset + 4 * i).unwrap_or(u32::MAX) as usize;
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p && r < restarts_offset,
            };
            if !ok {
                return Err(format!(
                    "restart point {i} at {r} out of order or out of bounds"
                ));
            }
            prev = Some(r);
        }
        let mut block = Block {
            data,
            restarts_offset,
            num_restarts: n,
            restart_keys: Vec::new(),
        };
        let keys = (0..n)
            .map(|i| {
                let at = block.restart_point(i);
                block
                    .entry_header(at)
                    .filter(|h| h.shared == 0)
                    .filter(|h| valid_point_key(&block.data[h.key_delta.0..h.key_delta.1]))
                    // Both offsets are below `restarts_offset`, which came from a u32 count.
                    .and_then(|h| {
                        Some((
                            u32::try_from(h.key_delta.0).ok()?,
                            u32::try_from(h.key_delta.1).ok()?,
                        ))
                    })
                    .unwrap_or(BAD_RESTART_KEY)
            })
            .collect();
        block.restart_keys = keys;
        Ok(block)
    }

    /// Uncompressed size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    /// Memory held: the contents plus the decoded restart keys (what the block cache charges).
    pub fn memory_bytes(&self) -> usize {
        self.data.len() + self.restart_keys.len() * std::mem::size_of::<(u32, u32)>()
    }

    /// The key of restart entry `index`, if that entry is well formed.
    #[inline]
    fn restart_key(&self, index: usize) -> Option<&[u8]> {
        let (start, end) = *self.restart_keys.get(index)?;
        if (start, end) == BAD_RESTART_KEY {
            return None;
        }
        self.data.get(start as usize..end as usize)
    }

    /// Decodes the header of the entry at `at`; `None` when it does not fit in the entries.
    #[inline]
    fn entry_header(&self, at: usize) -> Option<EntryHeader> {
        let region = self.data.get(at..self.restarts_offset)?;
        let mut c = Cursor::new(region);
        let shared = usize::try_from(c.varint()?).ok()?;
        let unshared = usize::try_from(c.varint()?).ok()?;
        let value_len = usize::try_from(c.varint()?).ok()?;
        let key_start = at + c.pos();
        let key_end = key_start.checked_add(unshared)?;
        let value_end = key_end.checked_add(value_len)?;
        if value_end > self.restarts_offset {
            return None;
        }
        Some(EntryHeader {
            shared,
            key_delta: (key_start, key_end),
            value: (key_end, value_end),
            next: value_end,
        })
    }

    /// True when the block holds no entries.
    pub fn is_empty(&self) -> bool {
        self.restarts_offset == 0
    }

    fn restart_point(&self, i: usize) -> usize {
        coding::u32_at(&self.data, self.restarts_offset + 4 * i).unwrap_or(0) as usize
    }
}

/// Decoded header of one entry.
struct EntryHeader {
    shared: usize,
    key_delta: (usize, usize),
    value: (usize, usize),
    next: usize,
}

/// A cursor over one [`Block`]. Corrupt entries make it invalid and are reported by
/// [`BlockIter::corruption`].
#[derive(Debug)]
pub struct BlockIter {
    block: Arc<Block>,
    /// Offset of the current entry; `restarts_offset` when past the end.
    current: usize,
    /// Offset of the entry after the current one.
    next_offset: usize,
    /// Index of the restart region holding the current entry.
    restart_index: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
    error: Option<String>,
    /// Entries of one restart run decoded by the last backward step, so that stepping back
    /// through that run costs one key copy per step instead of a re-decode from the restart
    /// point (RocksDB's prev cache). Keyed by entry offset: the block never changes, so a
    /// cached entry is valid for as long as the iterator lives.
    prev_entries: Vec<PrevEntry>,
    /// The full keys of `prev_entries`, back to back.
    prev_keys: Vec<u8>,
    /// The restart run `prev_entries` belong to.
    prev_run: usize,
}

/// One decoded entry of the prev cache.
#[derive(Debug, Clone, Copy)]
struct PrevEntry {
    at: usize,
    key: (usize, usize),
    value: (usize, usize),
    next: usize,
}

impl BlockIter {
    /// A cursor over `block`, not positioned.
    pub fn new(block: Arc<Block>) -> Self {
        let end = block.restarts_offset;
        BlockIter {
            block,
            current: end,
            next_offset: end,
            restart_index: 0,
            key: Vec::new(),
            value: (0, 0),
            valid: false,
            error: None,
            prev_entries: Vec::new(),
            prev_keys: Vec::new(),
            prev_run: 0,
        }
    }

    /// True when positioned on an entry.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// What made the iterator invalid, if it met a corrupt entry.
    pub fn corruption(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Current key. Requires `valid()`.
    pub fn key(&self) -> &[u8] {
        debug_assert!(self.valid);
        &self.key
    }

    /// Current value. Requires `valid()`.
    pub fn value(&self) -> &[u8] {
        debug_assert!(self.valid);
        &self.block.data[self.value.0..self.value.1]
    }

    fn fail(&mut self, reason: String) {
        if self.error.is_none() {
            self.error = Some(reason);
        }
        self.valid = false;
        self.current = self.block.restarts_offset;
    }

    /// Decodes the entry at `at`, whose predecessor's key is in `self.key` (ignored at restarts).
    fn decode_at(&mut self, at: usize) -> bool {
        if at >= self.block.restarts_offset {
            self.valid = false;
            self.current = self.block.restarts_offset;
            return false;
        }
        let Some(h) = self.block.entry_header(at) else {
            self.fail(format!("bad entry header at block offset {at}"));
            return false;
        };
        if h.shared > self.key.len() {
            self.fail(format!(
                "entry at block offset {at} shares {} bytes of a {}-byte key",
                h.shared,
                self.key.len()
            ));
            return false;
        }
        self.key.truncate(h.shared);
        self.key
            .extend_from_slice(&self.block.data[h.key_delta.0..h.key_delta.1]);
        if !valid_point_key(&self.key) {
            self.fail(format!(
                "entry at block offset {at} has a malformed internal key"
            ));
            return false;
        }
        self.current = at;
        self.next_offset = h.next;
        self.value = h.value;
        self.valid = true;
        while self.restart_index + 1 < self.block.num_restarts
            && self.block.restart_point(self.restart_index + 1) <= at
        {
            self.restart_index += 1;
        }
        true
    }

    fn seek_to_restart(&mut self, index: usize) -> bool {
        self.key.clear();
        self.restart_index = index;
        let at = self.block.restart_point(index);
        match self.block.entry_header(at) {
            Some(h) if h.shared == 0 => self.decode_at(at),
            _ if at >= self.block.restarts_offset => {
                self.valid = false;
                false
            }
            _ => {
                self.fail(format!("restart entry at block offset {at} is malformed"));
                false
            }
        }
    }

    /// Positions on the first entry.
    pub fn seek_to_first(&mut self) {
        if self.error.is_some() {
            return;
        }
        self.seek_to_restart(0);
    }

    /// Positions on the last entry.
    pub fn seek_to_last(&mut self) {
        if self.error.is_some() {
            return;
        }
        if !self.seek_to_restart(self.block.num_restarts - 1) {
            return;
        }
        while self.next_offset < self.block.restarts_offset {
            if !self.decode_at(self.next_offset) {
                return;
            }
        }
    }

    /// Moves to the next entry. Requires `valid()`.
    pub fn next(&mut self) {
        debug_assert!(self.valid);
        let at = self.next_offset;
        self.decode_at(at);
    }

    /// Moves to the previous entry. Requires `valid()`.
    pub fn prev(&mut self) {
        debug_assert!(self.valid);
        let original = self.current;
        if let Ok(i) = self.prev_entries.binary_search_by_key(&original, |e| e.at) {
            if i > 0 {
                let e = self.prev_entries[i - 1];
                self.key.clear();
                self.key
                    .extend_from_slice(&self.prev_keys[e.key.0..e.key.1]);
                self.current = e.at;
                self.next_offset = e.next;
                self.value = e.value;
                self.restart_index = self.prev_run;
                self.valid = true;
                return;
            }
        }
        // Find the restart region that starts before the current entry.
        let mut index = self.restart_index;
        while self.block.restart_point(index) >= original {
            if index == 0 {
                self.valid = false;
                self.current = self.block.restarts_offset;
                return;
            }
            index -= 1;
        }
        // Decode the run up to the entry before `original`, remembering every entry.
        self.prev_entries.clear();
        self.prev_keys.clear();
        self.prev_run = index;
        if !self.seek_to_restart(index) {
            return;
        }
        self.remember_for_prev();
        while self.next_offset < original {
            if !self.decode_at(self.next_offset) {
                self.prev_entries.clear();
                return;
            }
            self.remember_for_prev();
        }
    }

    fn remember_for_prev(&mut self) {
        let start = self.prev_keys.len();
        self.prev_keys.extend_from_slice(&self.key);
        self.prev_entries.push(PrevEntry {
            at: self.current,
            key: (start, self.prev_keys.len()),
            value: self.value,
            next: self.next_offset,
        });
    }

    /// Positions on the first entry with key `>= target` (internal-key order).
    pub fn seek(&mut self, target: &[u8]) {
        if self.error.is_some() || self.block.is_empty() {
            self.valid = false;
            return;
        }
        // Binary search for the last restart point whose key is < target, comparing the keys
        // in place (a restart entry stores its whole key): no decoding, no copies.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let Some(ord) = self
                .block
                .restart_key(mid)
                .map(|k| key::cmp_internal(k, target))
            else {
                let at = self.block.restart_point(mid);
                self.fail(format!("restart entry at block offset {at} is malformed"));
                return;
            };
            if ord == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if !self.seek_to_restart(lo) {
            return;
        }
        while key::cmp_internal(&self.key, target) == Ordering::Less {
            if !self.decode_at(self.next_offset) {
                return;
            }
        }
    }

    /// Positions on the last entry with key `<= target` (internal-key order).
    pub fn seek_for_prev(&mut self, target: &[u8]) {
        self.seek(target);
        if self.valid {
            if key::cmp_internal(&self.key, target) == Ordering::Greater {
                self.prev();
            }
        } else if self.error.is_none() {
            self.seek_to_last();
        }
    }
}

/// True for a well-formed point key: at least a trailer long, kind Put or Delete.
pub(crate) fn valid_point_key(ikey: &[u8]) -> bool {
    match key::parse(ikey) {
        Some((_, _, kind)) => kind != ValueKind::RangeDelete,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use rand::{Rng, SeedableRng};

    fn build(entries: &[(Vec<u8>, Vec<u8>)], interval: usize) -> Arc<Block> {
        let mut b = BlockBuilder::new(interval);
        for (k, v) in entries {
            b.add(k, v);
        }
        let mut raw = Vec::new();
        append_block(&mut raw, b.finish(), COMPRESSION_NONE);
        Arc::new(decode_block(Path::new("t"), 0, &raw, true).unwrap())
    }

    fn random_entries(seed: u64, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut keys: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let len = rng.gen_range(0..12);
                let u: Vec<u8> = (0..len).map(|_| rng.gen_range(b'a'..b'e')).collect();
                internal_key(&u, rng.gen_range(0..5), ValueKind::Put)
            })
            .collect();
        keys.sort_by(|a, b| key::cmp_internal(a, b));
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let v = vec![rng.gen::<u8>(); rng.gen_range(0..20)];
                (k, v)
            })
            .collect()
    }

    #[test]
    fn round_trip_seek_both_directions() {
        for (seed, n, interval) in [
            (1, 200, 16),
            (2, 33, 1),
            (3, 17, 16),
            (4, 1, 16),
            (5, 500, 3),
        ] {
            let entries = random_entries(seed, n);
            let block = build(&entries, interval);
            let mut it = BlockIter::new(block);
            // Forward.
            it.seek_to_first();
            for (k, v) in &entries {
                assert!(it.valid());
                assert_eq!(it.key(), &k[..]);
                assert_eq!(it.value(), &v[..]);
                it.next();
            }
            assert!(!it.valid());
            // Backward.
            it.seek_to_last();
            for (k, v) in entries.iter().rev() {
                assert!(it.valid());
                assert_eq!(it.key(), &k[..]);
                assert_eq!(it.value(), &v[..]);
                it.prev();
            }
            assert!(!it.valid());
            // Seek each key, and a key just before/after it.
            for (i, (k, _)) in entries.iter().enumerate() {
                it.seek(k);
                assert_eq!(it.key(), &k[..]);
                it.seek_for_prev(k);
                assert_eq!(it.key(), &k[..]);
                let before = key::seek_key(key::user_key(k), key::MAX_SEQNO);
                it.seek(&before);
                let expect = entries
                    .iter()
                    .position(|(e, _)| key::cmp_internal(e, &before).is_ge());
                assert_eq!(
                    it.valid().then(|| it.key().to_vec()),
                    expect.map(|p| entries[p].0.clone())
                );
                it.seek_for_prev(&before);
                let expect = entries
                    .iter()
                    .rposition(|(e, _)| key::cmp_internal(e, &before).is_le());
                assert_eq!(
                    it.valid().then(|| it.key().to_vec()),
                    expect.map(|p| entries[p].0.clone()),
                    "{i}"
                );
            }
            assert!(it.corruption().is_none());
        }
    }

    #[test]
    fn random_walk_of_next_prev_and_seeks_matches_the_entries() {
        // Mixes directions so the prev cache is used, reused after forward steps, and rebuilt
        // across restart runs.
        for (seed, n, interval) in [(11, 300, 16), (12, 64, 4), (13, 40, 1), (14, 9, 16)] {
            let entries = random_entries(seed, n);
            let mut it = BlockIter::new(build(&entries, interval));
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut pos: Option<usize> = None;
            for step in 0..5_000 {
                match rng.gen_range(0..10) {
                    0 => {
                        let i = rng.gen_range(0..entries.len());
                        it.seek(&entries[i].0);
                        pos = Some(i);
                    }
                    1 => {
                        it.seek_to_last();
                        pos = entries.len().checked_sub(1);
                    }
                    2..=5 if pos.is_some() => {
                        it.prev();
                        pos = pos.and_then(|p| p.checked_sub(1));
                    }
                    _ if pos.is_some() => {
                        it.next();
                        pos = pos.map(|p| p + 1).filter(|p| *p < entries.len());
                    }
                    _ => {
                        it.seek_to_first();
                        pos = (!entries.is_empty()).then_some(0);
                    }
                }
                assert_eq!(it.valid(), pos.is_some(), "seed {seed} step {step}");
                if let Some(p) = pos {
                    assert_eq!(it.key(), &entries[p].0[..], "seed {seed} step {step}");
                    assert_eq!(it.value(), &entries[p].1[..], "seed {seed} step {step}");
                }
            }
            assert!(it.corruption().is_none());
        }
    }

    #[test]
    fn worked_example_in_format_md() {
        let mut b = BlockBuilder::new(16);
        b.add(&internal_key(b"apple", 5, ValueKind::Put), b"red");
        b.add(&internal_key(b"apply", 4, ValueKind::Put), b"");
        let expect: Vec<u8> = [
            &[0x00, 0x0d, 0x03][..],
            b"apple",
            &[1, 5, 0, 0, 0, 0, 0, 0],
            b"red",
            &[0x04, 0x09, 0x00],
            b"y",
            &[1, 4, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0, 1, 0, 0, 0],
        ]
        .concat();
        assert_eq!(b.finish(), &expect[..]);
    }

    #[test]
    fn empty_block() {
        let block = build(&[], 16);
        assert!(block.is_empty());
        let mut it = BlockIter::new(block);
        it.seek_to_first();
        assert!(!it.valid());
        it.seek_to_last();
        assert!(!it.valid());
        it.seek(&internal_key(b"a", 1, ValueKind::Put));
        assert!(!it.valid());
        assert!(it.corruption().is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let entries = random_entries(9, 60);
        let mut b = BlockBuilder::new(4);
        for (k, v) in &entries {
            b.add(k, v);
        }
        let good = b.finish().to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for i in 0..2000 {
            let mut data = good.clone();
            match i % 3 {
                0 => {
                    let p = rng.gen_range(0..data.len());
                    data[p] ^= 1 << rng.gen_range(0..8);
                }
                1 => data.truncate(rng.gen_range(0..data.len())),
                _ => {
                    for _ in 0..4 {
                        let p = rng.gen_range(0..data.len());
                        data[p] = rng.gen();
                    }
                }
            }
            let Ok(block) = Block::new(data) else {
                continue;
            };
            let mut it = BlockIter::new(Arc::new(block));
            it.seek_to_first();
            let mut n = 0;
            while it.valid() && n < 1000 {
                it.next();
                n += 1;
            }
            it.seek_to_last();
            while it.valid() && n < 2000 {
                it.prev();
                n += 1;
            }
            it.seek(&entries[30].0);
            it.seek_for_prev(&entries[30].0);
        }
    }

    #[test]
    fn zstd_length_is_capped() {
        let mut payload = Vec::new();
        coding::put_varint(&mut payload, 1 << 40);
        payload.extend_from_slice(&[0u8; 8]);
        let mut raw = Vec::new();
        append_block(&mut raw, &payload, COMPRESSION_ZSTD);
        let e = decode_block(Path::new("f"), 42, &raw, true).unwrap_err();
        assert!(e.is_corruption(), "{e}");
    }

    #[test]
    fn lz4_length_is_capped() {
        for len in [
            1u64 << 40,
            (MAX_BLOCK_UNCOMPRESSED_BYTES + 1) as u64,
            100_000,
        ] {
            let mut payload = Vec::new();
            coding::put_varint(&mut payload, len);
            payload.extend_from_slice(&[0u8; 8]);
            let mut raw = Vec::new();
            append_block(&mut raw, &payload, COMPRESSION_LZ4);
            let e = decode_block(Path::new("f"), 42, &raw, true).unwrap_err();
            assert!(e.is_corruption(), "{e}");
        }
    }

    #[test]
    fn lz4_round_trip_and_damage() {
        let mut b = BlockBuilder::new(4);
        for i in 0..200u32 {
            let k = key::internal_key(format!("k{i:05}").as_bytes(), 9, ValueKind::Put);
            b.add(&k, &[b'v'; 40]);
        }
        let contents = b.finish().to_vec();
        let mut payload = Vec::new();
        coding::put_varint(&mut payload, contents.len() as u64);
        payload.extend_from_slice(&lz4_flex::block::compress(&contents));
        assert!(payload.len() * 4 < contents.len());
        let mut raw = Vec::new();
        append_block(&mut raw, &payload, COMPRESSION_LZ4);
        let block = decode_block(Path::new("f"), 0, &raw, true).unwrap();
        assert_eq!(block.size_bytes(), contents.len());
        // Every single-byte change of the payload (CRC made to match) decodes or is corruption.
        let mut corrupt = 0;
        for i in 0..payload.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut p = payload.clone();
                p[i] ^= x;
                let mut raw = Vec::new();
                append_block(&mut raw, &p, COMPRESSION_LZ4);
                match decode_block(Path::new("f"), 7, &raw, true) {
                    Ok(b) => {
                        let mut it = BlockIter::new(Arc::new(b));
                        it.seek_to_first();
                        while it.valid() {
                            it.next();
                        }
                    }
                    Err(e) => {
                        assert!(e.is_corruption(), "{e}");
                        corrupt += 1;
                    }
                }
            }
        }
        assert!(corrupt > 0);
        // Truncations too.
        for cut in 0..payload.len() {
            let mut raw = Vec::new();
            append_block(&mut raw, &payload[..cut], COMPRESSION_LZ4);
            let e = decode_block(Path::new("f"), 7, &raw, true).unwrap_err();
            assert!(e.is_corruption(), "{e}");
        }
    }
}
