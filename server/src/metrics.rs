//! Prometheus metrics: `silt-server --metrics-listen ADDR` serves `GET /metrics` in the text
//! exposition format (version 0.0.4) and `GET /healthz`.
//!
//! Layer: top, beside [`crate::server`]: it reads the [`Node`] (its stats, every replica's
//! engine, plog and Raft figures, the node's shared engine resources, the per-partition
//! request counters) and the [`Services`] (duplication lag, bulk-load states), and changes
//! nothing. A scrape is gathered on the blocking pool.
//! Every metric is named `siltdb_*` and announced by `# HELP` and `# TYPE`; per-partition
//! series carry `table` and `partition` labels.
//!
//! The HTTP side is deliberately small: one request per connection, the request head bounded
//! by [`MAX_REQUEST_HEAD_BYTES`] and [`REQUEST_TIMEOUT`], `Connection: close`. Anything but
//! `GET /metrics` and `GET /healthz` is answered 404 (405 for another method).

use crate::dispatch::Services;
use crate::node::Node;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest request head read (request line and headers).
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 << 10;
/// Bound on reading a request and writing its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most scrape connections served at once (more wait in the accept queue).
pub const MAX_CONNECTIONS: usize = 16;

/// Serves the metrics endpoint until `stop`.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    services: Arc<Services>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let Ok((conn, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (node, services) = (Arc::clone(&node), Arc::clone(&services));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(conn, node, services)).await;
            drop(permit);
        });
    }
}

async fn answer(
    mut conn: TcpStream,
    node: Arc<Node>,
    services: Arc<Services>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return respond(
                &mut conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            // Gathering reads every replica's figures and takes service locks that background
            // work may hold: on the blocking pool, never on an async worker.
            let body = tokio::task::spawn_blocking(move || render(&node, Some(&services)))
                .await
                .map_err(std::io::Error::other)?;
            respond(
                &mut conn,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", "/healthz") => {
            if node.is_closed() {
                respond(
                    &mut conn,
                    "503 Service Unavailable",
                    "text/plain",
                    "shutting down\n",
                )
                .await
            } else {
                respond(&mut conn, "200 OK", "text/plain", "ok\n").await
            }
        }
        ("GET", _) => {
            respond(
                &mut conn,
                "404 Not Found",
                "text/plain",
                "try /metrics or /healthz\n",
            )
            .await
        }
        _ => {
            respond(
                &mut conn,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(
    conn: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// Builds the text exposition of one metric family at a time.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    /// Announces a family (`kind`: counter or gauge).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the family just announced.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.out, " {}", value as i64);
        } else {
            let _ = writeln!(self.out, " {value}");
        }
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Escapes a label value (backslash, double quote, newline), as the format requires.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Per-partition figures gathered once per scrape.
struct PartitionFigures {
    table: String,
    partition: String,
    leader: bool,
    term: u64,
    applied: u64,
    last_log: u64,
    engine: siltdb_replica::siltdb::Stats,
    memtable_bytes: u64,
    plog: siltdb_replica::plog::PlogStats,
}

/// The whole exposition for `node` and, when given, its services (duplications, bulk loads).
pub fn render(node: &Node, services: Option<&Services>) -> String {
    let stats = node.stats();
    let mut e = Exposition::default();
    e.single("siltdb_up", "gauge", "1 while the node serves.", 1.0);
    e.single(
        "siltdb_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        stats.uptime_ms as f64 / 1000.0,
    );
    e.family(
        "siltdb_requests_total",
        "counter",
        "Client requests by kind and outcome.",
    );
    let r = &stats.requests;
    for (kind, v) in [
        ("get", r.gets),
        ("write", r.writes),
        ("scan", r.scans),
        ("error", r.errors),
        ("not_leader", r.not_leader),
        ("timeout", r.timeouts),
    ] {
        e.sample("siltdb_requests_total", &[("kind", kind)], v as f64);
    }
    let t = &stats.transport;
    e.family(
        "siltdb_transport_rpcs_total",
        "counter",
        "Raft transport RPCs by outcome.",
    );
    for (kind, v) in [
        ("sent", t.rpcs_sent),
        ("failed", t.rpc_failures),
        ("dropped", t.rpcs_dropped),
        ("served", t.rpcs_served),
        ("snapshots_sent", t.snapshots_sent),
    ] {
        e.sample("siltdb_transport_rpcs_total", &[("kind", kind)], v as f64);
    }
    e.single(
        "siltdb_quarantined_replicas",
        "gauge",
        "Replicas that did not open and are not served.",
        stats.quarantined.len() as f64,
    );
    if let Some(res) = &node.opts.resources {
        for (name, help, value) in [
            (
                "siltdb_block_cache_usage_bytes",
                "Bytes in the node's shared block cache.",
                res.block_cache_usage(),
            ),
            (
                "siltdb_block_cache_capacity_bytes",
                "Capacity of the node's shared block cache.",
                res.block_cache_capacity(),
            ),
            (
                "siltdb_write_buffer_usage_bytes",
                "Memtable bytes of every replica of the node.",
                res.write_buffer_usage(),
            ),
            (
                "siltdb_write_buffer_budget_bytes",
                "Memtable budget of the node (0 = unbounded).",
                res.write_buffer_budget(),
            ),
            (
                "siltdb_background_threads",
                "Background engine threads of the node.",
                res.background_threads(),
            ),
        ] {
            e.single(name, "gauge", help, value as f64);
        }
    }
    if let Some(res) = &node.opts.resources {
        let (hits, misses) = res.block_cache_hits_and_misses();
        e.family(
            "siltdb_block_cache_lookups_total",
            "counter",
            "Lookups of the node's shared block cache, by result.",
        );
        e.sample(
            "siltdb_block_cache_lookups_total",
            &[("result", "hit")],
            hits as f64,
        );
        e.sample(
            "siltdb_block_cache_lookups_total",
            &[("result", "miss")],
            misses as f64,
        );
        let lookups = hits.saturating_add(misses);
        e.single(
            "siltdb_block_cache_hit_ratio",
            "gauge",
            "Hits over lookups of the shared block cache since start (0 before any lookup).",
            if lookups == 0 {
                0.0
            } else {
                hits as f64 / lookups as f64
            },
        );
    }
    render_requests(&mut e, node);
    if let Some(services) = services {
        render_services(&mut e, node, services);
    }
    let figures = partition_figures(node, &stats);
    type Get = fn(&PartitionFigures) -> f64;
    let families: [(&str, &str, &str, Get); 19] = [
        (
            "siltdb_raft_term",
            "gauge",
            "Current Raft term of the replica.",
            |p| p.term as f64,
        ),
        (
            "siltdb_raft_applied_index",
            "gauge",
            "Last log index applied by the replica.",
            |p| p.applied as f64,
        ),
        (
            "siltdb_raft_last_log_index",
            "gauge",
            "Last log index the replica holds.",
            |p| p.last_log as f64,
        ),
        (
            "siltdb_raft_is_leader",
            "gauge",
            "1 when this replica leads its partition.",
            |p| f64::from(u8::from(p.leader)),
        ),
        (
            "siltdb_engine_memtable_bytes",
            "gauge",
            "Bytes in the active memtable.",
            |p| p.memtable_bytes as f64,
        ),
        (
            "siltdb_engine_immutable_memtables",
            "gauge",
            "Memtables waiting for flush.",
            |p| p.engine.immutable_memtables as f64,
        ),
        (
            "siltdb_engine_l0_files",
            "gauge",
            "SST files in level 0.",
            |p| p.engine.files_per_level[0] as f64,
        ),
        (
            "siltdb_engine_sst_bytes",
            "gauge",
            "Bytes of every live SST file.",
            |p| p.engine.total_sst_bytes() as f64,
        ),
        (
            "siltdb_engine_pending_compaction_bytes",
            "gauge",
            "Bytes compaction must rewrite to bring every level within its target.",
            |p| p.engine.pending_compaction_bytes as f64,
        ),
        (
            "siltdb_engine_flushes_total",
            "counter",
            "Memtable flushes since open.",
            |p| p.engine.flushes as f64,
        ),
        (
            "siltdb_engine_compactions_total",
            "counter",
            "Compactions since open.",
            |p| p.engine.compactions as f64,
        ),
        (
            "siltdb_engine_user_bytes_total",
            "counter",
            "User bytes written since open.",
            |p| p.engine.user_bytes as f64,
        ),
        (
            "siltdb_engine_write_amplification",
            "gauge",
            "Flush and compaction bytes over user bytes.",
            |p| p.engine.write_amplification(),
        ),
        (
            "siltdb_engine_stalls_total",
            "counter",
            "Writes that had to stop.",
            |p| p.engine.stall.stops as f64,
        ),
        (
            "siltdb_engine_slowdowns_total",
            "counter",
            "Writes that were delayed.",
            |p| p.engine.stall.slowdowns as f64,
        ),
        (
            "siltdb_engine_stall_seconds_total",
            "counter",
            "Time writers spent stopped or delayed.",
            |p| p.engine.stall.stalled_micros as f64 / 1e6,
        ),
        (
            "siltdb_engine_stall_rejected_total",
            "counter",
            "Writes refused by a stall (no_slowdown or the stall bound).",
            |p| p.engine.stall.rejected as f64,
        ),
        (
            "siltdb_plog_segments",
            "gauge",
            "Mutation log segment files.",
            |p| p.plog.segments as f64,
        ),
        (
            "siltdb_plog_cached_bytes",
            "gauge",
            "Mutation log bytes held in memory.",
            |p| p.plog.cached_bytes as f64,
        ),
    ];
    for (name, kind, help, get) in families {
        e.family(name, kind, help);
        for p in &figures {
            e.sample(
                name,
                &[("table", &p.table), ("partition", &p.partition)],
                get(p),
            );
        }
    }
    e.out
}

/// The per-partition request families ([`crate::request_metrics`]): counts, bytes, errors,
/// throttled requests and the latency histogram, each by table, partition and kind.
fn render_requests(e: &mut Exposition, node: &Node) {
    use crate::request_metrics::{KindCounters, RequestKind, LATENCY_BUCKETS_SECONDS};
    use std::sync::atomic::Ordering::Relaxed;
    let all = node.requests.snapshot();
    let kinds = [RequestKind::Read, RequestKind::Write];
    type Count = fn(&KindCounters) -> u64;
    let counters: [(&str, &str, Count); 4] = [
        (
            "siltdb_partition_requests_total",
            "Data requests answered, by table, partition and kind.",
            |c| c.requests.load(Relaxed),
        ),
        (
            "siltdb_partition_request_bytes_total",
            "Payload bytes of data requests (values read; keys and values written).",
            |c| c.bytes.load(Relaxed),
        ),
        (
            "siltdb_partition_request_errors_total",
            "Data requests answered with an error (throttling included).",
            |c| c.errors.load(Relaxed),
        ),
        (
            "siltdb_partition_throttled_requests_total",
            "Data requests refused or delayed by throttling.",
            |c| c.throttled.load(Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        e.family(name, "counter", help);
        for ((table, p), m) in &all {
            let partition = p.to_string();
            for k in kinds {
                let labels = [
                    ("table", table.as_str()),
                    ("partition", &partition),
                    ("kind", k.label()),
                ];
                e.sample(name, &labels, get(m.kind(k)) as f64);
            }
        }
    }
    let name = "siltdb_request_duration_seconds";
    e.family(
        name,
        "histogram",
        "Latency of data requests inside the server, by table, partition and kind.",
    );
    for ((table, p), m) in &all {
        let partition = p.to_string();
        for k in kinds {
            let h = m.kind(k).latency.snapshot();
            let base = [
                ("table", table.as_str()),
                ("partition", partition.as_str()),
                ("kind", k.label()),
            ];
            for (i, count) in h.cumulative.iter().enumerate() {
                let le = LATENCY_BUCKETS_SECONDS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                let mut labels = base.to_vec();
                labels.push(("le", &le));
                e.sample(&format!("{name}_bucket"), &labels, *count as f64);
            }
            e.sample(&format!("{name}_sum"), &base, h.sum_seconds);
            e.sample(&format!("{name}_count"), &base, h.count as f64);
        }
    }
}

/// Duplication lag and bulk-load states.
fn render_services(e: &mut Exposition, node: &Node, services: &Services) {
    let names: std::collections::HashMap<u32, String> = node
        .list_tables()
        .into_iter()
        .map(|t| (t.app_id, t.name))
        .collect();
    let dups = services.duplication_figures();
    for (name, kind, help) in [
        (
            "siltdb_duplication_lag_decrees",
            "gauge",
            "Applied decrees the follower has not confirmed, per duplication this node runs.",
        ),
        (
            "siltdb_duplication_confirmed_mutations_total",
            "counter",
            "Mutations the follower confirmed since this node's duplicator started.",
        ),
    ] {
        e.family(name, kind, help);
        for (gpid, id, lag, shipped) in &dups {
            let table = names.get(&gpid.app_id).cloned().unwrap_or_default();
            let (partition, dup) = (gpid.partition_index.to_string(), id.to_string());
            let labels = [
                ("table", table.as_str()),
                ("partition", &partition),
                ("dup_id", &dup),
            ];
            let value = match name {
                "siltdb_duplication_lag_decrees" => lag.unwrap_or(0),
                _ => *shipped,
            };
            e.sample(name, &labels, value as f64);
        }
    }
    let loads = services.bulk_load_figures(node.opts.node_id);
    e.family(
        "siltdb_bulk_load_status",
        "gauge",
        "1 for the current status of each bulk load this node coordinates.",
    );
    for (table, r) in &loads {
        let status = r.status.to_string();
        e.sample(
            "siltdb_bulk_load_status",
            &[("table", table), ("status", &status)],
            1.0,
        );
    }
    e.family(
        "siltdb_bulk_load_partition_status",
        "gauge",
        "1 for the current status of each partition of each bulk load this node coordinates.",
    );
    for (table, r) in &loads {
        for p in &r.partitions {
            let (partition, status) = (p.partition.to_string(), p.status.to_string());
            let labels = [
                ("table", table.as_str()),
                ("partition", &partition),
                ("status", &status),
            ];
            e.sample("siltdb_bulk_load_partition_status", &labels, 1.0);
        }
    }
    e.family(
        "siltdb_bulk_load_downloaded_bytes",
        "gauge",
        "Bytes downloaded of each bulk load this node coordinates.",
    );
    for (table, r) in &loads {
        let (done, _) = r.bytes();
        e.sample(
            "siltdb_bulk_load_downloaded_bytes",
            &[("table", table)],
            done as f64,
        );
    }
}

fn partition_figures(
    node: &Node,
    stats: &siltdb_client::proto::NodeStats,
) -> Vec<PartitionFigures> {
    let replicas: Vec<(siltdb_replica::Gpid, Arc<siltdb_replica::replica::Replica>)> = node
        .replicas
        .read()
        .iter()
        .map(|(g, r)| (*g, Arc::clone(r)))
        .collect();
    let mut out = Vec::with_capacity(replicas.len());
    for (gpid, r) in replicas {
        let Some(p) = stats.partitions.iter().find(|p| {
            p.partition == gpid.partition_index
                && node.table(&p.table).is_ok_and(|t| t.app_id == gpid.app_id)
        }) else {
            continue;
        };
        let db = r.state_machine().db();
        out.push(PartitionFigures {
            table: p.table.clone(),
            partition: p.partition.to_string(),
            leader: p.leader == Some(node.opts.node_id),
            term: p.term,
            applied: p.applied.unwrap_or(0),
            last_log: p.last_log.unwrap_or(0),
            engine: db.stats(),
            memtable_bytes: db
                .property("siltdb.cur-size-active-mem-table")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            plog: r.plog().stats(),
        });
    }
    out.sort_by(|a, b| {
        (&a.table, a.partition.len(), &a.partition).cmp(&(
            &b.table,
            b.partition.len(),
            &b.partition,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_labels_and_formats_values() {
        let mut e = Exposition::default();
        e.family("siltdb_x", "gauge", "A test.");
        e.sample("siltdb_x", &[("table", "a\"b\\c\nd")], 3.0);
        e.sample("siltdb_x", &[], 0.5);
        assert_eq!(
            e.out,
            "# HELP siltdb_x A test.\n# TYPE siltdb_x gauge\nsiltdb_x{table=\"a\\\"b\\\\c\\nd\"} 3\nsiltdb_x 0.5\n"
        );
    }
}
