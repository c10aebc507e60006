//! Data commands: `put`, `get`, `del`, `scan` (plain keys or `--hash-key`/`--sort-key`).

use super::prelude::*;

/// Most records a table-wide `scan` collects before sorting.
pub(crate) const MAX_ADMIN_SCAN_RECORDS: usize = 1_000_000;

/// The `(hash_key, sort_key)` a data command names and its remaining positional arguments.
pub(crate) fn record_address(
    key: RecordKey,
    mut args: Vec<String>,
    rest: usize,
) -> Res<(Vec<u8>, Vec<u8>, Vec<String>)> {
    match key.hash_key {
        Some(h) => {
            if args.len() != rest {
                return Err(format!(
                    "with --hash-key expected {rest} positional argument(s), got {}",
                    args.len()
                ));
            }
            Ok((
                h.into_bytes(),
                key.sort_key.unwrap_or_default().into_bytes(),
                args,
            ))
        }
        None => {
            if args.len() != rest + 1 {
                return Err(format!(
                    "expected KEY and {rest} more positional argument(s) (or --hash-key), got {}",
                    args.len()
                ));
            }
            let k = args.remove(0);
            Ok((k.into_bytes(), Vec::new(), args))
        }
    }
}

pub(crate) fn print_row(key: &[u8], value: &[u8]) -> Res<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(key)
        .and_then(|()| out.write_all(b"\t"))
        .and_then(|()| out.write_all(value))
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| format!("stdout: {e}"))
}

pub(crate) async fn data_command(client: &Client, cmd: Cmd) -> Res<()> {
    use siltdb_server::pegasus::{ScanRange, Ttl};
    let err = |e: siltdb_client::Error| e.to_string();
    match cmd {
        Cmd::Put {
            table,
            key,
            ttl,
            args,
        } => {
            let (h, s, rest) = record_address(key, args, 1)?;
            let ttl = match ttl {
                None => Ttl::TableDefault,
                Some(0) => Ttl::Never,
                Some(secs) => Ttl::After(Duration::from_secs(secs)),
            };
            let pg = client.pegasus(&table);
            pg.set(&h, &s, rest[0].as_bytes(), ttl).await.map_err(err)
        }
        Cmd::Get { table, key, args } => {
            let (h, s, _) = record_address(key, args, 0)?;
            match client.pegasus(&table).get(&h, &s).await.map_err(err)? {
                Some(v) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&v)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(|e| format!("stdout: {e}"))
                }
                None => Err("not found".into()),
            }
        }
        Cmd::Del { table, key, args } => {
            let (h, s, _) = record_address(key, args, 0)?;
            client.pegasus(&table).del(&h, &s).await.map_err(err)
        }
        Cmd::Scan {
            table,
            hash_key,
            from,
            to,
            limit,
        } => {
            let limit = limit.unwrap_or(usize::MAX);
            let pg = client.pegasus(&table);
            if let Some(h) = hash_key {
                let range = ScanRange {
                    start: from.unwrap_or_default().into_bytes(),
                    stop: to.map(String::into_bytes),
                    start_inclusive: true,
                    stop_inclusive: false,
                    limit: u32::try_from(limit).unwrap_or(0),
                    reverse: false,
                };
                for r in pg.scan(h.as_bytes(), range).await.map_err(err)? {
                    print_row(&r.sort_key, &r.value)?;
                }
                return Ok(());
            }
            let (from, to) = (from.map(String::into_bytes), to.map(String::into_bytes));
            let mut rows = Vec::new();
            for r in pg.scan_all(MAX_ADMIN_SCAN_RECORDS).await.map_err(err)? {
                let in_range = r.sort_key.is_empty()
                    && from.as_ref().is_none_or(|f| &r.hash_key >= f)
                    && to.as_ref().is_none_or(|t| &r.hash_key < t);
                if in_range {
                    rows.push((r.hash_key, r.value));
                }
            }
            rows.sort();
            for (k, v) in rows.into_iter().take(limit) {
                print_row(&k, &v)?;
            }
            Ok(())
        }
        _ => Err("not a data command".into()),
    }
}
