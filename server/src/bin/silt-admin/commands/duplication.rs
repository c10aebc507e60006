//! Duplication reports: `query-dup`.

use super::prelude::*;

pub(crate) fn parse_fail_mode(s: &str) -> Res<FailMode> {
    match s.to_ascii_lowercase().as_str() {
        "slow" => Ok(FailMode::Slow),
        "skip" => Ok(FailMode::Skip),
        _ => Err(format!("--fail-mode {s:?}: expected slow or skip")),
    }
}

/// Prints the duplications of `table` (each partition as its primary sees it).
pub(crate) async fn query_dup(client: &Client, table: &str, json: bool) -> Res<()> {
    let layout = client.layout(table).await.map_err(|e| e.to_string())?;
    let report = client
        .query_duplication(table)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        let v = serde_json::json!({"replicas": report.replicas, "unreachable": report.unreachable});
        return print_json(&v);
    }
    for (id, why) in &report.unreachable {
        println!("node {id} unreachable: {why}");
    }
    let ids = report.ids();
    if ids.is_empty() {
        println!("no duplication of {table}");
    }
    for id in ids {
        let remote = report
            .replicas
            .iter()
            .find(|r| r.dup_id == id)
            .map(|r| (r.remote.clone(), r.fail_mode));
        let caught_up = report.caught_up(id, layout.partition_count);
        if let Some((remote, mode)) = remote {
            println!("duplication {id} -> {remote} fail_mode={mode:?} caught_up={caught_up}");
        }
        for (p, prim) in report.primaries(id, layout.partition_count) {
            match prim {
                None => println!("  partition {p}: no primary duplicating (election or takeover)"),
                Some(s) => println!(
                    "  partition {p}: node={} status={} confirmed={} lag={} shipped={}{}",
                    s.node,
                    s.status,
                    opt(s.confirmed_decree),
                    opt(s.lag_decrees),
                    s.shipped_mutations,
                    s.last_error
                        .as_deref()
                        .map(|e| format!(" error={e:?}"))
                        .unwrap_or_default()
                ),
            }
        }
    }
    Ok(())
}
