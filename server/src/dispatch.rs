//! Request dispatch: the services that run on top of a node, and the one place that routes a
//! client or operator request to the node (data requests, tables, stats, fault injection) or
//! to a service (meta, membership, duplication, bulk load, the data model).
//!
//! Layer: top, with [`crate::server`] (the accept loop hands every decoded request to
//! [`Services::handle`]). Below it the services ([`crate::meta`], [`crate::membership`],
//! [`crate::duplication`], [`crate::bulk_load`], [`crate::pegasus`]), below them
//! [`crate::node`].

use crate::backup::BackupSessions;
use crate::bulk_load::BulkLoads;
use crate::duplication::NodeDuplications;
use crate::error::{Error, Result, ServerError};
use crate::node::Node;
use crate::proto::{ClientRequest, ClientResponse};
use std::sync::Arc;
use std::time::Duration;

/// The services of one node that keep state of their own: its duplications, the bulk loads
/// it coordinates and its backup sessions.
pub struct Services {
    dups: Arc<NodeDuplications>,
    bulk_loads: BulkLoads,
    backups: BackupSessions,
}

impl Services {
    /// Starts the services of an opened `node`: the duplication supervisor, and the report of
    /// bulk loads a restart interrupted. Must run inside a tokio runtime.
    pub fn start(node: &Arc<Node>) -> Result<Services> {
        let o = node.options();
        let dups = NodeDuplications::new(
            o.node_id,
            tokio::runtime::Handle::current(),
            o.credentials.clone(),
        );
        dups.start(Arc::downgrade(node))
            .map_err(|e| Error::io("duplication supervisor thread", e))?;
        let bulk_loads =
            BulkLoads::new(&o.data_dir, o.credentials.clone(), o.bulk_load_root.clone());
        bulk_loads.recover(node);
        let backups = BackupSessions::open(&o.data_dir)?;
        Ok(Services {
            dups,
            bulk_loads,
            backups,
        })
    }

    /// The node's duplications.
    pub fn duplications(&self) -> &Arc<NodeDuplications> {
        &self.dups
    }

    /// Stops the services (bulk loads, then, once the node refuses requests, the duplicators,
    /// which hold replica handles and block on this runtime) and closes the node.
    pub async fn close(&self, node: &Node) -> Result<()> {
        self.bulk_loads.shutdown().await;
        node.refuse_requests();
        let dups = Arc::clone(&self.dups);
        if let Err(e) = tokio::task::spawn_blocking(move || dups.shutdown()).await {
            tracing::error!(error = %e, "stopping duplications");
        }
        node.close().await
    }

    /// The duplications this node runs: (gpid, id, lag in decrees, mutations confirmed).
    /// Blocking (see [`NodeDuplications`]).
    pub(crate) fn duplication_figures(&self) -> Vec<(siltdb_replica::Gpid, u64, Option<u64>, u64)> {
        self.dups.running_figures()
    }

    /// The bulk loads this node coordinates, with their reports. Blocking.
    pub(crate) fn bulk_load_figures(
        &self,
        me: u64,
    ) -> Vec<(String, crate::bulk_load::BulkLoadReport)> {
        self.bulk_loads.statuses(me)
    }

    /// Answers one client or operator request on `node`.
    pub async fn handle(&self, node: &Node, mut req: ClientRequest) -> ClientResponse {
        if node.is_closed() {
            return ClientResponse::Error(ServerError::Unavailable("server shutting down".into()));
        }
        crate::timeouts::cap_request(&mut req);
        let measured = crate::request_metrics::classify(&req);
        let started = std::time::Instant::now();
        let resp = self.route(node, req).await;
        if let Some((table, partition, kind, written)) = measured {
            let error = match &resp {
                ClientResponse::Error(e) => Some(e),
                _ => None,
            };
            let outcome = crate::request_metrics::Outcome {
                bytes: written + crate::request_metrics::bytes_read(&resp),
                error: error.is_some(),
                throttled: matches!(error, Some(ServerError::Throttled { .. })),
                latency: started.elapsed(),
            };
            node.requests.record(&table, partition, kind, outcome);
        }
        resp
    }

    async fn route(&self, node: &Node, req: ClientRequest) -> ClientResponse {
        // Copied before the request is consumed; counted once it is answered without error.
        let hot = node.hot_keys.sample(&req);
        let r = match req {
            ClientRequest::Get {
                table,
                partition,
                key,
            } => node.get(&table, partition, key).await,
            ClientRequest::Write {
                table,
                partition,
                ops,
            } => node.write(&table, partition, ops).await,
            ClientRequest::Scan {
                table,
                partition,
                start,
                end,
                limit,
                partition_count,
            } => {
                node.scan(&table, partition, start, end, limit, partition_count)
                    .await
            }
            ClientRequest::Pegasus {
                table,
                partition,
                req,
            } => crate::pegasus::handler::handle(node, &table, partition, req).await,
            ClientRequest::CreateTable(layout) => {
                node.create_table(layout).await.map(|()| ClientResponse::Ok)
            }
            ClientRequest::ListTables => Ok(ClientResponse::Tables(node.list_tables())),
            ClientRequest::Stats => Ok(ClientResponse::Stats(node.stats())),
            ClientRequest::Digest { table, partition } => node.digest(&table, partition).await,
            ClientRequest::Checkpoint { table } => {
                node.checkpoint(&table).await.map(|_| ClientResponse::Ok)
            }
            ClientRequest::UpdateTable(layout) => {
                node.update_table(layout).await.map(|()| ClientResponse::Ok)
            }
            ClientRequest::ChangeReplicas {
                table,
                partition,
                from,
                to,
                timeout_ms,
            } => {
                let bound = Duration::from_millis(timeout_ms);
                node.change_replicas(&table, partition, from, to, bound)
                    .await
            }
            ClientRequest::Meta(req) => node.meta(req).await,
            ClientRequest::SplitTable {
                table,
                partitions,
                timeout_ms,
            } => crate::split::split_table(
                node,
                &table,
                partitions,
                Duration::from_millis(timeout_ms),
            )
            .await
            .map(|l| ClientResponse::Tables(vec![l])),
            ClientRequest::SplitReplica { table, op } => {
                crate::split::handle(node, &table, op).await
            }
            ClientRequest::Membership { table, partition } => node
                .membership(&table, partition)
                .map(ClientResponse::Membership),
            req @ (ClientRequest::Partition { .. } | ClientRequest::Heal) => {
                node.fault_injection(&req)
            }
            req @ (ClientRequest::AddDuplication { .. }
            | ClientRequest::RemoveDuplication { .. }
            | ClientRequest::QueryDuplication { .. }
            | ClientRequest::DuplicationWrite { .. }) => {
                crate::duplication::handle(node, &self.dups, req).await
            }
            ClientRequest::StartBulkLoad { table, source_dir } => {
                self.bulk_loads.start(node, &table, &source_dir).await
            }
            ClientRequest::QueryBulkLoad { table } => self.bulk_loads.query(node, &table),
            ClientRequest::BulkLoadReplica {
                table,
                partition,
                op,
            } => crate::bulk_load::replica_op(node, &table, partition, op).await,
            ClientRequest::Backup(req) => self.backups.handle(node, req).await,
            ClientRequest::HotKeys { table, kind } => node.hot_key_report(&table, kind),
        };
        if let (Some(sample), Ok(_)) = (hot, &r) {
            node.count_hot_keys(sample);
        }
        match r {
            Ok(resp) => resp,
            Err(e) => {
                node.count_error(&e);
                ClientResponse::Error(e)
            }
        }
    }
}
