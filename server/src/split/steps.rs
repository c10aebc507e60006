//! The steps of a split on one node ([`SplitOp`]): prepare (fence and child groups), abort,
//! copy (on a parent's leader), ingest (on a child's leader), cleanup and status.

use super::owner::holds;
use crate::error::ServerError;
use crate::layout::TableLayout;
use crate::node::{client_mutation, close_replica, Node, MAX_WRITE_SIZE_BYTES};
use crate::proto::{ClientRequest, ClientResponse};
use openraft::BasicNode;
use siltdb_client::split::{SplitOp, SplitReply};
use siltdb_client::{Client, ClientOptions};
use siltdb_replica::replica::Replica;
use siltdb_replica::{Mutation, WriteOp};
use std::collections::BTreeMap;
use std::time::Duration;

/// Rows read from a parent per copy page.
pub const MAX_COPY_PAGE_ROWS: usize = 2_000;
/// Bytes read from a parent per copy page (one more row may follow the limit).
pub const MAX_COPY_PAGE_BYTES: usize = 1 << 20;
/// Bytes of puts in one ingest write (a single larger record goes alone).
pub const MAX_INGEST_WRITE_BYTES: u64 = MAX_WRITE_SIZE_BYTES / 2;
/// Bound on one copy of a parent (every page and every ingest).
pub const MAX_COPY_TIMEOUT: Duration = Duration::from_secs(600);

fn internal(e: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(e.to_string())
}

/// Serves one split step for `table` on `node`.
pub async fn handle(node: &Node, table: &str, op: SplitOp) -> Result<ClientResponse, ServerError> {
    let reply = match op {
        SplitOp::Prepare(next) => prepare(node, table, next).await?,
        SplitOp::Abort { from_epoch } => abort(node, table, from_epoch).await?,
        SplitOp::Copy { partition } => copy(node, table, partition).await?,
        SplitOp::Ingest {
            partition,
            clear,
            ops,
        } => ingest(node, table, partition, clear, ops).await?,
        SplitOp::Cleanup { partition } => cleanup(node, table, partition).await?,
        SplitOp::Status => SplitReply::Pending(node.splits.pending(table)),
    };
    Ok(ClientResponse::Split(reply))
}

/// A client of this cluster presenting the node's credentials.
pub(crate) fn peer_client(node: &Node, deadline: Duration) -> Client {
    let mut o = node
        .opts
        .credentials
        .apply(ClientOptions::new(vec![node.opts.addr.clone()]));
    o.deadline = deadline;
    Client::new(o)
}

fn leader_here(node: &Node, layout: &TableLayout, r: &Replica) -> Result<(), ServerError> {
    let leader = r.leader();
    if leader == Some(node.opts.node_id) {
        return Ok(());
    }
    Err(ServerError::NotLeader {
        leader,
        addr: leader.and_then(|l| layout.addr_of(l).map(str::to_string)),
    })
}

/// Fences the table's writes (durably), waits out the admitted ones, then opens this node's
/// replicas of the children, initializing each child group on its first replica.
async fn prepare(node: &Node, table: &str, next: TableLayout) -> Result<SplitReply, ServerError> {
    if next.name != table {
        return Err(ServerError::InvalidArgument(format!(
            "split layout of {} sent for {table}",
            next.name
        )));
    }
    next.validate()
        .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
    let _serial = node.create_lock.lock().await;
    let current = node.table(table)?;
    if current == next {
        return Ok(SplitReply::Ok);
    }
    let expected = current
        .split_successor()
        .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
    if expected != next {
        return Err(ServerError::InvalidArgument(format!(
            "the split of {table} to {} partitions at epoch {} does not follow the layout \
             stored here ({} partitions, epoch {}); reconcile the layouts first",
            next.partition_count, next.epoch, current.partition_count, current.epoch
        )));
    }
    if let Some(other) = node.splits.pending(table) {
        if other != next {
            return Err(ServerError::InvalidArgument(format!(
                "another split of {table} (to epoch {}) is pending here",
                other.epoch
            )));
        }
    }
    node.splits
        .fence(current.epoch, &next, node.opts.request_timeout * 2)
        .await?;
    open_children(node, &current, &next).await?;
    tracing::info!(
        table,
        to = next.partition_count,
        "split prepared: writes fenced"
    );
    Ok(SplitReply::Ok)
}

/// Opens this node's replicas of the children of a split from `current` to `next` (after a
/// restart, [`Node::open`] calls it for every pending split), creating the group of each child
/// whose first replica is here.
pub(crate) async fn open_children(
    node: &Node,
    current: &TableLayout,
    next: &TableLayout,
) -> Result<(), ServerError> {
    let me = node.opts.node_id;
    for c in current.partition_count..next.partition_count {
        let replicas = next.replicas(c);
        if !replicas.iter().any(|n| n.id == me) {
            continue;
        }
        let gpid = next.gpid(c);
        if !node.replicas.read().contains_key(&gpid) {
            node.open_replica(next, c).await.map_err(internal)?;
        }
        let Some(r) = node.replicas.read().get(&gpid).cloned() else {
            continue;
        };
        let empty = r.raft().metrics().borrow().last_log_index.is_none();
        if replicas.first().map(|n| n.id) == Some(me) && empty {
            let members: BTreeMap<u64, BasicNode> = replicas
                .iter()
                .map(|n| (n.id, BasicNode::new(n.addr.clone())))
                .collect();
            let done = r.initialize_with(members).await.map_err(internal)?;
            tracing::info!(%gpid, initialized = done, "child partition group created");
        }
    }
    Ok(())
}

/// Lifts the fence of the split from `from_epoch` (or of an older one a failure left behind)
/// and closes the child replicas (their
/// directories stay: a later split reuses them, its copy clears them first).
async fn abort(node: &Node, table: &str, from_epoch: u64) -> Result<SplitReply, ServerError> {
    let _serial = node.create_lock.lock().await;
    let Some(next) = node.splits.pending(table) else {
        return Ok(SplitReply::Ok);
    };
    if next.epoch > from_epoch.saturating_add(1) {
        return Err(ServerError::InvalidArgument(format!(
            "the pending split of {table} starts from epoch {}, after {from_epoch}",
            next.epoch.saturating_sub(1)
        )));
    }
    node.splits.lift(table).await?;
    let current = node.table(table)?;
    for c in current.partition_count..next.partition_count {
        let r = node.replicas.write().remove(&next.gpid(c));
        if let Some(r) = r {
            close_replica(r).await.map_err(internal)?;
        }
    }
    tracing::warn!(table, "split aborted: writes resume on the old layout");
    Ok(SplitReply::Ok)
}

/// On the leader of parent `partition`: a barrier through its log (every write admitted
/// before the fence is applied here once it returns, or never commits), then every key the
/// child holds after the split is copied to it, the child cleared first.
async fn copy(node: &Node, table: &str, partition: u32) -> Result<SplitReply, ServerError> {
    let next = node.splits.pending(table).ok_or_else(|| {
        ServerError::InvalidArgument(format!("no split of {table} is pending on this node"))
    })?;
    let (layout, r) = node.replica(table, partition)?;
    leader_here(node, &layout, &r)?;
    let child = partition + layout.partition_count;
    let count = next.partition_count;
    let work = async {
        r.write_control(Mutation::new())
            .await
            .map_err(|e| node.map_error(&layout, e))?;
        let client = peer_client(node, node.opts.request_timeout * 6);
        let mut from = Vec::new();
        let mut cleared = false;
        let mut copied = 0u64;
        loop {
            let put = |key: Vec<u8>, value: Vec<u8>| {
                holds(&key, child, count).then_some(WriteOp::Put { key, value })
            };
            let (ops, next_page) =
                page_ops(node, &layout, &r, "split copy read", from, put).await?;
            copied += ops.len() as u64;
            for chunk in chunks(ops) {
                send_ingest(&client, &next, child, !cleared, chunk).await?;
                cleared = true;
            }
            if !cleared {
                // Nothing for the child on the first page: still clear it (a retried copy).
                send_ingest(&client, &next, child, true, Vec::new()).await?;
                cleared = true;
            }
            match next_page {
                Some(k) => from = k,
                None => break,
            }
        }
        Ok::<u64, ServerError>(copied)
    };
    let copied = match tokio::time::timeout(MAX_COPY_TIMEOUT, work).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ServerError::Timeout(format!(
                "copy of {table}.{partition} not done within {MAX_COPY_TIMEOUT:?}"
            )))
        }
    };
    tracing::info!(
        table,
        partition,
        child,
        copied,
        "split: parent copied to its child"
    );
    Ok(SplitReply::Rows(copied))
}

/// `ops` in groups of at most [`MAX_INGEST_WRITE_BYTES`] bytes (a larger op alone).
/// One page of `r`'s rows from `from` (bounded by the node's request timeout), each row turned
/// into an op by `op_of` or skipped, and where the next page starts (`None`: the last page).
/// The one paging loop body of the copy and the cleanup.
async fn page_ops(
    node: &Node,
    layout: &TableLayout,
    r: &Replica,
    what: &str,
    from: Vec<u8>,
    op_of: impl Fn(Vec<u8>, Vec<u8>) -> Option<WriteOp>,
) -> Result<(Vec<WriteOp>, Option<Vec<u8>>), ServerError> {
    let scan = r.scan(from, None, MAX_COPY_PAGE_ROWS, MAX_COPY_PAGE_BYTES);
    let page = node.bounded(what, layout, scan).await?;
    let ops = page
        .rows
        .into_iter()
        .filter_map(|(key, value)| op_of(key, value))
        .collect();
    Ok((ops, page.resume_from))
}

fn chunks(ops: Vec<WriteOp>) -> Vec<Vec<WriteOp>> {
    let mut out: Vec<Vec<WriteOp>> = Vec::new();
    let mut bytes = 0u64;
    for op in ops {
        let size = match &op {
            WriteOp::Put { key, value } => (key.len() + value.len()) as u64,
            WriteOp::Delete { key } => key.len() as u64,
            WriteOp::DeleteRange { start, end } => (start.len() + end.len()) as u64,
        };
        match out.last_mut() {
            Some(last) if bytes + size <= MAX_INGEST_WRITE_BYTES => {
                bytes += size;
                last.push(op);
            }
            _ => {
                bytes = size;
                out.push(vec![op]);
            }
        }
    }
    out
}

async fn send_ingest(
    client: &Client,
    next: &TableLayout,
    child: u32,
    clear: bool,
    ops: Vec<WriteOp>,
) -> Result<(), ServerError> {
    let req = ClientRequest::SplitReplica {
        table: next.name.clone(),
        op: SplitOp::Ingest {
            partition: child,
            clear,
            ops,
        },
    };
    match client
        .partition_call_with(next, child, &req, Duration::from_secs(10))
        .await
    {
        Ok(ClientResponse::Split(_)) => Ok(()),
        Ok(ClientResponse::Error(e)) => Err(e),
        Ok(other) => Err(internal(format!("unexpected answer {other:?}"))),
        Err(siltdb_client::Error::Server(e)) => Err(e),
        Err(e) => Err(ServerError::Unavailable(format!(
            "copy to {}.{child}: {e}",
            next.name
        ))),
    }
}

/// On the leader of child `partition` of a pending split: the copied puts (each a key the
/// child holds), with `clear` after deleting every user key of the child.
async fn ingest(
    node: &Node,
    table: &str,
    partition: u32,
    clear: bool,
    ops: Vec<WriteOp>,
) -> Result<SplitReply, ServerError> {
    let next = node.splits.pending(table).ok_or_else(|| {
        ServerError::InvalidArgument(format!("no split of {table} is pending on this node"))
    })?;
    let half = next.partition_count / 2;
    if partition < half || partition >= next.partition_count {
        return Err(ServerError::InvalidArgument(format!(
            "partition {partition} is not a child of the split of {table}"
        )));
    }
    for op in &ops {
        match op {
            WriteOp::Put { key, .. } if holds(key, partition, next.partition_count) => {}
            _ => {
                return Err(ServerError::InvalidArgument(format!(
                    "a split ingest into {table}.{partition} holds only puts of its keys"
                )))
            }
        }
    }
    let gpid = next.gpid(partition);
    let r = node
        .replicas
        .read()
        .get(&gpid)
        .cloned()
        .ok_or_else(|| ServerError::NoSuchPartition(gpid.to_string()))?;
    leader_here(node, &next, &r)?;
    let m = client_mutation(ops)?;
    node.bounded("split ingest", &next, async {
        if clear {
            r.write_control(Mutation::new()).await?;
            let db = r.state_machine().db();
            let wipe = tokio::task::spawn_blocking(move || {
                siltdb_replica::duplication::replay::clear_mutation(&db)
            })
            .await
            .map_err(|e| siltdb_replica::Error::Raft(format!("clear task: {e}")))?
            .map_err(|e| siltdb_replica::Error::Raft(e.to_string()))?;
            if let Some(w) = wipe {
                r.write_control(w).await?;
            }
        }
        if !m.ops.is_empty() {
            r.write_control(m).await?;
        }
        Ok(())
    })
    .await?;
    Ok(SplitReply::Ok)
}

/// On the leader of `partition` after the switch: deletes (through its log) every key the
/// partition no longer holds. Reads never return them meanwhile (`super::owner`).
async fn cleanup(node: &Node, table: &str, partition: u32) -> Result<SplitReply, ServerError> {
    let (layout, r) = node.replica(table, partition)?;
    if layout.splits == 0 {
        return Ok(SplitReply::Rows(0));
    }
    leader_here(node, &layout, &r)?;
    let count = layout.partition_count;
    let mut from = Vec::new();
    let mut deleted = 0u64;
    loop {
        let delete = |key: Vec<u8>, _value: Vec<u8>| {
            (!holds(&key, partition, count)).then_some(WriteOp::Delete { key })
        };
        let (ops, next_page) =
            page_ops(node, &layout, &r, "split cleanup read", from, delete).await?;
        deleted += ops.len() as u64;
        for chunk in chunks(ops) {
            let m = client_mutation(chunk)?;
            node.bounded("split cleanup", &layout, r.write_control(m))
                .await?;
        }
        match next_page {
            Some(k) => from = k,
            None => break,
        }
    }
    tracing::info!(
        table,
        partition,
        deleted,
        "split: keys of the sibling removed"
    );
    Ok(SplitReply::Rows(deleted))
}
