//! Membership changes: moving a partition's replica from one node to another, and the
//! operator loops built on it (draining a node, rebalancing onto a new one).
//!
//! Layer: service (on top of [`crate::node`]; the client-driven moves are in
//! `siltdb_client::membership`).
//!
//! A move of partition `p` from node `from` to node `to` is four idempotent steps, so an
//! operator (or a crash of the operator) can re-run it from the start at any point:
//!
//! 1. **Successor layout.** The table's newest layout (highest epoch on any of its nodes) with
//!    `to` in place of `from` among `p`'s replicas, epoch + 1
//!    ([`TableLayout::with_replica_moved`]). If the newest layout already has the move, it is
//!    reused (a resumed move).
//! 2. **Open the new replica.** `UpdateTable` to `to`: the node stores the layout and opens an
//!    empty replica of `p`, never initializing it (the group exists).
//! 3. **Raft membership.** `ChangeReplicas` to `p`'s leader: `add_learner(to, blocking)` — the
//!    learner catches up from the log, or from a checkpoint when the log it needs was purged —
//!    then `change_membership` to the new voter set (openraft's joint consensus). Nothing is
//!    done for what is already true, so a retry after a partial change completes it.
//! 4. **Publish.** `UpdateTable` to every node of the old and new layouts. The node `from`
//!    closes its replica of `p` and removes its directory (renamed to `*.removed` first, so a
//!    crash mid-removal is cleaned up at the next start).
//!
//! A step that fails stops the move with the error; the data is safe in every intermediate
//! state (the old voters keep the partition until the new membership is committed).

use crate::error::{Result, ServerError};
use crate::node::{close_replica, Node};
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use siltdb_client::layout::{NodeInfo, TableLayout};
pub use siltdb_client::membership::{replica_count, MoveOutcome};
use siltdb_client::proto::{ClientRequest, ClientResponse, MembershipReply};
use siltdb_client::{Client, ClientOptions};
use std::collections::BTreeSet;
use std::time::Duration;

pub use crate::node::{remove_leftovers, remove_replica_dir, REMOVED_SUFFIX};
/// Longest a `ChangeReplicas` may wait for a learner to catch up and the change to commit.
pub const MAX_CHANGE_TIMEOUT: Duration = Duration::from_secs(600);
/// Shortest bound on a `ChangeReplicas`.
pub const CHANGE_TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// Bound on asking one replica for its group's membership before a deletion.
const MEMBERSHIP_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

fn internal(e: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(e.to_string())
}

fn raft_error(
    layout: &TableLayout,
    e: RaftError<u64, ClientWriteError<u64, BasicNode>>,
) -> ServerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ServerError::NotLeader {
            leader: f.leader_id,
            addr: f
                .leader_id
                .and_then(|l| layout.addr_of(l).map(str::to_string))
                .or_else(|| f.leader_node.map(|n| n.addr)),
        },
        other => ServerError::Unavailable(format!("membership change: {other}")),
    }
}

impl Node {
    /// Replaces the stored layout of a table by its successor (or stores a table this node
    /// joins), opens the replicas newly assigned to this node and removes those no longer
    /// assigned to it. Idempotent for the stored layout.
    pub async fn update_table(&self, layout: TableLayout) -> Result<(), ServerError> {
        layout
            .validate()
            .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
        let _serial = self.create_lock.lock().await;
        let current = self.tables.read().get(&layout.name).cloned();
        // A layout with another partition count is accepted only as the end of the split
        // pending here (`crate::split`), or a later layout of that split table.
        let split = self.splits.pending(&layout.name).filter(|next| {
            next.app_id == layout.app_id
                && next.partition_count == layout.partition_count
                && layout.epoch >= next.epoch
        });
        match &current {
            // The same layout again: only retry removals a group had not confirmed yet (and
            // lift a split fence that a failure kept after storing the split's layout).
            Some(c) if *c == layout => {
                if split.is_some() {
                    self.splits.lift(&layout.name).await?;
                }
                return self.remove_unassigned(&layout).await;
            }
            // No membership change while a split is pending: its layout would not follow.
            Some(c) if c.is_successor(&layout) && self.splits.pending(&c.name).is_some() => {
                return Err(crate::split::fence::splitting(&c.name));
            }
            Some(c) if c.is_successor(&layout) => {}
            Some(c) if split.is_some() && layout.epoch > c.epoch => {}
            Some(c)
                if layout.name == c.name && layout.app_id == c.app_id && layout.epoch < c.epoch =>
            {
                tracing::debug!(table = %layout.name, epoch = layout.epoch, "stale layout ignored");
                return Ok(());
            }
            Some(c) => {
                return Err(ServerError::InvalidArgument(format!(
                    "layout of {} at epoch {} does not succeed the stored epoch {}",
                    layout.name, layout.epoch, c.epoch
                )))
            }
            None => {
                let tables = self.tables.read();
                if let Some(other) = tables.values().find(|t| t.app_id == layout.app_id) {
                    return Err(ServerError::AlreadyExists(format!(
                        "app id {} is table {}",
                        layout.app_id, other.name
                    )));
                }
            }
        }
        self.store_layout(&layout).await?;
        self.open_table(&layout, false).await.map_err(internal)?;
        self.tables
            .write()
            .insert(layout.name.clone(), layout.clone());
        // Envs may be what changed: applied to the replicas already open (`crate::envs`).
        self.apply_envs(&layout);
        if split.is_some() {
            self.splits.lift(&layout.name).await?;
            tracing::info!(table = %layout.name, partitions = layout.partition_count,
                "split switched: writes resume");
        }
        self.remove_unassigned(&layout).await?;
        tracing::info!(table = %layout.name, epoch = layout.epoch, "layout updated");
        Ok(())
    }

    /// Removes this node's replicas of `layout`'s partitions that it no longer assigns here,
    /// once each group confirms it committed a membership without this node.
    async fn remove_unassigned(&self, layout: &TableLayout) -> Result<(), ServerError> {
        let me = self.opts.node_id;
        for p in 0..layout.partition_count {
            if layout.replicas(p).iter().any(|n| n.id == me) {
                continue;
            }
            let gpid = layout.gpid(p);
            if self.failed.write().remove(&gpid).is_some() {
                self.remove_replica_files(gpid).await?;
                tracing::info!(%gpid, "quarantined replica replaced elsewhere and removed");
                continue;
            }
            // The local view only (no `Arc` of the replica is kept: `close_replica` below
            // waits for every other holder to let go).
            let listed = match self.replicas.read().get(&gpid) {
                None => continue,
                Some(r) => {
                    let m = r.raft().metrics().borrow().membership_config.clone();
                    m.voter_ids().any(|v| v == me) || m.membership().learner_ids().any(|v| v == me)
                }
            };
            // A layout alone never deletes data: the group itself must have committed a
            // membership without this node (a hostile or mistaken UpdateTable otherwise
            // deletes a voter's replica).
            if listed && !self.group_removed_me(layout, p).await {
                tracing::warn!(%gpid, epoch = layout.epoch,
                    "layout leaves this node out but its group still lists it; replica kept");
                continue;
            }
            let Some(r) = self.replicas.write().remove(&gpid) else {
                continue;
            };
            close_replica(r).await.map_err(internal)?;
            self.remove_replica_files(gpid).await?;
            self.hot_keys.forget(gpid);
            self.manual_compacts.lock().remove(&gpid);
            tracing::info!(%gpid, epoch = layout.epoch, "replica moved away and removed");
        }
        Ok(())
    }

    /// The local replica's view of partition `partition`'s membership.
    pub fn membership(&self, table: &str, partition: u32) -> Result<MembershipReply, ServerError> {
        let (_, r) = self.replica(table, partition)?;
        let m = r.raft().metrics().borrow().clone();
        let cfg = &m.membership_config;
        let committed = match (cfg.log_id(), m.last_applied) {
            (Some(at), Some(applied)) => at.index <= applied.index,
            (None, _) => true,
            _ => false,
        };
        Ok(MembershipReply {
            node: self.opts.node_id,
            leader: m.current_leader,
            voters: cfg.voter_ids().collect(),
            learners: cfg.membership().learner_ids().collect(),
            committed,
        })
    }

    /// True when a replica of partition `p` in `layout` (other than this node) answers with a
    /// committed membership that lists this node neither as voter nor as learner.
    async fn group_removed_me(&self, layout: &TableLayout, p: u32) -> bool {
        let me = self.opts.node_id;
        let mut o = self
            .opts
            .credentials
            .apply(ClientOptions::new(vec![self.opts.addr.clone()]));
        o.rpc_timeout = MEMBERSHIP_PROBE_TIMEOUT;
        o.deadline = MEMBERSHIP_PROBE_TIMEOUT;
        let client = Client::new(o);
        let req = ClientRequest::Membership {
            table: layout.name.clone(),
            partition: p,
        };
        for n in layout.replicas(p).iter().filter(|n| n.id != me) {
            if let Ok(ClientResponse::Membership(m)) = client.call(&n.addr, &req).await {
                if m.committed && !m.voters.contains(&me) && !m.learners.contains(&me) {
                    return true;
                }
            }
        }
        false
    }

    /// On the leader of a partition: makes `to` a voter in place of `from` (learner first,
    /// caught up, then a joint-consensus membership change), within `timeout`.
    pub async fn change_replicas(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        to: NodeInfo,
        timeout: Duration,
    ) -> Result<ClientResponse, ServerError> {
        let (layout, r) = self.replica(table, partition)?;
        let me = self.opts.node_id;
        let leader = r.leader();
        if leader != Some(me) {
            return Err(ServerError::NotLeader {
                leader,
                addr: leader.and_then(|l| layout.addr_of(l).map(str::to_string)),
            });
        }
        let bound = timeout.clamp(CHANGE_TIMEOUT_MIN, MAX_CHANGE_TIMEOUT);
        let work = async {
            let voters: BTreeSet<u64> = r
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .voter_ids()
                .collect();
            let mut target = voters.clone();
            target.remove(&from);
            target.insert(to.id);
            if !voters.contains(&to.id) {
                r.raft()
                    .add_learner(to.id, BasicNode::new(to.addr.clone()), true)
                    .await
                    .map_err(|e| raft_error(&layout, e))?;
                tracing::info!(gpid = %r.gpid(), learner = to.id, "learner caught up");
            }
            if voters != target {
                r.raft()
                    .change_membership(target.clone(), false)
                    .await
                    .map_err(|e| raft_error(&layout, e))?;
                tracing::info!(gpid = %r.gpid(), voters = ?target, "membership changed");
            }
            Ok::<_, ServerError>(())
        };
        match tokio::time::timeout(bound, work).await {
            Ok(r) => r.map(|()| ClientResponse::Ok),
            Err(_) => Err(ServerError::Timeout(format!(
                "membership change of {table}.{partition} not done within {bound:?}"
            ))),
        }
    }
}
