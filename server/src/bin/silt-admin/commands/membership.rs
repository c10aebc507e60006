//! Catalog and membership commands that run through the meta service when the cluster has
//! one, else from `silt-admin` itself ([`meta_or_client`]).

use super::prelude::*;

/// The one place that chooses how a membership or duplication command runs: through the meta
/// service when the cluster has one (it records the change in the catalog and drives it from its
/// leader), else driven by this client against the table's nodes. An added duplication with an
/// explicit `--id` is always client-driven (the meta service picks its own ids).
pub(crate) async fn meta_or_client(
    client: &Client,
    cmd: Cmd,
    json: bool,
    timeout_ms: u64,
) -> Res<()> {
    let meta_serves = !matches!(cmd, Cmd::AddDup { id: Some(_), .. });
    if meta_serves && client.has_meta().await {
        via_meta(client, cmd, json, timeout_ms).await
    } else {
        client_driven(client, cmd, json).await
    }
}

/// A membership or duplication command served by the meta service.
pub(crate) async fn via_meta(client: &Client, cmd: Cmd, json: bool, timeout_ms: u64) -> Res<()> {
    match cmd {
        Cmd::MoveReplica {
            table,
            partition,
            from,
            to,
            catch_up_ms,
        } => {
            let req = MetaRequest::MoveReplica {
                table: table.clone(),
                partition,
                from,
                to: parse_id(&to)?,
                catch_up_ms,
            };
            let t = meta_tables(client, req, catch_up_ms.saturating_add(timeout_ms)).await?;
            for l in t {
                print_moved(&table, partition, from, VIA_META, &l, "");
            }
            Ok(())
        }
        Cmd::DrainNode {
            node, catch_up_ms, ..
        } => {
            let req = MetaRequest::DrainNode { node, catch_up_ms };
            let t = meta_tables(client, req, MEMBERSHIP_RPC_MS).await?;
            println!(
                "node {node} drained of {} tables via the meta service",
                t.len()
            );
            Ok(())
        }
        Cmd::AddNode {
            node, catch_up_ms, ..
        } => {
            let id = parse_id(&node)?;
            let req = MetaRequest::AddNode {
                node: id,
                catch_up_ms,
            };
            let t = meta_tables(client, req, MEMBERSHIP_RPC_MS).await?;
            println!(
                "node {id} added to {} tables via the meta service: replicas moved onto it",
                t.len()
            );
            Ok(())
        }
        Cmd::AddDup {
            table,
            remote_seeds,
            remote_table,
            fail_mode,
            id: None,
        } => {
            let req = MetaRequest::AddDuplication {
                table: table.clone(),
                remote_seeds: remote_seeds.clone(),
                remote_table: remote_table.clone(),
                fail_mode: Some(parse_fail_mode(&fail_mode)?),
            };
            let id = match meta_call(client, req, MEMBERSHIP_RPC_MS).await? {
                ClientResponse::Written { decree } => decree,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            let added = AddedDup {
                id,
                table: &table,
                remote_table: &remote_table,
                remote_seeds: &remote_seeds,
            };
            added.print(json, VIA_META)
        }
        Cmd::RemoveDup { table, id } => {
            let req = MetaRequest::RemoveDuplication {
                table: table.clone(),
                dup_id: id,
            };
            match meta_call(client, req, MEMBERSHIP_RPC_MS).await? {
                ClientResponse::DuplicationRemoved { replicas } => {
                    print_removed_dup(id, &table, replicas, VIA_META);
                    Ok(())
                }
                other => Err(format!("unexpected answer {other:?}")),
            }
        }
        other => client_driven(client, other, json).await,
    }
}

/// A membership or duplication command driven by this client (no meta service).
pub(crate) async fn client_driven(client: &Client, cmd: Cmd, json: bool) -> Res<()> {
    match cmd {
        Cmd::MoveReplica {
            table,
            partition,
            from,
            to,
            catch_up_ms,
        } => {
            let to = parse_node(&to)?;
            let catch_up = Duration::from_millis(catch_up_ms);
            let out = client
                .move_replica(&table, partition, from, &to, catch_up)
                .await
                .map_err(|e| e.to_string())?;
            let how = format!(" to node {}", to.id);
            let resumed = if out.resumed { " (resumed)" } else { "" };
            print_moved(&table, partition, from, &how, &out.layout, resumed);
            Ok(())
        }
        Cmd::DrainNode {
            table,
            node,
            to,
            catch_up_ms,
        } => {
            let table = table.ok_or("--table is needed without a meta service")?;
            let layout = client
                .newest_layout(&table)
                .await
                .map_err(|e| e.to_string())?;
            let mut targets = layout.nodes.clone();
            for t in &to {
                targets.push(parse_node(t)?);
            }
            let moves = client
                .drain_node(&table, node, &targets, Duration::from_millis(catch_up_ms))
                .await
                .map_err(|e| e.to_string())?;
            println!("node {node} drained of {table}: {moves} replicas moved");
            Ok(())
        }
        Cmd::AddNode {
            table,
            node,
            catch_up_ms,
        } => {
            let table = table.ok_or("--table is needed without a meta service")?;
            let node = parse_node(&node)?;
            let moves = client
                .rebalance_onto(&table, &node, Duration::from_millis(catch_up_ms))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "node {} added to {table}: {moves} replicas moved onto it",
                node.id
            );
            Ok(())
        }
        Cmd::AddDup {
            table,
            remote_seeds,
            remote_table,
            fail_mode,
            id,
        } => {
            let mode = parse_fail_mode(&fail_mode)?;
            let id = client
                .add_duplication(&table, &remote_seeds, &remote_table, Some(mode), id)
                .await
                .map_err(|e| e.to_string())?;
            let added = AddedDup {
                id,
                table: &table,
                remote_table: &remote_table,
                remote_seeds: &remote_seeds,
            };
            added.print(json, "")
        }
        Cmd::RemoveDup { table, id } => {
            let n = client
                .remove_duplication(&table, id)
                .await
                .map_err(|e| e.to_string())?;
            print_removed_dup(id, &table, n, "");
            Ok(())
        }
        other => Err(format!(
            "not a membership or duplication command: {other:?}"
        )),
    }
}

/// How a command ran, at the end of its report line: through the meta service.
const VIA_META: &str = " via the meta service";

/// The report of a moved replica, whoever drove the move: `moved t.p from node F<how>:
/// replicas [..], epoch E<suffix>`.
fn print_moved(table: &str, partition: u32, from: u64, how: &str, l: &TableLayout, suffix: &str) {
    let ids: Vec<u64> = l.replicas(partition).iter().map(|n| n.id).collect();
    println!(
        "moved {table}.{partition} from node {from}{how}: replicas {ids:?}, epoch {}{suffix}",
        l.epoch
    );
}

/// An added duplication, reported the same way whoever added it.
struct AddedDup<'a> {
    id: u64,
    table: &'a str,
    remote_table: &'a str,
    remote_seeds: &'a [String],
}

impl AddedDup<'_> {
    /// `{"id": N}` with `--json`, else `added duplication N of T to R@seeds<how>`.
    fn print(&self, json: bool, how: &str) -> Res<()> {
        if json {
            return print_json(&serde_json::json!({ "id": self.id }));
        }
        println!(
            "added duplication {} of {} to {}@{}{how}",
            self.id,
            self.table,
            self.remote_table,
            self.remote_seeds.join(",")
        );
        Ok(())
    }
}

/// The report of a removed duplication: `removed duplication N of T (R replicas)<how>`.
fn print_removed_dup(id: u64, table: &str, replicas: u32, how: &str) {
    println!("removed duplication {id} of {table} ({replicas} replicas){how}");
}
