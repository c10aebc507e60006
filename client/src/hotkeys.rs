//! Hot keys (Pegasus' hotkey detector) as the client sees them: the reports a node answers
//! [`ClientRequest::HotKeys`] with, and [`Client::hot_keys`], which asks every node of a table
//! and merges their reports per partition. The counting itself is `siltdb_server::hotkey`.
//!
//! A node counts a sample of the reads and writes its replicas serve (the leader serves them,
//! so after a leader change two nodes hold counts of one partition: they are summed). Counts
//! are estimates of requests: the sampled count times the sampling rate.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::proto::{ClientRequest, ClientResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which requests a count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HotKeyKind {
    /// Reads: get, multi-get, sort-key scans and counts (the hash key of a data-model read).
    Read,
    /// Writes: put, delete, multi-set, multi-del, read-modify-writes.
    Write,
}

impl HotKeyKind {
    /// `read` or `write`.
    pub fn name(self) -> &'static str {
        match self {
            HotKeyKind::Read => "read",
            HotKeyKind::Write => "write",
        }
    }

    /// Parses `read` or `write`.
    pub fn parse(s: &str) -> Result<HotKeyKind> {
        match s {
            "read" => Ok(HotKeyKind::Read),
            "write" => Ok(HotKeyKind::Write),
            _ => Err(Error::InvalidArgument(format!(
                "hot-key kind {s:?}: the valid kinds are read, write"
            ))),
        }
    }
}

/// One counted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotKey {
    /// The key (a data-model request's hash key; at most the server's key bound, longer
    /// keys counted by their prefix).
    pub key: Vec<u8>,
    /// Estimated requests on it.
    pub count: u64,
    /// How much of `count` may belong to keys counted in its slot before it (the space-saving
    /// bound): the true count is between `count - error` and `count`.
    pub error: u64,
}

/// The hottest keys of one partition and kind, hottest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionHotKeys {
    /// The partition.
    pub partition: u32,
    /// Reads or writes.
    pub kind: HotKeyKind,
    /// Estimated requests counted on the partition (all keys).
    pub total: u64,
    /// The top keys.
    pub keys: Vec<HotKey>,
}

/// Merges reports of the same partitions (from several nodes): counts of a key summed, the
/// `top` hottest kept per partition and kind, in partition, kind order.
pub fn merge(reports: Vec<PartitionHotKeys>, top: usize) -> Vec<PartitionHotKeys> {
    type Slot = (u64, BTreeMap<Vec<u8>, (u64, u64)>);
    let mut by: BTreeMap<(u32, HotKeyKind), Slot> = BTreeMap::new();
    for r in reports {
        let slot = by.entry((r.partition, r.kind)).or_default();
        slot.0 = slot.0.saturating_add(r.total);
        for k in r.keys {
            let e = slot.1.entry(k.key).or_default();
            e.0 = e.0.saturating_add(k.count);
            e.1 = e.1.saturating_add(k.error);
        }
    }
    by.into_iter()
        .map(|((partition, kind), (total, keys))| {
            let mut keys: Vec<HotKey> = keys
                .into_iter()
                .map(|(key, (count, error))| HotKey { key, count, error })
                .collect();
            keys.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            keys.truncate(top);
            PartitionHotKeys {
                partition,
                kind,
                total,
                keys,
            }
        })
        .collect()
}

impl Client {
    /// The `top` hottest keys of every partition of `table` (of `kind`, or both), from every
    /// node of the table, merged ([`merge`]). A node that does not answer is skipped.
    pub async fn hot_keys(
        &self,
        table: &str,
        kind: Option<HotKeyKind>,
        top: usize,
    ) -> Result<Vec<PartitionHotKeys>> {
        let layout = self.newest_layout(table).await?;
        let req = ClientRequest::HotKeys {
            table: table.to_string(),
            kind,
        };
        let mut all = Vec::new();
        let mut answered = 0;
        let mut last_error = None;
        for n in &layout.nodes {
            match self.call(&n.addr, &req).await {
                Ok(ClientResponse::HotKeys(r)) => {
                    answered += 1;
                    all.extend(r);
                }
                Ok(ClientResponse::Error(e)) => last_error = Some(Error::Server(e)),
                Ok(other) => {
                    last_error = Some(Error::Transport(format!("unexpected answer {other:?}")))
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (answered, last_error) {
            (0, Some(e)) => Err(e),
            _ => Ok(merge(all, top)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hk(key: &str, count: u64) -> HotKey {
        HotKey {
            key: key.as_bytes().to_vec(),
            count,
            error: 0,
        }
    }

    #[test]
    fn merge_sums_per_partition_and_keeps_the_top() {
        let a = PartitionHotKeys {
            partition: 1,
            kind: HotKeyKind::Read,
            total: 100,
            keys: vec![hk("x", 50), hk("y", 30)],
        };
        let b = PartitionHotKeys {
            partition: 1,
            kind: HotKeyKind::Read,
            total: 40,
            keys: vec![hk("y", 30), hk("z", 5)],
        };
        let c = PartitionHotKeys {
            partition: 0,
            kind: HotKeyKind::Write,
            total: 7,
            keys: vec![hk("w", 7)],
        };
        let m = merge(vec![a, b, c], 2);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].partition, m[0].kind), (0, HotKeyKind::Write));
        assert_eq!(m[1].total, 140);
        assert_eq!(m[1].keys, vec![hk("y", 60), hk("x", 50)]);
        assert_eq!(HotKeyKind::parse("read").unwrap(), HotKeyKind::Read);
        assert!(HotKeyKind::parse("scan")
            .unwrap_err()
            .to_string()
            .contains("read, write"));
    }
}
