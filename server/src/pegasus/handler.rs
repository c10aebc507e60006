//! Answers to [`PegasusRequest`]s on a partition's leader.
//!
//! Reads are linearizable (the replica's ReadIndex before reading the engine) and hide records
//! expired by this node's clock. Sets and deletes become plain write ops on encoded records;
//! atomic ops are stamped with this node's clock and proposed as one log entry each.

use super::proto::{PegasusRequest, PegasusResponse, Record, ScanRange};
use crate::error::ServerError;
use crate::layout::{partition_of, TableLayout};
use crate::node::{client_mutation, Node, MAX_SCAN_PAGE_BYTES, MAX_SCAN_ROWS, MAX_WRITE_OPS};
use crate::proto::ClientResponse;
use siltdb_replica::pegasus::record::{decode_key, encode_key, hash_key_range, live_value, now_ms};
use siltdb_replica::pegasus::{encode_value, AtomicOp};
use siltdb_replica::replica::Replica;
use siltdb_replica::WriteOp;
use std::sync::Arc;

/// Most records a reverse scan reads before it answers (it reads the whole range, then
/// reverses it).
pub const MAX_REVERSE_SCAN_RECORDS: usize = 100_000;

/// Answers one Pegasus request for `table`'s `partition`.
pub async fn handle(
    node: &Node,
    table: &str,
    partition: u32,
    req: PegasusRequest,
) -> Result<ClientResponse, ServerError> {
    let (layout, r) = node.replica(table, partition)?;
    if let Some(h) = req.hash_key() {
        let p = partition_of(h, layout.partition_count);
        if p != partition {
            return Err(ServerError::WrongPartition(format!(
                "hash key {h:?} is in partition {p}, not {partition}"
            )));
        }
        if h.len() > usize::from(u16::MAX) {
            return Err(ServerError::InvalidArgument(format!(
                "hash key longer than {} bytes",
                u16::MAX
            )));
        }
    }
    if let Some(next) = node.splits.pending(table) {
        // During a split only the hash keys that stay in this partition are served.
        match req.hash_key() {
            Some(h) if partition_of(h, next.partition_count) == partition => {}
            _ => return Err(crate::split::fence::splitting(table)),
        }
    }
    let resp = match req {
        PegasusRequest::MultiGet {
            hash_key,
            sort_keys,
        } => {
            if sort_keys.is_empty() {
                let range = ScanRange {
                    start_inclusive: true,
                    ..ScanRange::default()
                };
                scan(node, &layout, &r, &hash_key, &range).await?
            } else {
                multi_get(node, &layout, &r, &hash_key, sort_keys).await?
            }
        }
        PegasusRequest::Scan { hash_key, range } => {
            scan(node, &layout, &r, &hash_key, &range).await?
        }
        PegasusRequest::SortKeyCount { hash_key } => {
            let range = ScanRange {
                start_inclusive: true,
                ..ScanRange::default()
            };
            let (start, end) = bounds(&hash_key, &range)?;
            let mut n = 0u64;
            let mut from = Some(start);
            while let Some(s) = from {
                let now = now_ms();
                let page = node
                    .bounded(
                        "scan",
                        &layout,
                        r.scan(s, end.clone(), MAX_SCAN_ROWS, MAX_SCAN_PAGE_BYTES),
                    )
                    .await?;
                n += page
                    .rows
                    .iter()
                    .filter(|(_, v)| live_value(Some(v), now).is_some())
                    .count() as u64;
                from = page.resume_from;
            }
            PegasusResponse::Count(n)
        }
        PegasusRequest::MultiSet {
            hash_key,
            kvs,
            expire_ms,
        } => {
            let expire_ms =
                crate::envs::resolve_expire(expire_ms, now_ms(), layout.default_ttl_secs());
            let ops = kvs
                .into_iter()
                .map(|(s, v)| {
                    Ok(WriteOp::Put {
                        key: record_key(&hash_key, &s)?,
                        value: encode_value(expire_ms, &v),
                    })
                })
                .collect::<Result<Vec<_>, ServerError>>()?;
            write(node, &layout, &r, ops).await?
        }
        PegasusRequest::MultiDel {
            hash_key,
            sort_keys,
        } => {
            let ops = sort_keys
                .iter()
                .map(|s| {
                    Ok(WriteOp::Delete {
                        key: record_key(&hash_key, s)?,
                    })
                })
                .collect::<Result<Vec<_>, ServerError>>()?;
            write(node, &layout, &r, ops).await?
        }
        PegasusRequest::Atomic(kind) => {
            let now = now_ms();
            // Resolved before it is proposed ([`crate::envs::resolve_expire`]: the table's
            // default TTL, or never), so every replica applies the same.
            let mut kind = kind;
            let ttl_secs = layout.default_ttl_secs();
            kind.resolve_expiries(|ms| crate::envs::resolve_expire(ms, now, ttl_secs));
            let op = AtomicOp { now_ms: now, kind };
            let _admitted = node.splits.admit_write(table).await?;
            let resp = node
                .bounded("write", &layout, r.write_atomic(None, op))
                .await?;
            let result = resp.atomic.ok_or_else(|| {
                ServerError::Internal("atomic op applied without a result".into())
            })?;
            PegasusResponse::Atomic(result)
        }
        PegasusRequest::ScanPartition {
            from,
            limit,
            keys_only,
            partition_count,
        } => {
            if partition_count != 0 && partition_count != layout.partition_count {
                return Err(ServerError::WrongPartition(format!(
                    "{table} has {} partitions, not {partition_count}: it was split",
                    layout.partition_count
                )));
            }
            let (count, splits) = (layout.partition_count, layout.splits);
            let rows_max = (limit as usize).clamp(1, MAX_SCAN_ROWS);
            let page = node
                .bounded(
                    "scan",
                    &layout,
                    r.scan(from, None, rows_max, MAX_SCAN_PAGE_BYTES),
                )
                .await?;
            let now = now_ms();
            let records = page
                .rows
                .iter()
                .filter(|(k, _)| crate::split::owner::record_visible(k, partition, count, splits))
                .filter_map(|(k, v)| {
                    let (h, s) = decode_key(k)?;
                    let (e, v) = live_value(Some(v), now)?;
                    Some(Record {
                        hash_key: h.to_vec(),
                        sort_key: s.to_vec(),
                        expire_ms: e,
                        value: if keys_only { Vec::new() } else { v.to_vec() },
                    })
                })
                .collect();
            PegasusResponse::Records {
                records,
                more: page.resume_from.is_some(),
                resume_from: page.resume_from,
            }
        }
    };
    Ok(ClientResponse::Pegasus(resp))
}

fn record_key(hash_key: &[u8], sort_key: &[u8]) -> Result<Vec<u8>, ServerError> {
    encode_key(hash_key, sort_key)
        .ok_or_else(|| ServerError::InvalidArgument("hash key too long".into()))
}

async fn write(
    node: &Node,
    layout: &TableLayout,
    r: &Arc<Replica>,
    ops: Vec<WriteOp>,
) -> Result<PegasusResponse, ServerError> {
    if ops.is_empty() || ops.len() > MAX_WRITE_OPS {
        return Err(ServerError::InvalidArgument(format!(
            "{} records (1 to {MAX_WRITE_OPS})",
            ops.len()
        )));
    }
    let m = client_mutation(ops)?;
    let _admitted = node.splits.admit_write(&layout.name).await?;
    let resp = node.bounded("write", layout, r.write(m)).await?;
    Ok(PegasusResponse::Written {
        decree: resp.decree,
    })
}

async fn multi_get(
    node: &Node,
    layout: &TableLayout,
    r: &Arc<Replica>,
    hash_key: &[u8],
    sort_keys: Vec<Vec<u8>>,
) -> Result<PegasusResponse, ServerError> {
    if sort_keys.len() > MAX_SCAN_ROWS {
        return Err(ServerError::InvalidArgument(format!(
            "more than {MAX_SCAN_ROWS} sort keys"
        )));
    }
    let mut records = Vec::new();
    for (i, s) in sort_keys.into_iter().enumerate() {
        let k = record_key(hash_key, &s)?;
        // The first read is linearizable (ReadIndex); the others read the same leader after it.
        let v = if i == 0 {
            node.bounded("read", layout, r.read(&k)).await?
        } else {
            r.get(&k).map_err(|e| node.map_error(layout, e))?
        };
        if let Some((e, v)) = live_value(v.as_deref(), now_ms()) {
            records.push(Record {
                hash_key: hash_key.to_vec(),
                sort_key: s,
                expire_ms: e,
                value: v.to_vec(),
            });
        }
    }
    Ok(PegasusResponse::Records {
        records,
        more: false,
        resume_from: None,
    })
}

/// The engine range of a sort-key range: `[start, end)`.
fn bounds(hash_key: &[u8], range: &ScanRange) -> Result<(Vec<u8>, Option<Vec<u8>>), ServerError> {
    let (_, hash_end) = hash_key_range(hash_key)
        .ok_or_else(|| ServerError::InvalidArgument("hash key too long".into()))?;
    let mut start = record_key(hash_key, &range.start)?;
    if !range.start_inclusive {
        start.push(0);
    }
    let end = match &range.stop {
        None => hash_end,
        Some(stop) => {
            let mut e = record_key(hash_key, stop)?;
            if range.stop_inclusive {
                e.push(0);
            }
            Some(e)
        }
    };
    Ok((start, end))
}

async fn scan(
    node: &Node,
    layout: &TableLayout,
    r: &Arc<Replica>,
    hash_key: &[u8],
    range: &ScanRange,
) -> Result<PegasusResponse, ServerError> {
    let (start, end) = bounds(hash_key, range)?;
    let want = if range.limit == 0 {
        usize::MAX
    } else {
        range.limit as usize
    };
    let cap = if range.reverse {
        MAX_REVERSE_SCAN_RECORDS
    } else {
        want.min(MAX_SCAN_ROWS)
    };
    let mut records = Vec::new();
    let mut more = false;
    let mut from = Some(start);
    if end
        .as_ref()
        .is_some_and(|e| from.as_ref().is_some_and(|s| s >= e))
    {
        from = None;
    }
    while let Some(s) = from.take() {
        let page = node
            .bounded(
                "scan",
                layout,
                r.scan(s, end.clone(), MAX_SCAN_ROWS, MAX_SCAN_PAGE_BYTES),
            )
            .await?;
        let now = now_ms();
        for (k, v) in page.rows {
            let Some((_, sort)) = decode_key(&k) else {
                continue;
            };
            if let Some((e, v)) = live_value(Some(&v), now) {
                if records.len() >= cap {
                    if range.reverse {
                        return Err(ServerError::InvalidArgument(format!(
                            "a reverse scan reads at most {MAX_REVERSE_SCAN_RECORDS} records"
                        )));
                    }
                    more = true;
                    break;
                }
                records.push(Record {
                    hash_key: hash_key.to_vec(),
                    sort_key: sort.to_vec(),
                    expire_ms: e,
                    value: v.to_vec(),
                });
            }
        }
        if more {
            break;
        }
        from = page.resume_from;
    }
    if range.reverse {
        records.reverse();
        if records.len() > want {
            records.truncate(want);
            more = true;
        }
    }
    Ok(PegasusResponse::Records {
        records,
        more,
        resume_from: None,
    })
}
