//! Meta-service commands: `init-meta`, `register-node`, `catalog`, `remove-node`.

use super::prelude::*;

/// Runs one of this module's commands.
pub(crate) async fn meta_command(client: &Client, cmd: Cmd, g: &Global) -> Res<()> {
    match cmd {
        Cmd::InitMeta { nodes } => {
            let nodes = nodes
                .iter()
                .map(|n| parse_node(n))
                .collect::<Res<Vec<_>>>()?;
            client.init_meta(&nodes).await.map_err(|e| e.to_string())?;
            println!("meta service on {} nodes", nodes.len());
            Ok(())
        }
        Cmd::RegisterNode { node } => {
            let node = parse_node(&node)?;
            let id = node.id;
            meta_call(client, MetaRequest::RegisterNode(node), g.timeout_ms).await?;
            println!("node {id} registered");
            Ok(())
        }
        Cmd::Catalog => {
            let c = match meta_call(client, MetaRequest::Catalog, g.timeout_ms).await? {
                ClientResponse::Catalog(c) => c,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            if g.json {
                return print_json(&c);
            }
            for n in &c.nodes {
                println!("node {} {}", n.id, n.addr);
            }
            for l in &c.tables {
                println!(
                    "table {} app_id={} partitions={} replicas={} epoch={}",
                    l.name, l.app_id, l.partition_count, l.replica_count, l.epoch
                );
            }
            for d in &c.duplications {
                println!(
                    "duplication {} of {} to {}@{}",
                    d.dup_id,
                    d.table,
                    d.remote_table,
                    d.remote_seeds.join(",")
                );
            }
            Ok(())
        }
        Cmd::RemoveNode { node, catch_up_ms } => {
            let req = MetaRequest::RemoveNode { node, catch_up_ms };
            let t = meta_tables(client, req, MEMBERSHIP_RPC_MS).await?;
            println!(
                "node {node} removed: drained of {} tables and unregistered; stop its server",
                t.len()
            );
            Ok(())
        }
        other => Err(format!("not handled here: {other:?}")),
    }
}
