//! `split`: doubles a table's partition count ([`siltdb_server::split`]).

use super::prelude::*;

/// `silt-admin split`: the partition count wanted is checked against the table's newest
/// layout here (a clear error before anything changes) and again by the coordinator.
pub(crate) async fn split_table(
    client: &Client,
    table: &str,
    partitions: Option<u32>,
    timeout: Duration,
    json: bool,
) -> Res<()> {
    if partitions == Some(0) {
        return Err("--partitions 0: a split doubles the partition count".into());
    }
    let layout = client
        .split_table(table, partitions, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&serde_json::json!({
            "table": layout.name,
            "partitions": layout.partition_count,
            "epoch": layout.epoch,
        }));
    }
    println!("{}", layout.partition_count);
    Ok(())
}
