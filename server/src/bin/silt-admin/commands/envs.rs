//! App envs (`set-env`, `get-env`, `del-env`) and hot keys (`hotkeys`).

use super::prelude::*;

/// `set-env`, `get-env`, `del-env` (through the meta service when the cluster has one).
pub(crate) async fn env_command(client: &Client, cmd: Cmd, json: bool) -> Res<()> {
    let err = |e: siltdb_client::Error| e.to_string();
    let changed = match cmd {
        Cmd::SetEnv { table, key, value } => client.set_env(&table, &key, &value).await,
        Cmd::DelEnv { table, key } => client.del_env(&table, &key).await,
        Cmd::GetEnv { table } => {
            let envs = client.envs(&table).await.map_err(err)?;
            if json {
                return print_json(&envs);
            }
            for (k, v) in envs {
                println!("{k}={v}");
            }
            return Ok(());
        }
        other => return Err(format!("not an env command: {other:?}")),
    }
    .map_err(err)?;
    if json {
        return print_json(&changed.envs);
    }
    println!(
        "table {} at layout epoch {}: {} env(s)",
        changed.name,
        changed.epoch,
        changed.envs.len()
    );
    Ok(())
}

/// `hotkeys`: every node of the table asked, reports merged per partition.
pub(crate) async fn hotkeys_command(
    client: &Client,
    table: &str,
    kind: Option<&str>,
    top: usize,
    json: bool,
) -> Res<()> {
    use siltdb_client::hotkeys::HotKeyKind;
    let kind = kind
        .map(HotKeyKind::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let reports = client
        .hot_keys(table, kind, top)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&reports);
    }
    for r in &reports {
        for k in &r.keys {
            let head = format!("{}\t{}\t{}", r.partition, r.kind.name(), k.count);
            print_row(head.as_bytes(), &k.key)?;
        }
    }
    Ok(())
}
