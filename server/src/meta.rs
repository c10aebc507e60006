//! The meta service: the cluster's catalog and the one place that changes it.
//!
//! Layer: service (on top of [`crate::node`]; its wire types are in `siltdb_client::meta`).
//!
//! The meta service is a partition of the same system: table [`META_TABLE`] (app id
//! [`META_APP_ID`], one partition, replicated with openraft like any other) holds
//!
//! | key | value |
//! |---|---|
//! | `node/<id, 20 digits>` | JSON [`NodeInfo`]: a registered node |
//! | `table/<name>` | JSON [`TableLayout`]: the newest layout of a table |
//! | `dup/<table>/<id, 20 digits>` | JSON [`DuplicationEntry`]: a duplication of a table |
//!
//! `silt-admin init-meta` creates it on three (or one) nodes. Every catalog request
//! ([`MetaRequest`]) goes to the meta partition's leader (clients follow `NotLeader`
//! redirects as for any partition); the leader runs one request at a time, so table ids are
//! allocated without races and two membership changes never interleave. A request reads the
//! catalog linearizably (ReadIndex), acts, and writes the result through the meta group's log
//! before answering:
//!
//! - **create table**: allocates the next app id, places the table on the registered nodes
//!   (or the ones named), records the layout, then creates it on every hosting node;
//!   idempotent for the same name and shape.
//! - **move replica / drain node / add node**: the membership changes of
//!   [`crate::membership`], driven from the leader, each resulting layout recorded.
//! - **register node / list**: the node registry and the catalog.
//! - **set / delete env**: the table's successor layout with the app env changed
//!   (`siltdb_client::envs`), recorded, then pushed to every node of the table.
//! - **split table**: the partition split of [`crate::split`], driven from the leader, the
//!   new layout recorded once every node switched.
//! - **add / remove duplication**: recorded first, then installed on (removed from) every
//!   node of the table. A node that was down, or a replica that moved in later, gets the
//!   record from the next reconcile (every membership change ends with one for its table).
//!
//! The catalog is the source of truth for layouts and duplications: `ReconcileTables` pushes
//! each recorded layout to every node of it and installs each recorded duplication on every
//! node of its table (a node that was down during a change catches up; both pushes are
//! idempotent, and a layout only ever moves forward by epoch).

use crate::error::ServerError;
use crate::node::Node;
use serde::Serialize;
use siltdb_client::layout::{NodeInfo, TableLayout};
pub use siltdb_client::meta::{
    meta_layout, Catalog, DuplicationEntry, MetaRequest, META_APP_ID, META_TABLE,
};
use siltdb_client::proto::{ClientRequest, ClientResponse};
use siltdb_client::{Client, ClientOptions};
use siltdb_replica::{Mutation, WriteOp};
use std::time::Duration;

/// Most rows one catalog read returns.
const MAX_CATALOG_ROWS: usize = 100_000;
/// Bytes one catalog read may return.
const MAX_CATALOG_BYTES: usize = 64 << 20;
/// Key prefix of registered nodes.
const NODE_PREFIX: &str = "node/";
/// Key prefix of table layouts.
const TABLE_PREFIX: &str = "table/";
/// Key prefix of duplications.
const DUP_PREFIX: &str = "dup/";

fn node_key(id: u64) -> Vec<u8> {
    format!("{NODE_PREFIX}{id:020}").into_bytes()
}

fn table_key(name: &str) -> Vec<u8> {
    format!("{TABLE_PREFIX}{name}").into_bytes()
}

fn dup_key(table: &str, id: u64) -> Vec<u8> {
    format!("{DUP_PREFIX}{table}/{id:020}").into_bytes()
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, ServerError> {
    serde_json::to_vec(v).map_err(|e| ServerError::Internal(format!("catalog encode: {e}")))
}

fn catalog_error(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(format!("catalog {what}: {e}"))
}

fn client_error(e: siltdb_client::Error) -> ServerError {
    match e {
        siltdb_client::Error::Server(s) => s,
        other => ServerError::Unavailable(other.to_string()),
    }
}

impl Node {
    /// Reads the catalog linearizably from the local meta replica (the leader's).
    async fn catalog(&self) -> Result<Catalog, ServerError> {
        let (layout, r) = self.replica(META_TABLE, 0)?;
        let page = self
            .bounded(
                "catalog read",
                &layout,
                r.scan(Vec::new(), None, MAX_CATALOG_ROWS, MAX_CATALOG_BYTES),
            )
            .await?;
        if page.resume_from.is_some() {
            return Err(ServerError::Internal("catalog larger than one read".into()));
        }
        let mut c = Catalog::default();
        for (k, v) in page.rows {
            if k.starts_with(NODE_PREFIX.as_bytes()) {
                c.nodes
                    .push(serde_json::from_slice(&v).map_err(|e| catalog_error("node", e))?);
            } else if k.starts_with(TABLE_PREFIX.as_bytes()) {
                c.tables
                    .push(serde_json::from_slice(&v).map_err(|e| catalog_error("table", e))?);
            } else if k.starts_with(DUP_PREFIX.as_bytes()) {
                c.duplications
                    .push(serde_json::from_slice(&v).map_err(|e| catalog_error("duplication", e))?);
            }
        }
        c.tables.sort_by_key(|t| t.app_id);
        Ok(c)
    }

    /// Writes catalog records through the meta group's log.
    async fn record(&self, ops: Vec<WriteOp>) -> Result<(), ServerError> {
        let (layout, r) = self.replica(META_TABLE, 0)?;
        let m = Mutation {
            ballot: None,
            ops,
            control: None,
        };
        self.bounded("catalog write", &layout, r.write(m)).await?;
        Ok(())
    }

    async fn record_layout(&self, layout: &TableLayout) -> Result<(), ServerError> {
        self.record(vec![WriteOp::Put {
            key: table_key(&layout.name),
            value: json(layout)?,
        }])
        .await
    }

    /// A client of this cluster for the meta leader's own pushes and moves.
    fn meta_client(&self) -> Client {
        let mut o = self
            .opts
            .credentials
            .apply(ClientOptions::new(vec![self.opts.addr.clone()]));
        o.deadline = Duration::from_secs(60);
        Client::new(o)
    }

    /// Serves one catalog request (on the meta partition's leader; elsewhere `NotLeader`).
    pub async fn meta(&self, req: MetaRequest) -> Result<ClientResponse, ServerError> {
        // One request at a time: table ids and membership changes never race.
        let _serial = self.meta_lock.lock().await;
        let catalog = self.catalog().await?;
        match req {
            MetaRequest::RegisterNode(n) => {
                if n.addr.is_empty() {
                    return Err(ServerError::InvalidArgument("node without address".into()));
                }
                self.record(vec![WriteOp::Put {
                    key: node_key(n.id),
                    value: json(&n)?,
                }])
                .await?;
                Ok(ClientResponse::Ok)
            }
            MetaRequest::Catalog => Ok(ClientResponse::Catalog(catalog)),
            MetaRequest::CreateTable {
                name,
                partition_count,
                replica_count,
                nodes,
            } => {
                if let Some(t) = catalog.tables.iter().find(|t| t.name == name) {
                    if t.partition_count == partition_count && t.replica_count == replica_count {
                        let t = t.clone();
                        self.push_layout(&t).await?;
                        return Ok(ClientResponse::Tables(vec![t]));
                    }
                    return Err(ServerError::AlreadyExists(format!(
                        "table {name} with {} partitions × {} replicas",
                        t.partition_count, t.replica_count
                    )));
                }
                let hosts = if nodes.is_empty() {
                    catalog.nodes.clone()
                } else {
                    nodes
                        .iter()
                        .map(|&id| catalog.node(id))
                        .collect::<Result<Vec<_>, _>>()?
                };
                let app_id = catalog
                    .tables
                    .iter()
                    .map(|t| t.app_id)
                    .max()
                    .unwrap_or(META_APP_ID)
                    .checked_add(1)
                    .ok_or_else(|| ServerError::Internal("app ids exhausted".into()))?;
                let layout = TableLayout::new(name, app_id, partition_count, replica_count, hosts);
                layout
                    .validate()
                    .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
                self.record_layout(&layout).await?;
                self.push_layout(&layout).await?;
                Ok(ClientResponse::Tables(vec![layout]))
            }
            MetaRequest::MoveReplica {
                table,
                partition,
                from,
                to,
                catch_up_ms,
            } => {
                let to = catalog.node(to)?;
                let client = self.meta_client();
                let out = client
                    .move_replica(
                        &table,
                        partition,
                        from,
                        &to,
                        Duration::from_millis(catch_up_ms),
                    )
                    .await
                    .map_err(client_error)?;
                self.record_layout(&out.layout).await?;
                self.settle_duplications(&catalog, &table).await;
                Ok(ClientResponse::Tables(vec![out.layout]))
            }
            MetaRequest::DrainNode { node, catch_up_ms } => {
                let how = Moves::Drain {
                    node,
                    targets: &catalog.nodes,
                };
                let done = self.move_in_every_table(&catalog, how, catch_up_ms).await?;
                Ok(ClientResponse::Tables(done))
            }
            MetaRequest::AddNode { node, catch_up_ms } => {
                let to = catalog.node(node)?;
                let done = self
                    .move_in_every_table(&catalog, Moves::Onto(&to), catch_up_ms)
                    .await?;
                Ok(ClientResponse::Tables(done))
            }
            MetaRequest::RemoveNode { node, catch_up_ms } => {
                let (meta_layout, _) = self.replica(META_TABLE, 0)?;
                if meta_layout.nodes.iter().any(|n| n.id == node) {
                    return Err(ServerError::InvalidArgument(format!(
                        "node {node} hosts the meta partition, whose membership is fixed"
                    )));
                }
                let leaving = catalog.node(node)?;
                let client = self.meta_client();
                let others: Vec<NodeInfo> = catalog
                    .nodes
                    .iter()
                    .filter(|n| n.id != node)
                    .cloned()
                    .collect();
                let how = Moves::Drain {
                    node,
                    targets: &others,
                };
                let mut done = Vec::new();
                for drained in self.move_in_every_table(&catalog, how, catch_up_ms).await? {
                    if drained.addr_of(node).is_none() {
                        done.push(drained);
                        continue;
                    }
                    let next = drained
                        .without_node(node)
                        .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
                    self.push_layout(&next).await?;
                    // Best effort: the leaving node stops listing itself (it may be down).
                    let req = ClientRequest::UpdateTable(next.clone());
                    if let Err(e) = client.call(&leaving.addr, &req).await {
                        tracing::info!(node, error = %e, "leaving node not told its last layout");
                    }
                    self.record_layout(&next).await?;
                    done.push(next);
                }
                self.record(vec![WriteOp::Delete {
                    key: node_key(node),
                }])
                .await?;
                Ok(ClientResponse::Tables(done))
            }
            MetaRequest::SplitTable {
                table,
                partitions,
                timeout_ms,
            } => {
                if !catalog.tables.iter().any(|t| t.name == table) {
                    return Err(ServerError::NoSuchTable(table));
                }
                let bound = Duration::from_millis(timeout_ms);
                let layout = crate::split::split_table(self, &table, partitions, bound).await?;
                self.record_layout(&layout).await?;
                Ok(ClientResponse::Tables(vec![layout]))
            }
            MetaRequest::ReconcileTables => {
                for t in &catalog.tables {
                    self.push_layout(t).await?;
                    self.push_duplications(&catalog, &t.name).await?;
                }
                Ok(ClientResponse::Ok)
            }
            MetaRequest::AddDuplication {
                table,
                remote_seeds,
                remote_table,
                fail_mode,
            } => {
                if !catalog.tables.iter().any(|t| t.name == table) {
                    return Err(ServerError::NoSuchTable(table));
                }
                if let Some(d) = catalog.duplications.iter().find(|d| {
                    d.table == table
                        && d.remote_table == remote_table
                        && d.remote_seeds == remote_seeds
                }) {
                    // Already recorded: install it where it is missing.
                    let id = d.dup_id;
                    self.push_duplications(&catalog, &table).await?;
                    return Ok(ClientResponse::Written { decree: id });
                }
                let client = self.meta_client();
                // The id is checked against the follower's partition count by the first add.
                let newest = catalog
                    .duplications
                    .iter()
                    .map(|d| d.dup_id)
                    .max()
                    .unwrap_or(0);
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let dup_id = now_ms.max(newest.saturating_add(1));
                let entry = DuplicationEntry {
                    table: table.clone(),
                    dup_id,
                    remote_seeds,
                    remote_table,
                    fail_mode,
                };
                client
                    .add_duplication(
                        &table,
                        &entry.remote_seeds,
                        &entry.remote_table,
                        fail_mode,
                        Some(dup_id),
                    )
                    .await
                    .or_else(|e| match e {
                        // Recorded anyway below: the next reconcile installs it on the node
                        // that missed it. Refusals (bad remote, partition counts) stop here.
                        siltdb_client::Error::Internal(m) if m.contains("not added everywhere") => {
                            tracing::warn!(%table, dup_id, error = %m, "duplication not on every node yet");
                            Ok(dup_id)
                        }
                        other => Err(client_error(other)),
                    })?;
                self.record(vec![WriteOp::Put {
                    key: dup_key(&table, dup_id),
                    value: json(&entry)?,
                }])
                .await?;
                Ok(ClientResponse::Written { decree: dup_id })
            }
            MetaRequest::SetEnv { table, key, value } => {
                self.change_env(&catalog, &table, &key, Some(&value)).await
            }
            MetaRequest::DelEnv { table, key } => {
                self.change_env(&catalog, &table, &key, None).await
            }
            MetaRequest::RemoveDuplication { table, dup_id } => {
                if !catalog
                    .duplications
                    .iter()
                    .any(|d| d.table == table && d.dup_id == dup_id)
                {
                    return Err(ServerError::InvalidArgument(format!(
                        "no duplication {dup_id} of {table} in the catalog"
                    )));
                }
                // Forgotten first: a reconcile never re-installs a removed duplication.
                self.record(vec![WriteOp::Delete {
                    key: dup_key(&table, dup_id),
                }])
                .await?;
                let client = self.meta_client();
                let n = client
                    .remove_duplication(&table, dup_id)
                    .await
                    .map_err(client_error)?;
                Ok(ClientResponse::DuplicationRemoved { replicas: n })
            }
        }
    }

    /// Installs every recorded duplication of `table` on every node of it (idempotent: a node
    /// adds the record only to the replicas that lack it).
    async fn push_duplications(&self, catalog: &Catalog, table: &str) -> Result<(), ServerError> {
        let client = self.meta_client();
        for d in catalog.duplications.iter().filter(|d| d.table == table) {
            client
                .add_duplication(
                    &d.table,
                    &d.remote_seeds,
                    &d.remote_table,
                    d.fail_mode,
                    Some(d.dup_id),
                )
                .await
                .map_err(client_error)?;
        }
        Ok(())
    }

    /// Runs `how` on every user table, then records each table's resulting layout and
    /// reinstalls its duplications. Returns the layouts.
    async fn move_in_every_table(
        &self,
        catalog: &Catalog,
        how: Moves<'_>,
        catch_up_ms: u64,
    ) -> Result<Vec<TableLayout>, ServerError> {
        let client = self.meta_client();
        let catch_up = Duration::from_millis(catch_up_ms);
        let mut done = Vec::new();
        for t in user_tables(catalog) {
            match how {
                Moves::Drain { node, targets } => {
                    client.drain_node(&t.name, node, targets, catch_up).await
                }
                Moves::Onto(to) => client.rebalance_onto(&t.name, to, catch_up).await,
            }
            .map_err(client_error)?;
            let newest = client.newest_layout(&t.name).await.map_err(client_error)?;
            self.record_layout(&newest).await?;
            self.settle_duplications(catalog, &t.name).await;
            done.push(newest);
        }
        Ok(done)
    }

    /// [`Node::push_duplications`] after a membership change: a replica that moved in gets
    /// the table's duplications. Best effort (the move is done and recorded either way): a
    /// failure is logged, and `ReconcileTables` retries.
    async fn settle_duplications(&self, catalog: &Catalog, table: &str) {
        if let Err(e) = self.push_duplications(catalog, table).await {
            tracing::warn!(%table, error = %e, "duplications not reinstalled after a move; reconcile later");
        }
    }

    /// Sets (`Some`) or removes an app env of `table`: the successor layout is recorded, then
    /// pushed to every node of the table (each applies it to its replicas, `crate::envs`).
    async fn change_env(
        &self,
        catalog: &Catalog,
        table: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<ClientResponse, ServerError> {
        let Some(t) = catalog.tables.iter().find(|t| t.name == table) else {
            return Err(ServerError::NoSuchTable(table.to_string()));
        };
        let next = t
            .with_env(key, value)
            .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
        next.validate()
            .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
        self.record_layout(&next).await?;
        self.push_layout(&next).await?;
        tracing::info!(%table, key, ?value, epoch = next.epoch, "app env changed");
        Ok(ClientResponse::Tables(vec![next]))
    }

    /// Sends `layout` to every node of it (create at epoch 0, update after).
    async fn push_layout(&self, layout: &TableLayout) -> Result<(), ServerError> {
        let client = self.meta_client();
        let req = if layout.epoch == 0 {
            ClientRequest::CreateTable(layout.clone())
        } else {
            ClientRequest::UpdateTable(layout.clone())
        };
        for n in &layout.nodes {
            client.retry_on(&n.addr, &req).await.map_err(client_error)?;
        }
        Ok(())
    }
}

impl Node {
    /// True when this node's replica of the meta partition leads it.
    pub(crate) fn leads_meta(&self) -> bool {
        self.replica(META_TABLE, 0)
            .is_ok_and(|(_, r)| r.leader() == Some(self.opts.node_id))
    }

    /// The catalog, for the failure detector (on the meta leader).
    pub(crate) async fn catalog_for_detector(&self) -> Result<Catalog, ServerError> {
        self.catalog().await
    }

    /// Failure cure: moves every user-table replica of `dead` (unreachable past the grace
    /// period) onto the registered nodes in `live`, with the idempotent move that never calls
    /// the dead node, and records each resulting layout. Runs like any catalog request (one
    /// at a time). Returns the tables changed.
    pub(crate) async fn cure_dead_node(
        &self,
        dead: u64,
        live: &[u64],
        catch_up: Duration,
    ) -> Result<Vec<TableLayout>, ServerError> {
        let _serial = self.meta_lock.lock().await;
        let catalog = self.catalog().await?;
        let client = self.meta_client();
        let targets: Vec<NodeInfo> = catalog
            .nodes
            .iter()
            .filter(|n| n.id != dead && live.contains(&n.id))
            .cloned()
            .collect();
        let mut done = Vec::new();
        for t in user_tables(&catalog) {
            if siltdb_client::membership::replica_count(&t, dead) == 0 {
                continue;
            }
            let moved = client
                .drain_node_off(&t.name, dead, &targets, catch_up, true)
                .await
                .map_err(client_error);
            // Record what happened even when a later move failed: the layout moved forward.
            let newest = client.newest_layout(&t.name).await.map_err(client_error)?;
            if newest.epoch > t.epoch {
                self.record_layout(&newest).await?;
                self.settle_duplications(&catalog, &t.name).await;
            }
            moved?;
            done.push(newest);
        }
        Ok(done)
    }

    /// A node that hosts replicas its catalog layout no longer assigns to it (it was down
    /// while they moved away) gets the catalog's layouts (newer, or the same again so that it
    /// retries removals its groups had not confirmed), and removes them. Returns the layouts
    /// pushed.
    pub(crate) async fn reconcile_returned_node(
        &self,
        catalog: &Catalog,
        node: &NodeInfo,
    ) -> Result<usize, ServerError> {
        let client = self.meta_client();
        let stored = match client
            .call(&node.addr, &ClientRequest::ListTables)
            .await
            .map_err(client_error)?
        {
            ClientResponse::Tables(ts) => ts,
            ClientResponse::Error(e) => return Err(e),
            other => {
                return Err(ServerError::Internal(format!(
                    "node {}: unexpected answer to ListTables: {other:?}",
                    node.id
                )))
            }
        };
        let mut pushed = 0;
        for t in stored {
            let Some(newer) = catalog
                .tables
                .iter()
                .find(|c| c.name == t.name && c.app_id == t.app_id && c.epoch >= t.epoch)
            else {
                continue;
            };
            match client
                .call(&node.addr, &ClientRequest::UpdateTable(newer.clone()))
                .await
                .map_err(client_error)?
            {
                ClientResponse::Error(e) => return Err(e),
                _ => pushed += 1,
            }
        }
        Ok(pushed)
    }
}

/// What [`Node::move_in_every_table`] does to each table.
#[derive(Clone, Copy)]
enum Moves<'a> {
    /// Every replica on `node` moves to one of `targets`.
    Drain { node: u64, targets: &'a [NodeInfo] },
    /// Replicas move onto this node until it hosts its share.
    Onto(&'a NodeInfo),
}

fn user_tables(c: &Catalog) -> Vec<TableLayout> {
    c.tables
        .iter()
        .filter(|t| t.app_id != META_APP_ID)
        .cloned()
        .collect()
}
