//! The coordinator of a split: drives the steps on every node of the table (see the module
//! doc of [`crate::split`]). Runs on the table's first node (cluster without a meta service)
//! or on the meta leader, one split at a time per coordinator.

use super::steps::peer_client;
use crate::error::ServerError;
use crate::layout::TableLayout;
use crate::node::Node;
use crate::proto::{ClientRequest, ClientResponse};
use siltdb_client::split::{
    split_target, SplitOp, SplitReply, MAX_SPLIT_TIMEOUT, SPLIT_TIMEOUT_MIN,
};
use siltdb_client::Client;
use std::time::{Duration, Instant};

/// Bound on one node taking one step (retries included) of a split.
pub const MAX_SPLIT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on telling one node that a split is aborted.
pub const ABORT_CALL_TIMEOUT: Duration = Duration::from_secs(3);

fn client_error(e: siltdb_client::Error) -> ServerError {
    match e {
        siltdb_client::Error::Server(s) => s,
        other => ServerError::Unavailable(other.to_string()),
    }
}

fn expect_split(r: siltdb_client::Result<ClientResponse>) -> Result<SplitReply, ServerError> {
    match r.map_err(client_error)? {
        ClientResponse::Split(s) => Ok(s),
        ClientResponse::Error(e) => Err(e),
        other => Err(ServerError::Internal(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

fn split_req(table: &str, op: SplitOp) -> ClientRequest {
    ClientRequest::SplitReplica {
        table: table.to_string(),
        op,
    }
}

/// Splits `table` (to `partitions`, which must be twice its count, or the count of the split
/// pending on its nodes; `None`: double it), bounded by `timeout`. Resumes a split an earlier
/// attempt left pending. Returns the new layout once every node of the table serves it.
pub async fn split_table(
    node: &Node,
    table: &str,
    partitions: Option<u32>,
    timeout: Duration,
) -> Result<TableLayout, ServerError> {
    let bound = timeout.clamp(SPLIT_TIMEOUT_MIN, MAX_SPLIT_TIMEOUT);
    let started = Instant::now();
    let Ok(_one) = tokio::time::timeout(bound, node.splits.driver.lock()).await else {
        return Err(ServerError::Timeout(format!(
            "another split coordinated by this node still runs after {bound:?}"
        )));
    };
    drive(node, table, partitions, started + bound).await
}

/// What is left until `deadline`, or the timeout error of the split's phase `what`.
fn left(deadline: Instant, table: &str, what: &str) -> Result<Duration, ServerError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ServerError::Timeout(format!(
            "split of {table}: no time left for {what}"
        )));
    }
    Ok(left)
}

async fn within<T>(
    deadline: Instant,
    table: &str,
    what: &str,
    f: impl std::future::Future<Output = Result<T, ServerError>>,
) -> Result<T, ServerError> {
    let bound = left(deadline, table, what)?;
    match tokio::time::timeout(bound, f).await {
        Ok(r) => r,
        Err(_) => Err(ServerError::Timeout(format!(
            "split of {table}: {what} not done in time"
        ))),
    }
}

async fn drive(
    node: &Node,
    table: &str,
    partitions: Option<u32>,
    deadline: Instant,
) -> Result<TableLayout, ServerError> {
    let step = left(deadline, table, "the layout")?.min(MAX_SPLIT_STEP_TIMEOUT);
    let client = peer_client(node, step);
    let old = client.newest_layout(table).await.map_err(client_error)?;
    if old.app_id == crate::meta::META_APP_ID {
        return Err(ServerError::InvalidArgument(
            "the meta table has one partition and is never split".into(),
        ));
    }
    // A split an earlier attempt left pending on some node (the highest epoch wins).
    let mut pending: Option<TableLayout> = None;
    for n in &old.nodes {
        if let Ok(SplitReply::Pending(Some(p))) = expect_split(
            client
                .call(&n.addr, &split_req(table, SplitOp::Status))
                .await,
        ) {
            if pending.as_ref().is_none_or(|q| p.epoch > q.epoch) {
                pending = Some(p);
            }
        }
    }
    let fresh = old
        .split_successor()
        .map_err(|e| ServerError::InvalidArgument(e.to_string()));
    let next = match pending {
        // Not switched anywhere yet, or switched somewhere (the newest layout is the split's).
        Some(p) if fresh.as_ref().is_ok_and(|f| *f == p) || p == old => {
            if partitions.is_some_and(|n| n != p.partition_count) {
                return Err(ServerError::InvalidArgument(format!(
                    "a split of {table} to {} partitions is pending: finish it first (split \
                     without --partitions)",
                    p.partition_count
                )));
            }
            tracing::info!(table, to = p.partition_count, "resuming a pending split");
            p
        }
        stale => {
            if let Some(p) = stale {
                // Left by a split that no longer follows the newest layout: lift it first.
                tracing::warn!(table, epoch = p.epoch, "lifting a stale pending split");
                abort_everywhere(node, &old, old.epoch).await;
            }
            if partitions == Some(old.partition_count) && old.splits > 0 {
                // Already done (an answer lost after the switch): make sure every node has it.
                within(deadline, table, "the switch", publish(&client, &old)).await?;
                return Ok(old);
            }
            split_target(table, old.partition_count, partitions)
                .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
            fresh?
        }
    };
    if old.epoch < next.epoch {
        let from_epoch = old.epoch;
        let prepared = within(
            deadline,
            table,
            "the prepare and copy",
            prepare_and_copy(&client, &old, &next),
        )
        .await;
        if let Err(e) = prepared {
            abort_everywhere(node, &old, from_epoch).await;
            return Err(e);
        }
    }
    // The switch: from here on the split only moves forward (a failure is finished by a
    // retry; the nodes not switched yet stay fenced).
    within(deadline, table, "the switch", publish(&client, &next))
        .await
        .map_err(|e| {
            ServerError::Unavailable(format!(
                "split of {table} switched on some nodes only ({e}); run split again to finish"
            ))
        })?;
    for q in 0..next.partition_count {
        let req = split_req(table, SplitOp::Cleanup { partition: q });
        let call = async {
            expect_split(
                client
                    .partition_call_with(&next, q, &req, node.opts.request_timeout * 4)
                    .await,
            )
        };
        if let Err(e) = within(deadline, table, "the cleanup", call).await {
            tracing::warn!(table, partition = q, error = %e,
                "split cleanup not done (reads hide the keys; the next cleanup removes them)");
        }
    }
    tracing::info!(
        table,
        partitions = next.partition_count,
        epoch = next.epoch,
        "split done"
    );
    Ok(next)
}

/// Fences every node and opens the children (all nodes or none: a node left unfenced could
/// accept a write the copy misses), then copies every parent to its child.
async fn prepare_and_copy(
    client: &Client,
    old: &TableLayout,
    next: &TableLayout,
) -> Result<(), ServerError> {
    for n in &old.nodes {
        let req = split_req(&old.name, SplitOp::Prepare(next.clone()));
        expect_split(client.retry_on(&n.addr, &req).await).map_err(|e| {
            ServerError::Unavailable(format!(
                "split of {}: node {} not prepared: {e}",
                old.name, n.id
            ))
        })?;
    }
    for p in 0..old.partition_count {
        let req = split_req(&old.name, SplitOp::Copy { partition: p });
        let rows = expect_split(
            client
                .partition_call_with(old, p, &req, super::steps::MAX_COPY_TIMEOUT)
                .await,
        )?;
        tracing::info!(table = %old.name, partition = p, ?rows, "split: partition copied");
    }
    Ok(())
}

/// Best effort: lifts the fence of the split from `from_epoch` on every node (one that does
/// not answer stays fenced until the split is run again).
async fn abort_everywhere(node: &Node, old: &TableLayout, from_epoch: u64) {
    let client = peer_client(node, ABORT_CALL_TIMEOUT);
    for n in &old.nodes {
        let req = split_req(&old.name, SplitOp::Abort { from_epoch });
        let r = client
            .call_with_timeout(&n.addr, &req, ABORT_CALL_TIMEOUT)
            .await;
        if let Err(e) = expect_split(r) {
            tracing::warn!(table = %old.name, node = n.id, error = %e,
                "split abort not delivered: the node stays fenced until the split runs again");
        }
    }
}

/// Stores `layout` on every node of it.
async fn publish(client: &Client, layout: &TableLayout) -> Result<(), ServerError> {
    for n in &layout.nodes {
        match client
            .retry_on(&n.addr, &ClientRequest::UpdateTable(layout.clone()))
            .await
            .map_err(client_error)?
        {
            ClientResponse::Error(e) => return Err(e),
            _ => continue,
        }
    }
    Ok(())
}
