//! The compaction filter that drops expired Pegasus records.

use super::record::{decode_key, decode_value, expired, now_ms};
use crate::mutation::RESERVED_KEY_PREFIX;
use siltdb::{CompactionFilter, FilterDecision};

/// Removes records whose expiry (the value header, [`super::record`]) has passed. Keys that are
/// not record keys, the replica's reserved keys and values shorter than the header are kept.
/// Expired records are already invisible to reads; the filter only reclaims their space.
#[derive(Debug, Default, Clone, Copy)]
pub struct TtlFilter;

impl CompactionFilter for TtlFilter {
    fn filter(&self, _level: usize, key: &[u8], value: &[u8]) -> FilterDecision {
        if key.starts_with(RESERVED_KEY_PREFIX) || decode_key(key).is_none() {
            return FilterDecision::Keep;
        }
        match decode_value(value) {
            Some((expire, _)) if expired(expire, now_ms()) => FilterDecision::Remove,
            _ => FilterDecision::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pegasus::record::{encode_key, encode_value};
    use std::sync::Arc;

    #[test]
    fn compaction_drops_expired_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let opts = siltdb::Options {
            compaction_filter: Some(Arc::new(TtlFilter)),
            ..siltdb::Options::default()
        };
        let db = siltdb::Db::open(dir.path(), opts).unwrap();
        let past = encode_value(1, b"old");
        let future = encode_value(now_ms() + 3_600_000, b"new");
        db.put(encode_key(b"h", b"dead").unwrap(), &past).unwrap();
        db.put(encode_key(b"h", b"live").unwrap(), &future).unwrap();
        db.put(encode_key(b"h", b"never").unwrap(), encode_value(0, b"v"))
            .unwrap();
        db.put(b"\0silt/applied", &past).unwrap();
        db.flush().unwrap();
        db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
        assert_eq!(db.get(encode_key(b"h", b"dead").unwrap()).unwrap(), None);
        assert!(db
            .get(encode_key(b"h", b"live").unwrap())
            .unwrap()
            .is_some());
        assert!(db
            .get(encode_key(b"h", b"never").unwrap())
            .unwrap()
            .is_some());
        assert!(db.get(b"\0silt/applied").unwrap().is_some());
    }
}
