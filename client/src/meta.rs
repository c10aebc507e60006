//! The meta service as the client sees it: catalog requests ([`MetaRequest`], carried in
//! `ClientRequest::Meta`), the catalog ([`Catalog`]) and the client calls that reach the meta
//! partition's leader. The service itself runs in the server (`siltdb_server::meta`).

use crate::client::Client;
use crate::duplication::FailMode;
use crate::error::{Result, ServerError};
use crate::layout::{NodeInfo, TableLayout};
pub use crate::layout::{META_APP_ID, META_TABLE};
use crate::proto::{ClientRequest, ClientResponse};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A catalog request, served by the meta partition's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaRequest {
    /// Adds (or updates the address of) a node.
    RegisterNode(NodeInfo),
    /// Creates a table; `nodes` empty = every registered node.
    CreateTable {
        /// Table name.
        name: String,
        /// Partitions.
        partition_count: u32,
        /// Replicas per partition.
        replica_count: u32,
        /// Hosting node ids; empty = every registered node.
        nodes: Vec<u64>,
    },
    /// The registered nodes and the recorded layouts.
    Catalog,
    /// Moves a replica (`siltdb_server::membership`); `to` must be registered.
    MoveReplica {
        /// Table name.
        table: String,
        /// The partition.
        partition: u32,
        /// The node giving up its replica.
        from: u64,
        /// The node taking it.
        to: u64,
        /// Bound on the catch-up, in ms.
        catch_up_ms: u64,
    },
    /// Moves every replica of every table off a node.
    DrainNode {
        /// The node.
        node: u64,
        /// Bound on each catch-up, in ms.
        catch_up_ms: u64,
    },
    /// Moves replicas of every table onto a registered node until it hosts its share.
    AddNode {
        /// The node.
        node: u64,
        /// Bound on each catch-up, in ms.
        catch_up_ms: u64,
    },
    /// Removes a node from the cluster: drains it of every user table's replicas, takes it out
    /// of every layout and unregisters it. Refused for a meta replica (the meta partition's
    /// membership is fixed at `init-meta`).
    RemoveNode {
        /// The node.
        node: u64,
        /// Bound on each catch-up, in ms.
        catch_up_ms: u64,
    },
    /// Pushes every recorded layout to its nodes and installs every recorded duplication.
    ReconcileTables,
    /// Records a duplication of `table` and installs it on the table's nodes; answers
    /// [`ClientResponse::Written`] with the id as `decree`.
    AddDuplication {
        /// Source table.
        table: String,
        /// Servers of the follower cluster.
        remote_seeds: Vec<String>,
        /// Follower table (same partition count).
        remote_table: String,
        /// Behaviour on unreadable log ranges; default SLOW.
        fail_mode: Option<FailMode>,
    },
    /// Forgets a duplication and removes it from the table's nodes.
    RemoveDuplication {
        /// Source table.
        table: String,
        /// The id.
        dup_id: u64,
    },
    /// Sets an app env of a table ([`crate::envs`]): records the successor layout and pushes
    /// it to the table's nodes; answers [`ClientResponse::Tables`] with it.
    SetEnv {
        /// Table name.
        table: String,
        /// Env key.
        key: String,
        /// Env value.
        value: String,
    },
    /// Removes an app env of a table (like [`MetaRequest::SetEnv`]).
    DelEnv {
        /// Table name.
        table: String,
        /// Env key.
        key: String,
    },
    /// Splits a table ([`crate::split`]) from the meta leader and records the new layout;
    /// answers [`ClientResponse::Tables`] with it.
    SplitTable {
        /// Table name.
        table: String,
        /// The partition count wanted (twice the current one); `None`: double it.
        partitions: Option<u32>,
        /// Bound on the whole split, in ms.
        timeout_ms: u64,
    },
}

/// A recorded duplication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicationEntry {
    /// Source table.
    pub table: String,
    /// The id (the same on every node).
    pub dup_id: u64,
    /// Servers of the follower cluster.
    pub remote_seeds: Vec<String>,
    /// Follower table.
    pub remote_table: String,
    /// Fail mode.
    pub fail_mode: Option<FailMode>,
}

/// The catalog: registered nodes and recorded layouts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Registered nodes, by id.
    pub nodes: Vec<NodeInfo>,
    /// Recorded layouts, by app id.
    pub tables: Vec<TableLayout>,
    /// Recorded duplications, by table and id.
    #[serde(default)]
    pub duplications: Vec<DuplicationEntry>,
}

impl Catalog {
    /// The registered node `id`; `InvalidArgument` when it is not registered.
    pub fn node(&self, id: u64) -> Result<NodeInfo, ServerError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .ok_or_else(|| ServerError::InvalidArgument(format!("node {id} is not registered")))
    }
}

/// The layout of the meta table on `nodes` (one partition, a replica on each).
pub fn meta_layout(nodes: Vec<NodeInfo>) -> TableLayout {
    let n = nodes.len() as u32;
    TableLayout::new(META_TABLE, META_APP_ID, 1, n, nodes)
}

impl Client {
    /// Sends a catalog request to the meta partition's leader (following redirects), each
    /// attempt bounded by `rpc_timeout`. The meta table's layout is learned from the seeds, so
    /// at least one seed must host a meta replica.
    pub async fn meta(&self, req: MetaRequest, rpc_timeout: Duration) -> Result<ClientResponse> {
        let layout = self.layout(META_TABLE).await?;
        self.partition_call_with(&layout, 0, &ClientRequest::Meta(req), rpc_timeout)
            .await
    }

    /// Whether the cluster the seeds belong to runs a meta service.
    pub async fn has_meta(&self) -> bool {
        self.layout(META_TABLE).await.is_ok()
    }

    /// Creates the meta table on `nodes` (one replica each) and registers them.
    pub async fn init_meta(&self, nodes: &[NodeInfo]) -> Result<()> {
        let layout = meta_layout(nodes.to_vec());
        self.create_table(&layout).await?;
        for n in nodes {
            self.meta(
                MetaRequest::RegisterNode(n.clone()),
                Duration::from_secs(10),
            )
            .await?;
        }
        Ok(())
    }
}
