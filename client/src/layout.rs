//! Table placement: a table is created with its partition count, its replica count and the
//! nodes that host it; membership changes produce successor layouts with higher epochs. (The
//! servers store layouts durably: `siltdb_server::layout::LayoutStore`.)
//!
//! Partition of a key: `xxh3_64(key) % partition_count` (xxhash-rust's XXH3 64-bit, seed 0).
//! XXH3 is stable across platforms and versions by specification, so a key's partition never
//! changes for a given partition count. Replicas of partition `p`: the nodes at positions
//! `(p + i) % nodes.len()` for `i < replica_count`; the first one initializes the group.

use crate::error::{Error, Result};
use crate::types::Gpid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest table name.
pub const MAX_TABLE_NAME_BYTES: usize = 64;
/// Most partitions of one table.
pub const MAX_PARTITIONS: u32 = 4096;
/// Version of the layout file.
pub const LAYOUT_FORMAT_VERSION: u32 = 1;
/// The meta table's name (the catalog partition, `crate::meta`).
pub const META_TABLE: &str = "__meta";
/// The meta table's app id; user tables get ids from 1.
pub const META_APP_ID: u32 = 0;

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable node id (openraft's NodeId).
    pub id: u64,
    /// `host:port` serving Raft and clients.
    pub addr: String,
}

/// A table's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLayout {
    /// Format version of the stored file ([`LAYOUT_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Table name: `[A-Za-z0-9_-]`, 1 to [`MAX_TABLE_NAME_BYTES`] bytes.
    pub name: String,
    /// The table id, the `app_id` of its partitions' [`Gpid`]s; unique in the cluster.
    pub app_id: u32,
    /// Number of partitions.
    pub partition_count: u32,
    /// Replicas per partition.
    pub replica_count: u32,
    /// The nodes hosting the table, in placement order.
    pub nodes: Vec<NodeInfo>,
    /// Version of this layout: 0 at creation, +1 per membership change. A node replaces its
    /// stored layout only by one with a higher epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Partitions whose replicas were moved: their replica node ids, overriding the formula
    /// of the module doc. A partition listed here is never initialized by a node (its group
    /// already exists); its replicas join through openraft membership changes.
    /// (No `skip_serializing_if`: layouts also travel as bincode, which needs every field.)
    #[serde(default)]
    pub assignments: BTreeMap<u32, Vec<u64>>,
    /// The table's app envs, `key → value` ([`crate::envs`]: default TTL, throttling, manual
    /// compaction, usage scenario); every key known and every value valid.
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
    /// Partition splits this table went through (each doubled the partition count,
    /// [`TableLayout::split_successor`]). Non-zero: a partition may still hold keys copied
    /// from its parent that now belong to a sibling, and scans hide them.
    #[serde(default)]
    pub splits: u32,
}

impl TableLayout {
    /// A layout at the current format version.
    pub fn new(
        name: impl Into<String>,
        app_id: u32,
        partition_count: u32,
        replica_count: u32,
        nodes: Vec<NodeInfo>,
    ) -> Self {
        Self {
            format_version: LAYOUT_FORMAT_VERSION,
            name: name.into(),
            app_id,
            partition_count,
            replica_count,
            nodes,
            epoch: 0,
            assignments: BTreeMap::new(),
            envs: BTreeMap::new(),
            splits: 0,
        }
    }

    /// Refuses malformed layouts (names, counts, duplicate or missing nodes).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.format_version != LAYOUT_FORMAT_VERSION {
            return bad(format!("layout format version {}", self.format_version));
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_TABLE_NAME_BYTES
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return bad(format!("bad table name {:?}", self.name));
        }
        let meta = self.name == META_TABLE;
        if meta != (self.app_id == META_APP_ID) {
            return bad(format!(
                "app id {} is reserved for the meta table {}",
                META_APP_ID, META_TABLE
            ));
        }
        if self.partition_count == 0 || self.partition_count > MAX_PARTITIONS {
            return bad(format!("partition count {}", self.partition_count));
        }
        if self.replica_count == 0 || self.replica_count as usize > self.nodes.len() {
            return bad(format!(
                "replica count {} with {} nodes",
                self.replica_count,
                self.nodes.len()
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for n in &self.nodes {
            if !ids.insert(n.id) {
                return bad(format!("node {} listed twice", n.id));
            }
            if n.addr.is_empty() {
                return bad(format!("node {} has no address", n.id));
            }
        }
        for (p, replicas) in &self.assignments {
            if *p >= self.partition_count {
                return bad(format!("assignment of partition {p}"));
            }
            if replicas.is_empty() || replicas.len() > self.nodes.len() {
                return bad(format!(
                    "partition {p} assigned {} replicas",
                    replicas.len()
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for id in replicas {
                if !ids.contains(id) || !seen.insert(*id) {
                    return bad(format!("partition {p} assigned to node {id}"));
                }
            }
        }
        crate::envs::TableEnvs::parse(&self.envs)?;
        Ok(())
    }

    /// Whether partition `p` still has its initial placement (its first replica initializes
    /// the group); `false` once a membership change assigned it explicitly.
    pub fn is_initial_placement(&self, p: u32) -> bool {
        !self.assignments.contains_key(&p)
    }

    /// Whether `other` is a later version of this table: same identity, higher epoch.
    pub fn is_successor(&self, other: &TableLayout) -> bool {
        self.name == other.name
            && self.app_id == other.app_id
            && self.partition_count == other.partition_count
            && other.epoch > self.epoch
    }

    /// Whether `other` is this table after a partition split: same identity, twice the
    /// partitions, a higher epoch.
    pub fn is_split_successor(&self, other: &TableLayout) -> bool {
        self.name == other.name
            && self.app_id == other.app_id
            && u64::from(other.partition_count) == 2 * u64::from(self.partition_count)
            && other.epoch > self.epoch
    }

    /// The layout after a partition split: twice the partitions, epoch + 1, one more split.
    /// Child `p + n` of partition `p` (of `n`) gets `p`'s replicas, pinned in `assignments`
    /// (its group is created by the split, never by the placement formula). Refused past
    /// [`MAX_PARTITIONS`].
    pub fn split_successor(&self) -> Result<TableLayout> {
        let n = self.partition_count;
        let doubled = n
            .checked_mul(2)
            .filter(|&d| d <= MAX_PARTITIONS)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has {n} partitions: doubling exceeds {MAX_PARTITIONS}",
                    self.name
                ))
            })?;
        let mut next = self.clone();
        for p in 0..n {
            let ids = self.replicas(p).iter().map(|n| n.id).collect();
            next.assignments.insert(p + n, ids);
        }
        next.partition_count = doubled;
        next.splits = self
            .splits
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("split count overflow".into()))?;
        next.epoch = self
            .epoch
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("layout epoch overflow".into()))?;
        next.validate()?;
        Ok(next)
    }

    /// The partition of `key`.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        partition_of(key, self.partition_count)
    }

    /// The gpid of partition `p`.
    pub fn gpid(&self, p: u32) -> Gpid {
        Gpid::new(self.app_id, p)
    }

    /// The replicas of partition `p`, the initializing one first.
    pub fn replicas(&self, p: u32) -> Vec<NodeInfo> {
        if let Some(ids) = self.assignments.get(&p) {
            return ids
                .iter()
                .filter_map(|id| self.nodes.iter().find(|n| n.id == *id).cloned())
                .collect();
        }
        let n = self.nodes.len();
        if n == 0 {
            return Vec::new();
        }
        (0..self.replica_count as usize)
            .map(|i| self.nodes[(p as usize + i) % n].clone())
            .collect()
    }

    /// The successor layout in which node `to` replaces node `from` among the replicas of
    /// partition `p` (`to` joins the table's nodes if new). Refused when `from` is not a
    /// replica of `p`, or `to` already is one.
    pub fn with_replica_moved(&self, p: u32, from: u64, to: &NodeInfo) -> Result<TableLayout> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if p >= self.partition_count {
            return bad(format!("partition {p} of {}", self.partition_count));
        }
        let mut ids: Vec<u64> = self.replicas(p).iter().map(|n| n.id).collect();
        let Some(pos) = ids.iter().position(|&id| id == from) else {
            return bad(format!("node {from} is not a replica of partition {p}"));
        };
        if ids.contains(&to.id) {
            return bad(format!(
                "node {} is already a replica of partition {p}",
                to.id
            ));
        }
        let mut next = self.pinned_successor()?;
        match next.nodes.iter().find(|n| n.id == to.id) {
            Some(known) if known.addr != to.addr => {
                return bad(format!(
                    "node {} is at {}, not {}",
                    to.id, known.addr, to.addr
                ))
            }
            Some(_) => {}
            None => next.nodes.push(to.clone()),
        }
        ids[pos] = to.id;
        next.assignments.insert(p, ids);
        next.validate()?;
        Ok(next)
    }

    /// A copy at the next epoch with every partition's replicas pinned in `assignments` (the
    /// start of every membership change: adding or removing a node changes the formula's
    /// modulus, which must not move anything).
    fn pinned_successor(&self) -> Result<TableLayout> {
        let mut next = self.clone();
        for q in 0..self.partition_count {
            let ids = self.replicas(q).iter().map(|n| n.id).collect();
            next.assignments.entry(q).or_insert(ids);
        }
        next.epoch = self
            .epoch
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("layout epoch overflow".into()))?;
        Ok(next)
    }

    /// The successor layout without node `id` in its node list (a node being removed from
    /// the cluster). Refused while a partition still has a replica on it (drain it first).
    pub fn without_node(&self, id: u64) -> Result<TableLayout> {
        if let Some(p) =
            (0..self.partition_count).find(|&p| self.replicas(p).iter().any(|n| n.id == id))
        {
            return Err(Error::InvalidArgument(format!(
                "node {id} still hosts partition {p} of {}: drain it first",
                self.name
            )));
        }
        let mut next = self.pinned_successor()?;
        next.nodes.retain(|n| n.id != id);
        next.validate()?;
        Ok(next)
    }

    /// The address of node `id`, if it hosts this table.
    pub fn addr_of(&self, id: u64) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.addr.as_str())
    }
}

/// `xxh3_64(key) % partition_count` (see the module doc); 0 when `partition_count` is 0.
pub fn partition_of(key: &[u8], partition_count: u32) -> u32 {
    if partition_count == 0 {
        return 0;
    }
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partition_count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u64) -> Vec<NodeInfo> {
        (1..=n)
            .map(|id| NodeInfo {
                id,
                addr: format!("127.0.0.1:{}", 7000 + id),
            })
            .collect()
    }

    #[test]
    fn placement_and_partitioning() {
        let l = TableLayout::new("t", 1, 8, 3, nodes(4));
        l.validate().unwrap();
        let r: Vec<u64> = l.replicas(3).iter().map(|n| n.id).collect();
        assert_eq!(r, vec![4, 1, 2]);
        let mut seen = [0u32; 8];
        for i in 0..8000u32 {
            let p = l.partition_of(format!("key{i}").as_bytes());
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 700 && c < 1300), "{seen:?}");
        // Pinned values: the hash is part of the data layout and must never change.
        assert_eq!(
            partition_of(b"", 8),
            (xxhash_rust::xxh3::xxh3_64(b"") % 8) as u32
        );
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn a_split_doubles_the_partitions_and_keeps_every_key_with_its_parent_or_child() {
        let l = TableLayout::new("t", 1, 3, 2, nodes(4));
        let s = l.split_successor().unwrap();
        assert_eq!((s.partition_count, s.epoch, s.splits), (6, 1, 1));
        assert!(l.is_split_successor(&s) && !l.is_successor(&s));
        for p in 0..3 {
            // Each child lives on its parent's nodes; the parents did not move.
            assert_eq!(s.replicas(p + 3), l.replicas(p));
            assert_eq!(s.replicas(p), l.replicas(p));
        }
        for i in 0..3000u32 {
            let k = format!("key{i}");
            let (before, after) = (l.partition_of(k.as_bytes()), s.partition_of(k.as_bytes()));
            assert!(
                after == before || after == before + 3,
                "{k}: {before} -> {after}"
            );
        }
        let again = s.split_successor().unwrap();
        assert_eq!(
            (again.partition_count, again.epoch, again.splits),
            (12, 2, 2)
        );
        assert_eq!(again.replicas(9), l.replicas(0));
        let big = TableLayout::new("t", 1, MAX_PARTITIONS, 2, nodes(4));
        assert!(big.split_successor().is_err());
    }

    #[test]
    fn bad_layouts_are_refused() {
        for l in [
            TableLayout::new("", 1, 8, 3, nodes(3)),
            TableLayout::new("a/b", 1, 8, 3, nodes(3)),
            TableLayout::new("t", 1, 0, 3, nodes(3)),
            TableLayout::new("t", 1, MAX_PARTITIONS + 1, 3, nodes(3)),
            TableLayout::new("t", 1, 8, 4, nodes(3)),
            TableLayout::new("t", 1, 8, 0, nodes(3)),
            TableLayout::new("t", 0, 8, 3, nodes(3)),
            TableLayout::new("__meta", 2, 1, 3, nodes(3)),
        ] {
            assert!(l.validate().is_err(), "{l:?}");
        }
        let mut dup = nodes(3);
        dup[2].id = 1;
        assert!(TableLayout::new("t", 1, 8, 3, dup).validate().is_err());
    }

    #[test]
    fn moving_a_replica_pins_placement_and_bumps_the_epoch() {
        let l = TableLayout::new("t", 1, 8, 3, nodes(3));
        let n4 = NodeInfo {
            id: 4,
            addr: "127.0.0.1:7004".into(),
        };
        let m = l.with_replica_moved(2, 3, &n4).unwrap();
        assert_eq!(m.epoch, 1);
        assert!(l.is_successor(&m) && !m.is_successor(&l));
        // Adding node 4 must not reshuffle other partitions (the formula's modulus changed).
        for p in 0..8 {
            let before: Vec<u64> = l.replicas(p).iter().map(|n| n.id).collect();
            let after: Vec<u64> = m.replicas(p).iter().map(|n| n.id).collect();
            if p == 2 {
                assert_eq!(
                    after,
                    before
                        .iter()
                        .map(|&id| if id == 3 { 4 } else { id })
                        .collect::<Vec<_>>()
                );
            } else {
                assert_eq!(before, after, "partition {p}");
            }
            assert!(!m.is_initial_placement(p));
        }
        assert!(
            l.with_replica_moved(2, 4, &n4).is_err(),
            "4 is not a replica"
        );
        assert!(m.with_replica_moved(2, 1, &n4).is_err(), "4 already is one");
        let elsewhere = NodeInfo {
            id: 1,
            addr: "10.0.0.1:1".into(),
        };
        assert!(
            l.with_replica_moved(0, 2, &elsewhere).is_err(),
            "1 is a replica"
        );
        assert!(l.with_replica_moved(8, 1, &n4).is_err(), "no partition 8");
        // Removing a node: refused while it hosts a replica; afterwards it is gone, nothing moved.
        assert!(m.without_node(3).is_err(), "3 still hosts partitions");
        let mut drained = m.clone();
        for ids in drained.assignments.values_mut() {
            for id in ids.iter_mut() {
                if *id == 3 {
                    *id = 4;
                }
            }
        }
        let gone = drained.without_node(3).unwrap();
        assert_eq!(gone.epoch, drained.epoch + 1);
        assert!(gone.addr_of(3).is_none());
        for p in 0..8 {
            assert_eq!(gone.replicas(p), drained.replicas(p));
        }
        // Round trip through JSON keeps the assignments; old files without them still load.
        let back: TableLayout = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let mut old_json = serde_json::to_value(&l).unwrap();
        old_json.as_object_mut().unwrap().remove("epoch");
        let old: TableLayout = serde_json::from_value(old_json).unwrap();
        assert_eq!(old, l);
    }
}
