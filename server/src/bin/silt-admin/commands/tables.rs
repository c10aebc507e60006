//! Table commands: `create-table` (through the meta service or on the named nodes), `tables`,
//! `nodes`, `partitions`, `stats`, `checkpoint`.

use super::prelude::*;

/// Runs one of this module's commands.
pub(crate) async fn table_command(client: &Client, cmd: Cmd, g: &Global) -> Res<()> {
    match cmd {
        Cmd::CreateTable {
            name,
            app_id: None,
            partitions,
            replicas,
            nodes,
        } => {
            let nodes = nodes.iter().map(|n| parse_id(n)).collect::<Res<Vec<_>>>()?;
            let req = MetaRequest::CreateTable {
                name,
                partition_count: partitions,
                replica_count: replicas,
                nodes,
            };
            let t = meta_tables(client, req, g.timeout_ms).await?;
            for l in t {
                println!(
                    "created table {} app_id={} ({} partitions) via the meta service",
                    l.name, l.app_id, l.partition_count
                );
            }
            Ok(())
        }
        Cmd::CreateTable {
            name,
            app_id: Some(app_id),
            partitions,
            replicas,
            nodes,
        } => {
            if nodes.is_empty() {
                return Err("--app-id needs the hosting nodes (--node id=host:port)".into());
            }
            let nodes = nodes
                .iter()
                .map(|n| parse_node(n))
                .collect::<Res<Vec<_>>>()?;
            let layout = TableLayout::new(name, app_id, partitions, replicas, nodes);
            client
                .create_table(&layout)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created table {} ({} partitions)",
                layout.name, layout.partition_count
            );
            Ok(())
        }
        Cmd::Tables => {
            let t = tables(client, &g.addr).await?;
            if g.json {
                return print_json(&t);
            }
            for l in t {
                let nodes: Vec<String> = l
                    .nodes
                    .iter()
                    .map(|n| format!("{}={}", n.id, n.addr))
                    .collect();
                println!(
                    "{} app_id={} partitions={} replicas={} epoch={} nodes={}",
                    l.name,
                    l.app_id,
                    l.partition_count,
                    l.replica_count,
                    l.epoch,
                    nodes.join(",")
                );
            }
            Ok(())
        }
        Cmd::Nodes => {
            let t = tables(client, &g.addr).await?;
            let stats = all_stats(client, &t).await;
            if g.json {
                let v: BTreeMap<u64, Option<NodeStats>> =
                    stats.into_iter().map(|(id, (_, s))| (id, s)).collect();
                return print_json(&v);
            }
            for (id, (addr, s)) in stats {
                match s {
                    None => println!("node {id} {addr} down"),
                    Some(s) => {
                        let leading = s.partitions.iter().filter(|p| p.leader == Some(id)).count();
                        println!(
                            "node {id} {addr} up uptime_ms={} replicas={} leading={}",
                            s.uptime_ms,
                            s.partitions.len(),
                            leading
                        );
                    }
                }
            }
            Ok(())
        }
        Cmd::Partitions { table } => {
            let t = tables(client, &g.addr).await?;
            let layout = t
                .iter()
                .find(|l| l.name == table)
                .ok_or_else(|| format!("no table {table:?}"))?;
            let stats = all_stats(client, std::slice::from_ref(layout)).await;
            let mut rows = Vec::new();
            for p in 0..layout.partition_count {
                let mut leader = None;
                let mut replicas = Vec::new();
                for n in layout.replicas(p) {
                    let s = stats.get(&n.id).and_then(|(_, s)| s.as_ref());
                    let ps = s.and_then(|s| {
                        s.partitions
                            .iter()
                            .find(|x| x.table == table && x.partition == p)
                    });
                    match ps {
                        Some(ps) => {
                            leader = leader.or(ps.leader);
                            replicas.push(serde_json::json!({"node": n.id, "term": ps.term,
                                "applied": ps.applied, "last_log": ps.last_log,
                                "snapshot": ps.snapshot, "purged": ps.purged}));
                        }
                        None => replicas.push(serde_json::json!({"node": n.id, "down": true})),
                    }
                }
                rows.push(
                    serde_json::json!({"partition": p, "leader": leader, "replicas": replicas}),
                );
            }
            if g.json {
                return print_json(&rows);
            }
            for r in rows {
                let reps: Vec<String> = r["replicas"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| match x.get("down") {
                                Some(_) => format!("{}:down", x["node"]),
                                None => format!("{}:applied={}", x["node"], x["applied"]),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "partition {} leader={} {}",
                    r["partition"],
                    r["leader"],
                    reps.join(" ")
                );
            }
            Ok(())
        }
        Cmd::Stats => {
            let s = client.stats(&g.addr).await.map_err(|e| e.to_string())?;
            print_json(&s)
        }
        Cmd::Checkpoint { table } => {
            match client
                .call(&g.addr, &ClientRequest::Checkpoint { table })
                .await
            {
                Ok(ClientResponse::Ok) => {
                    println!("checkpointed");
                    Ok(())
                }
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
        other => Err(format!("not handled here: {other:?}")),
    }
}
