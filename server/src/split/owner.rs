//! Which partition holds a stored key after a split.
//!
//! A table holds keys of two kinds, routed by two functions: plain keys
//! (`ClientRequest::Write`/`Get`) by `partition_of(key)`, Pegasus records by
//! `partition_of(hash_key)` of their engine key `[len u16 BE][hash_key][sort_key]`. The engine
//! does not know which API wrote a key, and some plain keys parse as record keys, so a split
//! copies a key to every child that either function names ([`holds`]): whichever API reads it
//! afterwards finds it where it routes. Scans then show each key once, by the function of
//! their own API ([`plain_visible`], [`record_visible`]).

use crate::layout::partition_of;
use siltdb_replica::pegasus::record::decode_key;

/// The partition of a plain key.
pub fn plain_owner(key: &[u8], partition_count: u32) -> u32 {
    partition_of(key, partition_count)
}

/// The partition of a Pegasus record key (by its hash key); `None` when `key` is not one.
pub fn record_owner(key: &[u8], partition_count: u32) -> Option<u32> {
    decode_key(key).map(|(hash_key, _)| partition_of(hash_key, partition_count))
}

/// Whether partition `p` of `partition_count` keeps `key`: either routing function names it.
pub fn holds(key: &[u8], p: u32, partition_count: u32) -> bool {
    plain_owner(key, partition_count) == p || record_owner(key, partition_count) == Some(p)
}

/// Whether a plain scan of partition `p` returns `key`: always on a table never split (as
/// before splits existed), else only where the plain routing puts it.
pub fn plain_visible(key: &[u8], p: u32, partition_count: u32, splits: u32) -> bool {
    splits == 0 || plain_owner(key, partition_count) == p
}

/// Whether a Pegasus partition scan of `p` returns the record `key` (on a split table, only
/// where its hash key routes).
pub fn record_visible(key: &[u8], p: u32, partition_count: u32, splits: u32) -> bool {
    splits == 0 || record_owner(key, partition_count) == Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb_replica::pegasus::record::encode_key;

    #[test]
    fn a_split_keeps_every_key_in_exactly_the_children_its_routings_name() {
        let n = 4;
        for i in 0..2000u32 {
            let plain = format!("key-{i}").into_bytes();
            let record = encode_key(format!("h{i}").as_bytes(), b"s").unwrap();
            for key in [plain, record] {
                let parent = (0..n).find(|&p| holds(&key, p, n)).unwrap();
                let children: Vec<u32> = [parent, parent + n]
                    .into_iter()
                    .filter(|&c| holds(&key, c, 2 * n))
                    .collect();
                assert!(!children.is_empty(), "{key:?} lost");
                // Each API's scan sees the key in one child at most.
                let plain_seen = (0..2 * n)
                    .filter(|&c| holds(&key, c, 2 * n) && plain_visible(&key, c, 2 * n, 1))
                    .count();
                assert!(plain_seen <= 1);
                if let Some(o) = record_owner(&key, 2 * n) {
                    assert!(children.contains(&o) || record_owner(&key, n) != Some(parent));
                }
            }
        }
        // The remainder mod n survives the doubling.
        for i in 0..1000u32 {
            let k = i.to_be_bytes();
            assert_eq!(plain_owner(&k, 2 * n) % n, plain_owner(&k, n));
        }
    }
}
