//! The properties block: counts, sizes, key and seqno bounds of one SST file.
//!
//! Encoding: a sequence of fields `tag varint | len varint | payload[len]`; numeric payloads
//! are one varint, strings and keys are raw bytes. Readers skip unknown tags, so later versions
//! can add fields without a format version bump. See `docs/format.md`, "Properties block".

use crate::coding::{self, Cursor};
use crate::key;

/// Tags of the properties fields.
mod tag {
    pub const NUM_ENTRIES: u64 = 1;
    pub const NUM_DATA_BLOCKS: u64 = 2;
    pub const NUM_RANGE_TOMBSTONES: u64 = 3;
    pub const DATA_SIZE: u64 = 4;
    pub const INDEX_SIZE: u64 = 5;
    pub const FILTER_SIZE: u64 = 6;
    pub const SMALLEST: u64 = 7;
    pub const LARGEST: u64 = 8;
    pub const SMALLEST_SEQNO: u64 = 9;
    pub const LARGEST_SEQNO: u64 = 10;
    pub const CREATION_TIME_SECS: u64 = 11;
    pub const COMPRESSION: u64 = 12;
    pub const CREATOR: u64 = 13;
}

/// What an SST file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// Point entries (puts and deletes).
    pub num_entries: u64,
    /// Data blocks.
    pub num_data_blocks: u64,
    /// Range tombstones in the range-deletion block.
    pub num_range_tombstones: u64,
    /// Bytes of data blocks on disk (trailers included) = offset of the first meta block.
    pub data_size: u64,
    /// Bytes of the index block contents.
    pub index_size: u64,
    /// Bytes of the filter block contents (0 without a filter).
    pub filter_size: u64,
    /// Smallest internal key, range-tombstone starts included (empty for an empty file).
    pub smallest: Vec<u8>,
    /// Largest internal key, range-tombstone end sentinels included (empty for an empty file).
    pub largest: Vec<u8>,
    /// Smallest seqno of any entry or tombstone.
    pub smallest_seqno: u64,
    /// Largest seqno of any entry or tombstone.
    pub largest_seqno: u64,
    /// Unix time (seconds) the file was written.
    pub creation_time_secs: u64,
    /// Compression of data blocks: `none`, `lz4` or `zstd(level)`.
    pub compression: String,
    /// Free-form name of the writer (e.g. `flush`, `compaction`, `SstWriter`).
    pub creator: String,
    /// SST format version, from the footer.
    pub format_version: u32,
}

fn put_num(out: &mut Vec<u8>, tag: u64, v: u64) {
    let mut payload = Vec::with_capacity(10);
    coding::put_varint(&mut payload, v);
    put_bytes(out, tag, &payload);
}

fn put_bytes(out: &mut Vec<u8>, tag: u64, v: &[u8]) {
    coding::put_varint(out, tag);
    coding::put_len_prefixed(out, v);
}

impl Properties {
    /// Encodes as tagged fields (format version lives in the footer, not here).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.smallest.len() + self.largest.len());
        put_num(&mut out, tag::NUM_ENTRIES, self.num_entries);
        put_num(&mut out, tag::NUM_DATA_BLOCKS, self.num_data_blocks);
        put_num(
            &mut out,
            tag::NUM_RANGE_TOMBSTONES,
            self.num_range_tombstones,
        );
        put_num(&mut out, tag::DATA_SIZE, self.data_size);
        put_num(&mut out, tag::INDEX_SIZE, self.index_size);
        put_num(&mut out, tag::FILTER_SIZE, self.filter_size);
        put_bytes(&mut out, tag::SMALLEST, &self.smallest);
        put_bytes(&mut out, tag::LARGEST, &self.largest);
        put_num(&mut out, tag::SMALLEST_SEQNO, self.smallest_seqno);
        put_num(&mut out, tag::LARGEST_SEQNO, self.largest_seqno);
        put_num(&mut out, tag::CREATION_TIME_SECS, self.creation_time_secs);
        put_bytes(&mut out, tag::COMPRESSION, self.compression.as_bytes());
        put_bytes(&mut out, tag::CREATOR, self.creator.as_bytes());
        out
    }

    /// Decodes tagged fields, skipping unknown tags; the error is the reason it is rejected.
    /// Requires the counts and key bounds; keys must be well-formed internal keys (or both empty
    /// for a file without entries).
    pub fn decode(data: &[u8]) -> Result<Properties, String> {
        let mut p = Properties::default();
        let mut seen = 0u64;
        let mut c = Cursor::new(data);
        while !c.is_empty() {
            let at = c.pos();
            let tag = c
                .varint()
                .ok_or_else(|| format!("bad property tag at {at}"))?;
            let payload = c
                .len_prefixed()
                .ok_or_else(|| format!("bad length of property {tag} at {at}"))?;
            if (1..64).contains(&tag) {
                seen |= 1 << tag;
            }
            let num = || {
                let mut pc = Cursor::new(payload);
                match (pc.varint(), pc.is_empty()) {
                    (Some(v), true) => Ok(v),
                    _ => Err(format!("property {tag} is not one varint")),
                }
            };
            let text = || String::from_utf8_lossy(payload).into_owned();
            match tag {
                tag::NUM_ENTRIES => p.num_entries = num()?,
                tag::NUM_DATA_BLOCKS => p.num_data_blocks = num()?,
                tag::NUM_RANGE_TOMBSTONES => p.num_range_tombstones = num()?,
                tag::DATA_SIZE => p.data_size = num()?,
                tag::INDEX_SIZE => p.index_size = num()?,
                tag::FILTER_SIZE => p.filter_size = num()?,
                tag::SMALLEST => p.smallest = payload.to_vec(),
                tag::LARGEST => p.largest = payload.to_vec(),
                tag::SMALLEST_SEQNO => p.smallest_seqno = num()?,
                tag::LARGEST_SEQNO => p.largest_seqno = num()?,
                tag::CREATION_TIME_SECS => p.creation_time_secs = num()?,
                tag::COMPRESSION => p.compression = text(),
                tag::CREATOR => p.creator = text(),
                _ => {} // a field from a newer writer
            }
        }
        for required in [
            tag::NUM_ENTRIES,
            tag::NUM_DATA_BLOCKS,
            tag::NUM_RANGE_TOMBSTONES,
            tag::SMALLEST,
            tag::LARGEST,
        ] {
            if seen & (1 << required) == 0 {
                return Err(format!("required property {required} missing"));
            }
        }
        p.validate_bounds()?;
        Ok(p)
    }

    fn validate_bounds(&self) -> Result<(), String> {
        let empty = self.num_entries == 0 && self.num_range_tombstones == 0;
        if empty {
            if self.smallest.is_empty() && self.largest.is_empty() {
                return Ok(());
            }
            return Err("empty file with key bounds".into());
        }
        if key::parse(&self.smallest).is_none() || key::parse(&self.largest).is_none() {
            return Err("smallest/largest key is not a valid internal key".into());
        }
        if key::cmp_internal(&self.smallest, &self.largest).is_gt() {
            return Err("smallest key sorts after largest key".into());
        }
        if self.smallest_seqno > self.largest_seqno {
            return Err("smallest seqno above largest seqno".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    fn sample() -> Properties {
        Properties {
            num_entries: 10,
            num_data_blocks: 2,
            num_range_tombstones: 1,
            data_size: 1000,
            index_size: 40,
            filter_size: 69,
            smallest: internal_key(b"a", 3, ValueKind::Put),
            largest: key::range_end_sentinel(b"z"),
            smallest_seqno: 1,
            largest_seqno: 9,
            creation_time_secs: 1_700_000_000,
            compression: "zstd(3)".into(),
            creator: "test".into(),
            format_version: 0,
        }
    }

    #[test]
    fn round_trip_and_unknown_tags_skipped() {
        let p = sample();
        let mut enc = p.encode();
        assert_eq!(Properties::decode(&enc), Ok(p.clone()));
        // A field from the future, with a multi-byte payload.
        coding::put_varint(&mut enc, 99);
        coding::put_len_prefixed(&mut enc, b"future stuff");
        assert_eq!(Properties::decode(&enc), Ok(p));
    }

    #[test]
    fn garbage_rejected_without_panic() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            let _ = Properties::decode(&enc[..cut]);
        }
        for i in 0..enc.len() {
            let mut b = enc.clone();
            b[i] ^= 0xff;
            let _ = Properties::decode(&b);
        }
        assert!(Properties::decode(&[]).is_err());
    }
}
