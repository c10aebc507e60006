//! The failure detector and cure: the meta service's leader probes every registered node;
//! one unreachable for longer than the grace period (`--node-failure-grace`) has its
//! replicas moved onto live nodes ([`Node::cure_dead_node`], the idempotent move that never
//! calls the dead node); a node that comes back hosting replicas its catalog layout no longer
//! assigns to it gets the newer layouts and removes them ([`Node::reconcile_returned_node`]).
//!
//! Layer: service, on top of [`crate::meta`]. The detector's memory (when each node was last
//! reachable) is the leader's own and starts afresh when leadership moves: a new leader waits
//! a whole grace period before it declares anyone dead.

use crate::node::Node;
use siltdb_client::meta::{Catalog, META_APP_ID};
use siltdb_client::proto::{ClientRequest, ClientResponse};
use siltdb_client::{Client, ClientOptions};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Shortest pause between probe rounds.
const PROBE_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Longest pause between probe rounds.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest bound on one probe (a loaded node still answers).
const PROBE_TIMEOUT_MIN: Duration = Duration::from_millis(500);
/// Bound on the catch-up of each replacement replica.
const CURE_CATCH_UP: Duration = Duration::from_secs(120);

/// Runs the detector until `stop` (on every node; it acts only while this node leads the
/// meta partition).
pub(crate) async fn run(node: Arc<Node>, grace: Duration, mut stop: watch::Receiver<bool>) {
    let every = (grace / 4).clamp(PROBE_INTERVAL_MIN, MAX_PROBE_INTERVAL);
    let probe_timeout = every.max(PROBE_TIMEOUT_MIN);
    let mut d = Detector::default();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if *stop.borrow() {
            return;
        }
        if !node.leads_meta() {
            d.last_seen.clear();
            continue;
        }
        d.round(&node, grace, probe_timeout).await;
    }
}

#[derive(Default)]
struct Detector {
    /// When each registered node last answered (or when this leader first looked at it).
    last_seen: HashMap<u64, Instant>,
    /// Nodes whose cure failed, with the error last logged (logged again only when it changes).
    failed: HashMap<u64, String>,
}

impl Detector {
    async fn round(&mut self, node: &Arc<Node>, grace: Duration, probe_timeout: Duration) {
        let catalog = match node.catalog_for_detector().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "failure detector: catalog unreadable");
                return;
            }
        };
        let me = node.opts.node_id;
        let mut o = node
            .opts
            .credentials
            .apply(ClientOptions::new(vec![node.opts.addr.clone()]));
        o.rpc_timeout = probe_timeout;
        o.deadline = probe_timeout;
        let client = Client::new(o);
        let now = Instant::now();
        let mut reachable = HashSet::from([me]);
        for n in catalog.nodes.iter().filter(|n| n.id != me) {
            let answer = client.call(&n.addr, &ClientRequest::Stats).await;
            match answer {
                Ok(ClientResponse::Stats(stats)) => {
                    reachable.insert(n.id);
                    self.last_seen.insert(n.id, now);
                    let stale = stats
                        .partitions
                        .iter()
                        .any(|p| !assigned(&catalog, n.id, &p.table, p.partition));
                    if stale {
                        match node.reconcile_returned_node(&catalog, n).await {
                            Ok(k) if k > 0 => tracing::info!(
                                node = n.id,
                                layouts = k,
                                "returned node given the newer layouts"
                            ),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(node = n.id, error = %e, "returned node not reconciled; next round retries")
                            }
                        }
                    }
                }
                _ => {
                    // First look at an unreachable node: its grace starts now.
                    self.last_seen.entry(n.id).or_insert(now);
                }
            }
        }
        let live: Vec<u64> = reachable.iter().copied().collect();
        let dead: Vec<u64> = catalog
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|id| !reachable.contains(id))
            .filter(|id| {
                self.last_seen
                    .get(id)
                    .is_some_and(|t| now.duration_since(*t) >= grace)
            })
            .filter(|id| hosts_user_replicas(&catalog, *id))
            .collect();
        for id in dead {
            tracing::warn!(
                node = id,
                ?grace,
                "node unreachable past the grace period; moving its replicas"
            );
            match node.cure_dead_node(id, &live, CURE_CATCH_UP).await {
                Ok(tables) => {
                    self.failed.remove(&id);
                    tracing::info!(
                        node = id,
                        tables = tables.len(),
                        "replicas of the dead node moved onto live nodes"
                    );
                }
                Err(e) => {
                    let text = e.to_string();
                    if self.failed.get(&id) != Some(&text) {
                        tracing::warn!(node = id, error = %text, "failure cure incomplete; next round retries");
                        self.failed.insert(id, text);
                    }
                }
            }
        }
    }
}

/// True when the catalog's layout of `table` assigns `partition` to node `id` (unknown
/// tables count as assigned: the detector only removes what the catalog moved away).
fn assigned(catalog: &Catalog, id: u64, table: &str, partition: u32) -> bool {
    match catalog.tables.iter().find(|t| t.name == table) {
        Some(t) => t.replicas(partition).iter().any(|n| n.id == id),
        None => true,
    }
}

/// True when node `id` hosts a replica of a user table in the catalog.
fn hosts_user_replicas(catalog: &Catalog, id: u64) -> bool {
    catalog
        .tables
        .iter()
        .filter(|t| t.app_id != META_APP_ID)
        .any(|t| siltdb_client::membership::replica_count(t, id) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb_client::layout::{NodeInfo, TableLayout};

    fn catalog() -> Catalog {
        let nodes: Vec<NodeInfo> = (1..=4)
            .map(|id| NodeInfo {
                id,
                addr: format!("127.0.0.1:{id}"),
            })
            .collect();
        Catalog {
            nodes: nodes.clone(),
            tables: vec![TableLayout::new("t", 1, 8, 3, nodes[..3].to_vec())],
            duplications: Vec::new(),
        }
    }

    #[test]
    fn assignment_and_hosting_follow_the_catalog() {
        let c = catalog();
        assert!(hosts_user_replicas(&c, 1));
        assert!(!hosts_user_replicas(&c, 4), "node 4 hosts nothing");
        assert!(assigned(&c, 1, "t", 0));
        assert!(!assigned(&c, 4, "t", 0));
        assert!(
            assigned(&c, 4, "unknown", 0),
            "unknown tables are left alone"
        );
    }
}
