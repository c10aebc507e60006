//! Reads SST files: [`Table`] (open, point lookups, verification) and [`TableIter`].
//!
//! An open table keeps its footer, index block, filter, range tombstones and properties in
//! memory; data blocks come from the [`BlockCache`] or the file. Every offset and length read
//! from the file is bounds-checked against the file size before use, and every decoder turns
//! bad bytes into [`Error::Corruption`] naming the file and the block offset.
//!
//! Global seqno: a file ingested from an [`crate::SstWriter`] is written with seqno 0 and given a
//! seqno at ingestion. With `global_seqno = Some(g)` every key, tombstone and key bound this
//! reader exposes carries seqno `g` (trailer rewritten to `g << 8 | kind`).

use super::block::{self, Block, BlockIter};
use super::cache::BlockCache;
use super::filter::BloomFilter;
use super::footer::{BlockHandle, Footer, FOOTER_LEN};
use super::properties::Properties;
use super::range_del;
use crate::fs::RandomAccessFile;
use crate::iter::InternalIterator;
use crate::key::{self, RangeTombstone, MAX_SEQNO};
use crate::{Error, Result};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Per-read behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFlags {
    /// Check data block CRCs (meta blocks are always checked at open).
    pub verify_checksums: bool,
    /// Insert data blocks read from the file into the block cache.
    pub fill_cache: bool,
}

impl Default for ReadFlags {
    fn default() -> Self {
        ReadFlags {
            verify_checksums: true,
            fill_cache: true,
        }
    }
}

impl From<&crate::ReadOptions> for ReadFlags {
    fn from(o: &crate::ReadOptions) -> Self {
        ReadFlags {
            verify_checksums: o.verify_checksums,
            fill_cache: o.fill_cache,
        }
    }
}

/// An open SST file.
pub struct Table {
    file: Arc<dyn RandomAccessFile>,
    path: PathBuf,
    file_size: u64,
    footer: Footer,
    index: Arc<Block>,
    filter: Option<BloomFilter>,
    tombstones: Vec<RangeTombstone>,
    /// Properties as exposed (global seqno applied).
    properties: Properties,
    /// Key bounds as stored, for [`Table::verify`].
    stored_bounds: (Vec<u8>, Vec<u8>),
    cache: Option<Arc<BlockCache>>,
    cache_id: u64,
    global_seqno: Option<u64>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("file_size", &self.file_size)
            .field("global_seqno", &self.global_seqno)
            .finish()
    }
}

impl Table {
    /// Opens a table: reads and validates the footer, index, filter, range-deletion and
    /// properties blocks. `global_seqno`: see the module docs.
    pub fn open(
        file: Arc<dyn RandomAccessFile>,
        path: PathBuf,
        cache: Option<Arc<BlockCache>>,
        global_seqno: Option<u64>,
    ) -> Result<Arc<Table>> {
        if let Some(g) = global_seqno {
            if g > MAX_SEQNO {
                return Err(Error::InvalidArgument(format!(
                    "global seqno {g} for {} is above the maximum seqno",
                    path.display()
                )));
            }
        }
        let file_size = file.size();
        let Some(meta_end) = file_size.checked_sub(FOOTER_LEN as u64) else {
            return Err(Error::corruption(
                &path,
                0,
                format!("file of {file_size} bytes is shorter than the {FOOTER_LEN}-byte footer"),
            ));
        };
        let mut raw = vec![0u8; FOOTER_LEN];
        file.read_at(meta_end, &mut raw)
            .map_err(|e| Error::io(&path, e))?;
        let footer =
            Footer::decode(&raw).map_err(|reason| Error::corruption(&path, meta_end, reason))?;
        let ctx = OpenCtx {
            file: &*file,
            path: &path,
            limit: meta_end,
        };

        let props_raw = ctx.read_meta(footer.properties, "properties")?;
        let mut properties = Properties::decode(&props_raw)
            .map_err(|r| ctx.corrupt(footer.properties, format!("properties block: {r}")))?;
        properties.format_version = footer.format_version;
        let data_limit = [footer.properties, footer.index, footer.range_del]
            .iter()
            .chain((footer.filter.size > 0).then_some(&footer.filter))
            .map(|h| h.offset)
            .min()
            .unwrap_or(meta_end);
        if properties.data_size > data_limit {
            return Err(ctx.corrupt(footer.properties, "data size overlaps meta blocks".into()));
        }

        let index_raw = ctx.read_raw(footer.index, "index")?;
        let index = block::decode_block(&path, footer.index.offset, &index_raw, true)?;

        let filter = if footer.filter.size == 0 {
            None
        } else {
            let raw = ctx.read_meta(footer.filter, "filter")?;
            Some(
                BloomFilter::decode(raw)
                    .map_err(|r| ctx.corrupt(footer.filter, format!("filter block: {r}")))?,
            )
        };

        let rd_raw = ctx.read_meta(footer.range_del, "range-deletion")?;
        let mut tombstones = range_del::decode(&rd_raw)
            .map_err(|r| ctx.corrupt(footer.range_del, format!("range-deletion block: {r}")))?;
        if tombstones.len() as u64 != properties.num_range_tombstones {
            return Err(ctx.corrupt(
                footer.range_del,
                format!(
                    "{} range tombstones, properties say {}",
                    tombstones.len(),
                    properties.num_range_tombstones
                ),
            ));
        }

        let stored_bounds = (properties.smallest.clone(), properties.largest.clone());
        if let Some(g) = global_seqno {
            apply_global_seqno(&mut properties, &mut tombstones, g);
        }
        let cache_id = cache.as_ref().map_or(0, |c| c.next_cache_id());
        Ok(Arc::new(Table {
            file,
            path,
            file_size,
            footer,
            index: Arc::new(index),
            filter,
            tombstones,
            properties,
            stored_bounds,
            cache,
            cache_id,
            global_seqno,
        }))
    }

    /// What the file says about itself (global seqno applied to keys and seqnos).
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// The file's range tombstones, sorted by start (global seqno applied).
    pub fn range_tombstones(&self) -> &[RangeTombstone] {
        &self.tombstones
    }

    /// False only if the file holds no entry for `user_key` (bloom filter).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(user_key))
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The global seqno this table was opened with.
    pub fn global_seqno(&self) -> Option<u64> {
        self.global_seqno
    }

    /// The first entry with internal key `>= lookup` whose user key equals that of `lookup`,
    /// with the global seqno applied, or `None`. Consults the bloom filter first.
    pub fn get(&self, lookup: &[u8], flags: ReadFlags) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let user = key::user_key(lookup);
        if !self.may_contain(user) {
            return Ok(None);
        }
        let stored_target;
        let target = match self.global_seqno {
            Some(_) => {
                stored_target = key::seek_key(user, MAX_SEQNO);
                &stored_target[..]
            }
            None => lookup,
        };
        let mut index = BlockIter::new(self.index.clone());
        index.seek(target);
        let mut first_block = true;
        while index.valid() {
            let (offset, block) = self.data_block(index.value(), flags)?;
            let mut it = BlockIter::new(block);
            if first_block {
                it.seek(target);
            } else {
                it.seek_to_first();
            }
            first_block = false;
            while it.valid() {
                if key::user_key(it.key()) != user {
                    return Ok(None);
                }
                let found = self.exposed_key(it.key());
                if key::cmp_internal(&found, lookup) != Ordering::Less {
                    return Ok(Some((found, it.value().to_vec())));
                }
                it.next();
            }
            if let Some(r) = it.corruption() {
                return Err(Error::corruption(&self.path, offset, r));
            }
            index.next();
        }
        match index.corruption() {
            Some(r) => Err(Error::corruption(&self.path, self.footer.index.offset, r)),
            None => Ok(None),
        }
    }

    fn exposed_key(&self, stored: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(stored.len());
        match self.global_seqno {
            Some(g) => patch_into(&mut out, stored, g),
            None => out.extend_from_slice(stored),
        }
        out
    }

    /// An iterator over the table's point entries (both directions).
    pub fn iter(self: &Arc<Self>, flags: ReadFlags) -> TableIter {
        TableIter {
            index: BlockIter::new(self.index.clone()),
            table: self.clone(),
            flags,
            data: None,
            data_offset: 0,
            err: None,
            key_buf: Vec::new(),
            seek_buf: Vec::new(),
        }
    }

    /// Reads the data block named by an index value, through the cache. Returns its offset too.
    fn data_block(&self, handle_bytes: &[u8], flags: ReadFlags) -> Result<(u64, Arc<Block>)> {
        let index_offset = self.footer.index.offset;
        let handle = BlockHandle::decode_varint(handle_bytes).ok_or_else(|| {
            Error::corruption(&self.path, index_offset, "malformed block handle in index")
        })?;
        let in_bounds = handle
            .end_with_trailer()
            .is_some_and(|end| end <= self.properties.data_size);
        if !in_bounds {
            return Err(Error::corruption(
                &self.path,
                index_offset,
                format!(
                    "index points at block {}+{} beyond the data area ({} bytes)",
                    handle.offset, handle.size, self.properties.data_size
                ),
            ));
        }
        if let Some(cache) = &self.cache {
            if let Some(b) = cache.get(self.cache_id, handle.offset) {
                return Ok((handle.offset, b));
            }
        }
        let mut raw = vec![0u8; (handle.size as usize) + block::BLOCK_TRAILER_LEN];
        self.file
            .read_at(handle.offset, &mut raw)
            .map_err(|e| Error::io(&self.path, e))?;
        let b = Arc::new(block::decode_block_owned(
            &self.path,
            handle.offset,
            raw,
            flags.verify_checksums,
        )?);
        // Unverified blocks stay out of the cache so a later verifying reader re-checks them.
        if flags.fill_cache && flags.verify_checksums {
            if let Some(cache) = &self.cache {
                cache.insert(self.cache_id, handle.offset, b.clone());
            }
        }
        Ok((handle.offset, b))
    }

    /// Reads every data block: checksums, decodes, checks keys strictly increasing, consistent
    /// with the index and within the properties' bounds. Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        let flags = ReadFlags {
            verify_checksums: true,
            fill_cache: false,
        };
        let corrupt = |offset: u64, r: String| Error::corruption(&self.path, offset, r);
        let mut index = BlockIter::new(self.index.clone());
        index.seek_to_first();
        let (mut count, mut blocks) = (0u64, 0u64);
        let mut prev: Vec<u8> = Vec::new();
        let mut first: Option<Vec<u8>> = None;
        while index.valid() {
            let (offset, block) = self.data_block(index.value(), flags)?;
            let mut it = BlockIter::new(block);
            it.seek_to_first();
            if !it.valid() && it.corruption().is_none() {
                return Err(corrupt(offset, "empty data block".into()));
            }
            while it.valid() {
                if count > 0 && key::cmp_internal(&prev, it.key()) != Ordering::Less {
                    return Err(corrupt(offset, "keys not strictly increasing".into()));
                }
                if first.is_none() {
                    first = Some(it.key().to_vec());
                }
                prev.clear();
                prev.extend_from_slice(it.key());
                count += 1;
                it.next();
            }
            if let Some(r) = it.corruption() {
                return Err(corrupt(offset, r.to_string()));
            }
            if key::cmp_internal(index.key(), &prev) == Ordering::Less {
                return Err(corrupt(
                    offset,
                    "index key below the block's last key".into(),
                ));
            }
            blocks += 1;
            index.next();
        }
        if let Some(r) = index.corruption() {
            return Err(corrupt(self.footer.index.offset, r.to_string()));
        }
        let p = &self.properties;
        if count != p.num_entries || blocks != p.num_data_blocks {
            return Err(corrupt(
                self.footer.properties.offset,
                format!(
                    "found {count} entries in {blocks} blocks, properties say {} in {}",
                    p.num_entries, p.num_data_blocks
                ),
            ));
        }
        if let Some(first) = first {
            let (smallest, largest) = &self.stored_bounds;
            let below = key::cmp_internal(&first, smallest) == Ordering::Less;
            let above = key::cmp_internal(&prev, largest) == Ordering::Greater;
            if below || above {
                return Err(corrupt(
                    self.footer.properties.offset,
                    "entries outside the properties' smallest/largest keys".into(),
                ));
            }
        }
        Ok(count)
    }

    /// The data block at `handle` (an index value), positioned on its first entry (or its last
    /// with `last`); an empty or corrupt block is `Corruption` at the block's offset.
    fn block_at_edge(
        &self,
        handle: &[u8],
        flags: ReadFlags,
        last: bool,
    ) -> Result<(u64, BlockIter)> {
        let (offset, block) = self.data_block(handle, flags)?;
        let mut it = BlockIter::new(block);
        if last {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        if !it.valid() {
            let r = it
                .corruption()
                .map_or("empty data block".into(), str::to_string);
            return Err(Error::corruption(&self.path, offset, r));
        }
        Ok((offset, it))
    }

    /// The cheap check of a file about to be ingested without [`Table::verify`] (what RocksDB
    /// does by default): footer, index and properties were checked by [`Table::open`]; this
    /// reads the first and the last data block (checksummed, decoded) and checks their first
    /// and last keys against the properties' bounds and the index. Returns the properties'
    /// entry count. Blocks in between are not read: damage there surfaces when they are read.
    pub fn verify_bounds(&self) -> Result<u64> {
        let flags = ReadFlags {
            verify_checksums: true,
            fill_cache: false,
        };
        let corrupt = |offset: u64, r: String| Error::corruption(&self.path, offset, r);
        let (smallest, largest) = &self.stored_bounds;
        let mut index = BlockIter::new(self.index.clone());
        index.seek_to_first();
        if !index.valid() {
            return match index.corruption() {
                Some(r) => Err(corrupt(self.footer.index.offset, r.to_string())),
                None => Ok(0),
            };
        }
        let (offset, it) = self.block_at_edge(index.value(), flags, false)?;
        if key::cmp_internal(it.key(), smallest) != Ordering::Equal {
            return Err(corrupt(
                offset,
                "first key differs from the properties' smallest key".into(),
            ));
        }
        index.seek_to_last();
        if !index.valid() {
            let r = index
                .corruption()
                .map_or("empty index".into(), str::to_string);
            return Err(corrupt(self.footer.index.offset, r));
        }
        let last_index_key = index.key().to_vec();
        let (offset, it) = self.block_at_edge(index.value(), flags, true)?;
        if key::cmp_internal(it.key(), largest) != Ordering::Equal
            || key::cmp_internal(&last_index_key, it.key()) == Ordering::Less
        {
            return Err(corrupt(
                offset,
                "last key differs from the properties' largest key or the index".into(),
            ));
        }
        Ok(self.properties.num_entries)
    }

    /// Approximate file offset where `ikey` would be stored (for size estimates).
    pub fn approximate_offset_of(&self, ikey: &[u8]) -> u64 {
        let mut index = BlockIter::new(self.index.clone());
        index.seek(ikey);
        if index.valid() {
            if let Some(h) = BlockHandle::decode_varint(index.value()) {
                return h.offset;
            }
        }
        self.properties.data_size
    }
}

/// Bounds-checked reads of meta blocks during open.
struct OpenCtx<'a> {
    file: &'a dyn RandomAccessFile,
    path: &'a Path,
    /// Every block must end at or before this offset (the footer start).
    limit: u64,
}

impl OpenCtx<'_> {
    fn corrupt(&self, h: BlockHandle, reason: String) -> Error {
        Error::corruption(self.path, h.offset, reason)
    }

    /// Reads a block with its trailer, after checking it lies within the file.
    fn read_raw(&self, h: BlockHandle, what: &str) -> Result<Vec<u8>> {
        let in_bounds = h.end_with_trailer().is_some_and(|end| end <= self.limit);
        if !in_bounds {
            return Err(self.corrupt(
                h,
                format!(
                    "{what} block {}+{} extends past the meta area ({} bytes)",
                    h.offset, h.size, self.limit
                ),
            ));
        }
        let mut raw = vec![0u8; h.size as usize + block::BLOCK_TRAILER_LEN];
        self.file
            .read_at(h.offset, &mut raw)
            .map_err(|e| Error::io(self.path, e))?;
        Ok(raw)
    }

    /// Reads, checksums and uncompresses a meta block.
    fn read_meta(&self, h: BlockHandle, what: &str) -> Result<Vec<u8>> {
        let raw = self.read_raw(h, what)?;
        block::unwrap_block(self.path, h.offset, &raw, true)
    }
}

fn apply_global_seqno(p: &mut Properties, tombstones: &mut [RangeTombstone], g: u64) {
    for t in tombstones.iter_mut() {
        t.seq = g;
    }
    let sentinel_trailer = key::pack_trailer(MAX_SEQNO, key::ValueKind::RangeDelete as u8);
    for k in [&mut p.smallest, &mut p.largest] {
        // Range-end sentinels keep their trailer: they are bounds, not versions.
        if !k.is_empty() && key::trailer(k) != sentinel_trailer {
            let stored = std::mem::take(k);
            patch_into(k, &stored, g);
        }
    }
    if p.num_entries > 0 || p.num_range_tombstones > 0 {
        p.smallest_seqno = g;
        p.largest_seqno = g;
    }
}

/// Writes `stored` into `out` with its seqno replaced by `g` (kind kept).
#[inline]
fn patch_into(out: &mut Vec<u8>, stored: &[u8], g: u64) {
    out.clear();
    key::append_internal_key(out, key::user_key(stored), g, key::kind_byte(stored));
}

/// Two-level iterator over a [`Table`]: index block -> data blocks.
pub struct TableIter {
    table: Arc<Table>,
    flags: ReadFlags,
    index: BlockIter,
    data: Option<BlockIter>,
    /// File offset of the current data block (for errors).
    data_offset: u64,
    err: Option<Error>,
    /// The current key with the global seqno applied (only with a global seqno).
    key_buf: Vec<u8>,
    seek_buf: Vec<u8>,
}

impl TableIter {
    fn set_err(&mut self, e: Error) {
        if self.err.is_none() {
            self.err = Some(e);
        }
        self.data = None;
    }

    /// Loads the block the index is on; false (with `data = None`) at the end or on error.
    fn load_block(&mut self) -> bool {
        self.data = None;
        if !self.index.valid() {
            if let Some(r) = self.index.corruption() {
                let e = Error::corruption(&self.table.path, self.table.footer.index.offset, r);
                self.set_err(e);
            }
            return false;
        }
        match self.table.data_block(self.index.value(), self.flags) {
            Ok((offset, block)) => {
                self.data_offset = offset;
                self.data = Some(BlockIter::new(block));
                true
            }
            Err(e) => {
                self.set_err(e);
                false
            }
        }
    }

    /// Turns a corrupt data block into an error; true while the data iterator is valid.
    fn check_data(&mut self) -> bool {
        let Some(d) = &self.data else { return false };
        if let Some(r) = d.corruption() {
            let e = Error::corruption(&self.table.path, self.data_offset, r);
            self.set_err(e);
            return false;
        }
        d.valid()
    }

    fn skip_forward(&mut self) {
        while self.err.is_none() && self.data.is_some() && !self.check_data() {
            if self.err.is_some() || !self.index.valid() {
                break;
            }
            self.index.next();
            if !self.load_block() {
                return;
            }
            if let Some(d) = self.data.as_mut() {
                d.seek_to_first();
            }
        }
    }

    fn skip_backward(&mut self) {
        while self.err.is_none() && self.data.is_some() && !self.check_data() {
            if self.err.is_some() || !self.index.valid() {
                break;
            }
            self.index.prev();
            if !self.load_block() {
                return;
            }
            if let Some(d) = self.data.as_mut() {
                d.seek_to_last();
            }
        }
    }

    fn raw_seek(&mut self, target: &[u8]) {
        self.index.seek(target);
        if self.load_block() {
            if let Some(d) = self.data.as_mut() {
                d.seek(target);
            }
        }
        self.skip_forward();
    }

    fn raw_seek_for_prev(&mut self, target: &[u8]) {
        self.raw_seek(target);
        if self.raw_valid() {
            if key::cmp_internal(self.raw_key(), target) == Ordering::Greater {
                self.raw_prev();
            }
        } else if self.err.is_none() {
            self.raw_seek_to_last();
        }
    }

    fn raw_seek_to_last(&mut self) {
        self.index.seek_to_last();
        if self.load_block() {
            if let Some(d) = self.data.as_mut() {
                d.seek_to_last();
            }
        }
        self.skip_backward();
    }

    fn raw_next(&mut self) {
        if let Some(d) = self.data.as_mut() {
            d.next();
        }
        self.skip_forward();
    }

    fn raw_prev(&mut self) {
        if let Some(d) = self.data.as_mut() {
            d.prev();
        }
        self.skip_backward();
    }

    fn raw_valid(&self) -> bool {
        self.err.is_none() && self.data.as_ref().is_some_and(|d| d.valid())
    }

    fn raw_key(&self) -> &[u8] {
        match &self.data {
            Some(d) => d.key(),
            None => &[],
        }
    }

    /// Refreshes the patched key after a move (global seqno only).
    fn settle(&mut self) {
        if let (Some(g), true) = (self.table.global_seqno, self.raw_valid()) {
            let stored = match &self.data {
                Some(d) => d.key(),
                None => return,
            };
            patch_into(&mut self.key_buf, stored, g);
        }
    }

    /// Sets `seek_buf` to `user_key ++ trailer` and returns it (taken out of `self`).
    fn make_seek_key(&mut self, target: &[u8], trailer: u64) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.seek_buf);
        buf.clear();
        buf.extend_from_slice(key::user_key(target));
        buf.extend_from_slice(&trailer.to_le_bytes());
        buf
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.raw_valid()
    }

    fn seek_to_first(&mut self) {
        if self.err.is_some() {
            return;
        }
        self.index.seek_to_first();
        if self.load_block() {
            if let Some(d) = self.data.as_mut() {
                d.seek_to_first();
            }
        }
        self.skip_forward();
        self.settle();
    }

    fn seek_to_last(&mut self) {
        if self.err.is_some() {
            return;
        }
        self.raw_seek_to_last();
        self.settle();
    }

    fn seek(&mut self, target: &[u8]) {
        if self.err.is_some() {
            return;
        }
        if self.table.global_seqno.is_none() {
            self.raw_seek(target);
            return;
        }
        // Stored seqnos differ from exposed ones: start at the user key's first entry and step
        // to the first whose patched key reaches the target.
        let first = self.make_seek_key(target, key::pack_trailer(MAX_SEQNO, key::KIND_SEEK));
        self.raw_seek(&first);
        self.seek_buf = first;
        self.settle();
        while self.raw_valid() && key::cmp_internal(&self.key_buf, target) == Ordering::Less {
            self.raw_next();
            self.settle();
        }
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        if self.err.is_some() {
            return;
        }
        if self.table.global_seqno.is_none() {
            self.raw_seek_for_prev(target);
            return;
        }
        // Trailer 0 sorts after every entry of the user key: land on its last entry.
        let last = self.make_seek_key(target, 0);
        self.raw_seek_for_prev(&last);
        self.seek_buf = last;
        self.settle();
        while self.raw_valid() && key::cmp_internal(&self.key_buf, target) == Ordering::Greater {
            self.raw_prev();
            self.settle();
        }
    }

    fn next(&mut self) {
        debug_assert!(self.valid());
        self.raw_next();
        self.settle();
    }

    fn prev(&mut self) {
        debug_assert!(self.valid());
        self.raw_prev();
        self.settle();
    }

    fn key(&self) -> &[u8] {
        if self.table.global_seqno.is_some() {
            &self.key_buf
        } else {
            self.raw_key()
        }
    }

    fn value(&self) -> &[u8] {
        match &self.data {
            Some(d) => d.value(),
            None => &[],
        }
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.duplicate()),
            None => Ok(()),
        }
    }
}
