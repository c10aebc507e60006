//! Partition split: doubling a table's partition count online (Pegasus' partition split).
//!
//! Layer: service (on top of [`crate::node`]; wire types in `siltdb_client::split`).
//!
//! With `n` partitions, key `k` is in `partition_of(k, n) = xxh3_64(k) % n`; with `2n` it is
//! in the same partition `p` or in its child `p + n`. (Pegasus records route by their hash
//! key the same way; [`owner`] handles both kinds of key.) A split from layout `L` (epoch
//! `e`, `n` partitions) to `L'` ([`siltdb_client::layout::TableLayout::split_successor`]: `2n` partitions, epoch
//! `e + 1`, child `p + n` on the replicas of `p`) runs on one coordinator
//! ([`driver::split_table`]: the meta leader, or the table's first node), one split at a time:
//!
//! 1. **Prepare** (every node of `L`, all or none). The node stores the pending split durably
//!    (`<data dir>/splits/<table>.json`, [`fence`]): from now on it refuses every write to
//!    the table with a retryable `Unavailable` — after a restart too — and waits out the
//!    writes it admitted before. It opens its replicas of the children; the first replica of
//!    each child creates the child's group (as at table creation). Reads go on, except those
//!    of keys that move to a child and every scan (`Unavailable`): a node that has not
//!    switched yet must not serve a value its child may already have overwritten.
//! 2. **Copy** (on each parent's leader). A barrier write through the parent's log (every
//!    write admitted before the fence is then applied, or never commits), then the parent's
//!    keys that its child holds are written to the child's group through its leader, the
//!    child cleared first (a retried copy starts over).
//! 3. **Switch**. `UpdateTable(L')` to every node: it stores `L'` (the only layout change
//!    that changes the partition count, accepted only with the matching pending split) and
//!    removes the pending split; writes resume. Clients with `L` get `WrongPartition` for keys
//!    that moved and for scans routed by `n` partitions, fetch the newest layout and route
//!    again.
//! 4. **Cleanup** (each partition's leader, best effort): deletes the keys the partition no
//!    longer holds. Until then scans of a split table hide them and gets never reach them.
//!
//! Failures: a failure during 1 or 2 aborts the split everywhere (the fence is lifted, the
//! old layout stays valid; the children's directories stay for the next attempt). A node that
//! misses the abort stays fenced until `split` runs again, which resumes the pending split
//! (whatever node restarted meanwhile, its pending split survives on disk). After the first
//! node switched, a failure leaves the nodes not switched yet fenced, and a rerun finishes
//! the switch. No acknowledged write is lost: a write is either admitted before the fence
//! (applied before the barrier, so copied) or refused, and refused writes are retried by the
//! client on the new layout.

pub mod driver;
pub mod fence;
pub mod owner;
pub mod steps;

pub use driver::split_table;
pub use fence::{SplitRecord, Splits, SPLITS_DIR, SPLIT_FORMAT_VERSION};
pub use steps::handle;
