//! Pegasus record encoding: the engine key is `[hash_key length: u16 big endian][hash_key]
//! [sort_key]`, the engine value is `[expire: u64 big endian, milliseconds since the Unix
//! epoch, 0 = never][user value]` (`docs/format.md`, "Pegasus records").
//!
//! All records of one hash key are contiguous in the engine and ordered by sort key, so a
//! sort-key range scan is an engine range scan. A record whose expiry is at or before "now" is
//! invisible to every read at once and dropped by [`super::TtlFilter`] at compaction.

/// Longest hash key: its length is stored as a `u16`.
pub const MAX_HASH_KEY_BYTES: usize = u16::MAX as usize;

/// Bytes of the value header (the expiry).
pub const VALUE_HEADER_BYTES: usize = 8;

/// The engine key of `(hash_key, sort_key)`; `None` when the hash key is longer than
/// [`MAX_HASH_KEY_BYTES`].
pub fn encode_key(hash_key: &[u8], sort_key: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(hash_key.len()).ok()?;
    let mut k = Vec::with_capacity(2 + hash_key.len() + sort_key.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(hash_key);
    k.extend_from_slice(sort_key);
    Some(k)
}

/// Splits an engine key into `(hash_key, sort_key)`; `None` when it is not a record key.
pub fn decode_key(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u16::from_be_bytes([*key.first()?, *key.get(1)?]) as usize;
    let rest = &key[2..];
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// The engine key range `[start, end)` holding every record of `hash_key` (`end = None`: the
/// range runs to the last key, when no key follows the hash key's prefix).
pub fn hash_key_range(hash_key: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let start = encode_key(hash_key, b"")?;
    Some((start.clone(), prefix_end(&start)))
}

/// The first key after every key starting with `prefix` (`None`: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The engine value of `value` expiring at `expire_ms` (0 = never).
pub fn encode_value(expire_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_HEADER_BYTES + value.len());
    v.extend_from_slice(&expire_ms.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// Splits an engine value into `(expire_ms, user value)`; `None` when shorter than the header.
pub fn decode_value(value: &[u8]) -> Option<(u64, &[u8])> {
    if value.len() < VALUE_HEADER_BYTES {
        return None;
    }
    let (h, v) = value.split_at(VALUE_HEADER_BYTES);
    let expire = u64::from_be_bytes(h.try_into().ok()?);
    Some((expire, v))
}

/// Whether a record expiring at `expire_ms` is dead at `now_ms`.
pub fn expired(expire_ms: u64, now_ms: u64) -> bool {
    expire_ms != 0 && expire_ms <= now_ms
}

/// The live user value and expiry of an engine value at `now_ms` (`None`: absent, expired or
/// malformed).
pub fn live_value(value: Option<&[u8]>, now_ms: u64) -> Option<(u64, &[u8])> {
    let (expire, v) = decode_value(value?)?;
    (!expired(expire, now_ms)).then_some((expire, v))
}

pub use siltdb_client::pegasus::atomic::now_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = encode_key(b"user", b"name").unwrap();
        assert_eq!(k, b"\x00\x04username");
        assert_eq!(decode_key(&k), Some((&b"user"[..], &b"name"[..])));
        assert_eq!(decode_key(b"\x00"), None);
        assert_eq!(decode_key(b"\x00\x05abc"), None);
        assert!(encode_key(&vec![0; MAX_HASH_KEY_BYTES + 1], b"").is_none());
        let v = encode_value(42, b"x");
        assert_eq!(decode_value(&v), Some((42, &b"x"[..])));
        assert_eq!(decode_value(b"short"), None);
        assert!(live_value(Some(&v), 41).is_some());
        assert!(live_value(Some(&v), 42).is_none());
        assert!(live_value(Some(&encode_value(0, b"")), u64::MAX).is_some());
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    proptest! {
        #[test]
        fn records_of_a_hash_key_stay_in_its_range(
            h in proptest::collection::vec(any::<u8>(), 0..8),
            s in proptest::collection::vec(any::<u8>(), 0..8),
            other in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let k = encode_key(&h, &s).unwrap();
            let (start, end) = hash_key_range(&h).unwrap();
            prop_assert!(k >= start && end.as_ref().is_none_or(|e| &k < e));
            if other != h {
                let o = encode_key(&other, &s).unwrap();
                prop_assert!(o < start || end.as_ref().is_some_and(|e| &o >= e));
            }
            prop_assert_eq!(decode_key(&k), Some((&h[..], &s[..])));
        }

        #[test]
        fn decoders_survive_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode_key(&b);
            let _ = decode_value(&b);
        }
    }
}
