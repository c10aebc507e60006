//! Partition split: doubling a table's partition count online (Pegasus' partition split).
//! The protocol is described in the server's `siltdb_server::split`; these are its wire
//! types and the operator call [`Client::split_table`].
//!
//! With `n` partitions before the split, a key of partition `p` belongs to `p` or to its
//! child `p + n` afterwards (`xxh3_64 % 2n` keeps the remainder mod `n`).

use crate::client::Client;
use crate::error::{Error, Result};
use crate::layout::TableLayout;
use crate::meta::MetaRequest;
use crate::proto::{ClientRequest, ClientResponse};
use crate::types::WriteOp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest a split may be given to finish.
pub const MAX_SPLIT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Shortest bound on a split.
pub const SPLIT_TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// How much longer than the split's bound its caller waits for the answer (a split that
/// fails spends it telling the nodes to lift their fences).
pub const SPLIT_ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// One step of a split on one node ([`ClientRequest::SplitReplica`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SplitOp {
    /// Fences the table's writes on this node (durably) for the split to `next`, and opens
    /// this node's replicas of the child partitions, creating their groups.
    Prepare(TableLayout),
    /// Lifts the fence of the split from epoch `from_epoch` (before any node switched); the
    /// child replicas are closed (their directories stay, for the next attempt).
    Abort {
        /// The epoch of the layout being split.
        from_epoch: u64,
    },
    /// On the leader of parent `partition`: a barrier through its log, then every key of the
    /// parent that its child holds after the split is copied to the child (cleared first).
    Copy {
        /// The parent partition.
        partition: u32,
    },
    /// On the leader of child `partition`: puts copied from its parent (with `clear`, every
    /// user key of the child is deleted first).
    Ingest {
        /// The child partition.
        partition: u32,
        /// Delete every user key first (the first page of a copy).
        clear: bool,
        /// The puts.
        ops: Vec<WriteOp>,
    },
    /// On the leader of `partition`, after the switch: deletes the keys it no longer holds.
    Cleanup {
        /// The partition.
        partition: u32,
    },
    /// The split this node has pending for the table (its fence), if any.
    Status,
}

/// A node's answer to a [`SplitOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitReply {
    /// Done.
    Ok,
    /// Keys copied to the child, or deleted by a cleanup.
    Rows(u64),
    /// The layout of the pending split (`None`: no split pending).
    Pending(Option<TableLayout>),
}

/// The partition count a split of a table with `current` partitions goes to: `requested`,
/// which must be twice `current` when given.
pub fn split_target(table: &str, current: u32, requested: Option<u32>) -> Result<u32> {
    let doubled = current
        .checked_mul(2)
        .ok_or_else(|| Error::InvalidArgument(format!("{table}: partition count overflow")))?;
    match requested {
        None => Ok(doubled),
        Some(n) if n == doubled => Ok(n),
        Some(n) => Err(Error::InvalidArgument(format!(
            "--partitions {n}: a split doubles the partition count of {table} from {current} \
             to {doubled}"
        ))),
    }
}

impl Client {
    /// Splits `table`: doubles its partition count (or goes to `partitions`, which must be
    /// twice the current count or the count of a split in progress), through the meta
    /// service when the cluster has one, else through the table's coordinator (its first
    /// node). Returns once the new layout serves, or fails by `timeout`.
    pub async fn split_table(
        &self,
        table: &str,
        partitions: Option<u32>,
        timeout: Duration,
    ) -> Result<TableLayout> {
        let bound = timeout.clamp(SPLIT_TIMEOUT_MIN, MAX_SPLIT_TIMEOUT);
        let timeout_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        let rpc = bound + SPLIT_ANSWER_MARGIN;
        let resp = if self.has_meta().await {
            let req = MetaRequest::SplitTable {
                table: table.to_string(),
                partitions,
                timeout_ms,
            };
            self.meta(req, rpc).await?
        } else {
            let layout = self.newest_layout(table).await?;
            let coordinator = layout
                .nodes
                .first()
                .ok_or_else(|| Error::InvalidArgument(format!("table {table} has no nodes")))?;
            let req = ClientRequest::SplitTable {
                table: table.to_string(),
                partitions,
                timeout_ms,
            };
            self.call_with_timeout(&coordinator.addr, &req, rpc).await?
        };
        match resp {
            ClientResponse::Tables(mut t) if t.len() == 1 => {
                let layout = t.remove(0);
                self.remember_layout(&layout);
                Ok(layout)
            }
            ClientResponse::Error(e) => Err(Error::Server(e)),
            other => Err(Error::Transport(format!("unexpected answer {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_twice_the_current_count() {
        assert_eq!(split_target("t", 4, None).unwrap(), 8);
        assert_eq!(split_target("t", 4, Some(8)).unwrap(), 8);
        let e = split_target("t", 4, Some(12)).unwrap_err().to_string();
        assert!(e.contains("from 4 to 8"), "{e}");
        assert!(split_target("t", u32::MAX, None).is_err());
    }
}
