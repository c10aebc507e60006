//! Membership changes driven by the client: moving a partition's replica from one node to
//! another ([`Client::move_replica`]), and the operator loops built on it (draining a node,
//! rebalancing onto a new one). The steps and their idempotence are described in the server's
//! `siltdb_server::membership`, which serves `UpdateTable` and `ChangeReplicas`.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::layout::{NodeInfo, TableLayout};
use crate::proto::{ClientRequest, ClientResponse};
use std::collections::BTreeSet;
use std::time::Duration;

/// What a finished move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveOutcome {
    /// The layout after the move.
    pub layout: TableLayout,
    /// Whether the newest layout already had the move (a resumed or repeated move).
    pub resumed: bool,
}

impl Client {
    /// The newest layout of `table`: the highest epoch any of its nodes (or the seeds) stores.
    /// Refreshes the cache.
    pub async fn newest_layout(&self, table: &str) -> Result<TableLayout> {
        self.forget_layout(table);
        let mut best = self.layout(table).await?;
        let mut asked = BTreeSet::new();
        loop {
            let addrs: Vec<String> = best
                .nodes
                .iter()
                .map(|n| n.addr.clone())
                .filter(|a| !asked.contains(a))
                .collect();
            if addrs.is_empty() {
                break;
            }
            for addr in addrs {
                asked.insert(addr.clone());
                if let Ok(ClientResponse::Tables(ts)) =
                    self.call(&addr, &ClientRequest::ListTables).await
                {
                    for t in ts {
                        if t.name == table && t.epoch > best.epoch {
                            best = t;
                        }
                    }
                }
            }
        }
        self.remember_layout(&best);
        Ok(best)
    }

    /// Moves partition `partition`'s replica on node `from` to node `to` (see the module
    /// doc). `catch_up` bounds the learner's catch-up and the membership change.
    pub async fn move_replica(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        to: &NodeInfo,
        catch_up: Duration,
    ) -> Result<MoveOutcome> {
        self.move_replica_off(table, partition, from, to, catch_up, false)
            .await
    }

    /// [`Client::move_replica`] off a node that is down (`from_dead`): the move never calls
    /// it, so the final publish skips it (it learns the new layout when it comes back, from
    /// the meta service). The partition's other replicas must hold a majority.
    pub async fn move_replica_off(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        to: &NodeInfo,
        catch_up: Duration,
        from_dead: bool,
    ) -> Result<MoveOutcome> {
        let old = self.newest_layout(table).await?;
        let ids: Vec<u64> = old.replicas(partition).iter().map(|n| n.id).collect();
        let resumed = ids.contains(&to.id) && !ids.contains(&from);
        let next = if resumed {
            old.clone()
        } else {
            old.with_replica_moved(partition, from, to)?
        };
        // 2. The new replica exists (empty, not initialized) before the leader adds it.
        self.retry_on(&to.addr, &ClientRequest::UpdateTable(next.clone()))
            .await?;
        // 3. Learner, catch-up, joint consensus — on whichever replica leads.
        let req = ClientRequest::ChangeReplicas {
            table: table.to_string(),
            partition,
            from,
            to: to.clone(),
            timeout_ms: u64::try_from(catch_up.as_millis()).unwrap_or(u64::MAX),
        };
        let rpc = catch_up + Duration::from_secs(5);
        self.partition_call_with(&next, partition, &req, rpc)
            .await?;
        // 4. Publish; `from` drops its replica.
        let mut addrs: Vec<&str> = old.nodes.iter().map(|n| n.addr.as_str()).collect();
        for n in &next.nodes {
            if !addrs.contains(&n.addr.as_str()) {
                addrs.push(&n.addr);
            }
        }
        let dead_addr = old.addr_of(from).filter(|_| from_dead);
        for addr in addrs {
            if Some(addr) == dead_addr {
                continue;
            }
            self.retry_on(addr, &ClientRequest::UpdateTable(next.clone()))
                .await?;
        }
        self.remember_layout(&next);
        Ok(MoveOutcome {
            layout: next,
            resumed,
        })
    }

    /// Moves every replica on node `node` of `table` to the other nodes of `targets` (each
    /// move to the target hosting the fewest replicas of the table that is not already in the
    /// group). Returns the number of moves.
    pub async fn drain_node(
        &self,
        table: &str,
        node: u64,
        targets: &[NodeInfo],
        catch_up: Duration,
    ) -> Result<usize> {
        self.drain_node_off(table, node, targets, catch_up, false)
            .await
    }

    /// [`Client::drain_node`] of a node that is down (see [`Client::move_replica_off`]).
    pub async fn drain_node_off(
        &self,
        table: &str,
        node: u64,
        targets: &[NodeInfo],
        catch_up: Duration,
        node_dead: bool,
    ) -> Result<usize> {
        let mut moves = 0;
        loop {
            let layout = self.newest_layout(table).await?;
            let Some(p) = (0..layout.partition_count)
                .find(|&p| layout.replicas(p).iter().any(|n| n.id == node))
            else {
                return Ok(moves);
            };
            let group: Vec<u64> = layout.replicas(p).iter().map(|n| n.id).collect();
            let to = targets
                .iter()
                .filter(|t| t.id != node && !group.contains(&t.id))
                .min_by_key(|t| (replica_count(&layout, t.id), t.id))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "no node to take partition {p} of {table} (group {group:?})"
                    ))
                })?;
            self.move_replica_off(table, p, node, to, catch_up, node_dead)
                .await?;
            moves += 1;
        }
    }

    /// Moves replicas of `table` onto node `to` (new or not) from the most loaded nodes until
    /// it hosts its share (`partitions × replicas / nodes`, rounded down). Returns the moves.
    pub async fn rebalance_onto(
        &self,
        table: &str,
        to: &NodeInfo,
        catch_up: Duration,
    ) -> Result<usize> {
        let mut moves = 0;
        loop {
            let layout = self.newest_layout(table).await?;
            let mut nodes = layout.nodes.len();
            if !layout.nodes.iter().any(|n| n.id == to.id) {
                nodes += 1;
            }
            let share = (layout.partition_count as usize * layout.replica_count as usize) / nodes;
            if replica_count(&layout, to.id) >= share {
                return Ok(moves);
            }
            // The most loaded node, and one of its partitions `to` is not in.
            let busiest = layout
                .nodes
                .iter()
                .filter(|n| n.id != to.id)
                .max_by_key(|n| (replica_count(&layout, n.id), std::cmp::Reverse(n.id)))
                .map(|n| n.id)
                .ok_or_else(|| Error::InvalidArgument(format!("{table} has no nodes")))?;
            let p = (0..layout.partition_count)
                .find(|&p| {
                    let ids: Vec<u64> = layout.replicas(p).iter().map(|n| n.id).collect();
                    ids.contains(&busiest) && !ids.contains(&to.id)
                })
                .ok_or_else(|| {
                    Error::Internal(format!("node {busiest} has no partition to give"))
                })?;
            self.move_replica(table, p, busiest, to, catch_up).await?;
            moves += 1;
        }
    }
}

/// How many replicas of `layout` node `id` hosts.
pub fn replica_count(layout: &TableLayout, id: u64) -> usize {
    (0..layout.partition_count)
        .filter(|&p| layout.replicas(p).iter().any(|n| n.id == id))
        .count()
}
