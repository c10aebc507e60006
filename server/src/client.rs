//! The Rust client: routes each key to its partition, finds the partition's leader, and retries
//! on leader changes with bounded exponential backoff under an overall deadline.
//!
//! Routing: `partition = xxh3_64(key) % partition_count` ([`crate::layout::partition_of`]); the
//! table's layout comes from any seed node (`ListTables`) and is cached. The leader of each
//! partition is cached too: a `NotLeader` answer naming the leader redirects at once; any other
//! retryable failure (timeout, connection refused, no leader yet, shutting down) moves on to
//! the partition's next replica after a backoff that doubles from `backoff_min` to
//! `backoff_max`. Every operation ends by its `deadline`.
//!
//! Semantics: gets and scans are linearizable (ReadIndex on the leader). A write is
//! acknowledged once committed; a write that fails with a deadline or timeout may still have
//! been applied (as with any RPC). Retried puts and deletes are idempotent. A batch is atomic
//! per partition only: its ops are grouped by partition and each group is one log entry.

use crate::bulk_load::BulkLoadReport;
use crate::error::{Error, Result, ServerError};
use crate::layout::TableLayout;
use crate::proto::{ClientRequest, ClientResponse, DigestReply, NodeStats};
use parking_lot::{Mutex, RwLock};
use siltdb_replica::transport::frame::{self, FrameKind};
use siltdb_replica::transport::FramedConn;
use siltdb_replica::{Gpid, WriteOp};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Idle connections kept per server.
pub const IDLE_CONNECTIONS_PER_NODE_MAX: usize = 4;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Addresses of some servers, to learn table layouts from.
    pub seeds: Vec<String>,
    /// Bound on one request to one server. Default 10 s (above the server's own 5 s bound).
    pub rpc_timeout: Duration,
    /// Bound on a whole operation, retries included. Default 30 s.
    pub deadline: Duration,
    /// First retry backoff. Default 20 ms.
    pub backoff_min: Duration,
    /// Largest retry backoff. Default 1 s.
    pub backoff_max: Duration,
}

impl ClientOptions {
    /// Defaults with these seed addresses.
    pub fn new(seeds: Vec<String>) -> Self {
        Self {
            seeds,
            rpc_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// A siltdb cluster client. Share it (`Arc`) between tasks.
pub struct Client {
    opts: ClientOptions,
    tables: RwLock<HashMap<String, TableLayout>>,
    leaders: RwLock<HashMap<Gpid, String>>,
    idle: Mutex<HashMap<String, Vec<FramedConn>>>,
}

impl Client {
    /// A client; connects lazily.
    pub fn new(opts: ClientOptions) -> Self {
        Self {
            opts,
            tables: RwLock::default(),
            leaders: RwLock::default(),
            idle: Mutex::default(),
        }
    }

    /// One request to one server, no retry, bounded by `timeout`. A server-side error comes
    /// back as `Ok(ClientResponse::Error(_))`.
    pub async fn call_with_timeout(
        &self,
        addr: &str,
        req: &ClientRequest,
        timeout: Duration,
    ) -> Result<ClientResponse> {
        let payload =
            frame::encode_payload(req).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let conn = self.idle.lock().get_mut(addr).and_then(Vec::pop);
        let mut conn = conn.unwrap_or_else(|| FramedConn::new(addr));
        let bytes = conn
            .call(
                FrameKind::ClientRequest,
                FrameKind::ClientResponse,
                payload,
                timeout,
            )
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        {
            let mut idle = self.idle.lock();
            let pool = idle.entry(addr.to_string()).or_default();
            if pool.len() < IDLE_CONNECTIONS_PER_NODE_MAX {
                pool.push(conn);
            }
        }
        frame::decode_payload(&bytes)
            .map_err(|e| Error::Transport(format!("answer from {addr}: {e}")))
    }

    /// [`Client::call_with_timeout`] with the configured RPC timeout.
    pub async fn call(&self, addr: &str, req: &ClientRequest) -> Result<ClientResponse> {
        self.call_with_timeout(addr, req, self.opts.rpc_timeout)
            .await
    }

    /// Creates a table on every node of its layout (each node retried until the deadline).
    pub async fn create_table(&self, layout: &TableLayout) -> Result<()> {
        layout.validate()?;
        for n in &layout.nodes {
            let req = ClientRequest::CreateTable(layout.clone());
            self.retry_on(&n.addr, &req).await?;
        }
        self.tables
            .write()
            .insert(layout.name.clone(), layout.clone());
        Ok(())
    }

    /// Statistics of one server.
    pub async fn stats(&self, addr: &str) -> Result<NodeStats> {
        match self.call(addr, &ClientRequest::Stats).await? {
            ClientResponse::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// The digest of one server's replica of `table`'s partition `partition`.
    pub async fn digest(&self, addr: &str, table: &str, partition: u32) -> Result<DigestReply> {
        let req = ClientRequest::Digest {
            table: table.to_string(),
            partition,
        };
        match self.call(addr, &req).await? {
            ClientResponse::Digest(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// Starts a bulk load of `table` from `source_dir` (absolute; `<partition>/` sub-directories
    /// as `sst-ingest build --partitions N` writes them) on the table's coordinator. Not retried:
    /// a start whose answer was lost shows up in [`Client::query_bulk_load`].
    pub async fn start_bulk_load(&self, table: &str, source_dir: &str) -> Result<BulkLoadReport> {
        let addr = self.bulk_load_coordinator(table).await?;
        let req = ClientRequest::StartBulkLoad {
            table: table.to_string(),
            source_dir: source_dir.to_string(),
        };
        match self.call(&addr, &req).await? {
            ClientResponse::BulkLoad(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// The status of `table`'s bulk load, from its coordinator (retried until the deadline).
    pub async fn query_bulk_load(&self, table: &str) -> Result<BulkLoadReport> {
        let addr = self.bulk_load_coordinator(table).await?;
        let req = ClientRequest::QueryBulkLoad {
            table: table.to_string(),
        };
        match self.retry_on(&addr, &req).await? {
            ClientResponse::BulkLoad(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn bulk_load_coordinator(&self, table: &str) -> Result<String> {
        let layout = self.layout(table).await?;
        crate::bulk_load::coordinator(&layout)
            .map(|n| n.addr.clone())
            .ok_or_else(|| Error::InvalidArgument(format!("table {table} has no nodes")))
    }

    async fn retry_on(&self, addr: &str, req: &ClientRequest) -> Result<ClientResponse> {
        let deadline = Instant::now() + self.opts.deadline;
        let mut backoff = self.opts.backoff_min;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let last = match self
                .call_with_timeout(addr, req, self.opts.rpc_timeout.min(left))
                .await
            {
                Ok(ClientResponse::Error(e)) if e.is_retryable() => e.to_string(),
                Ok(ClientResponse::Error(e)) => return Err(e.into()),
                Ok(resp) => return Ok(resp),
                Err(e) => e.to_string(),
            };
            if Instant::now() + backoff >= deadline {
                return Err(self.deadline_error(last));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.opts.backoff_max);
        }
    }

    fn deadline_error(&self, last: String) -> Error {
        Error::Deadline {
            deadline_ms: self.opts.deadline.as_millis() as u64,
            last,
        }
    }

    /// The layout of `table` (cached; fetched from the seeds).
    pub async fn layout(&self, table: &str) -> Result<TableLayout> {
        if let Some(l) = self.tables.read().get(table) {
            return Ok(l.clone());
        }
        let mut last = String::from("no seeds");
        for seed in &self.opts.seeds {
            match self.call(seed, &ClientRequest::ListTables).await {
                Ok(ClientResponse::Tables(ts)) => {
                    let mut cache = self.tables.write();
                    for t in ts {
                        cache.insert(t.name.clone(), t);
                    }
                    if let Some(l) = cache.get(table) {
                        return Ok(l.clone());
                    }
                    last = format!("{seed} does not know table {table:?}");
                }
                Ok(other) => last = format!("{seed}: {other:?}"),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Server(ServerError::NoSuchTable(format!(
            "{table} ({last})"
        ))))
    }

    /// Sends a partition request to its leader, following redirects and retrying on other
    /// nodes until the deadline.
    async fn partition_call(
        &self,
        layout: &TableLayout,
        partition: u32,
        req: &ClientRequest,
    ) -> Result<ClientResponse> {
        let gpid = layout.gpid(partition);
        let replicas = layout.replicas(partition);
        if replicas.is_empty() {
            return Err(Error::InvalidArgument(format!("{gpid} has no replicas")));
        }
        let deadline = Instant::now() + self.opts.deadline;
        let mut backoff = self.opts.backoff_min;
        let mut next = 0usize;
        let mut target = self
            .leaders
            .read()
            .get(&gpid)
            .cloned()
            .unwrap_or_else(|| replicas[0].addr.clone());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.deadline_error(format!("{gpid}: no answer")));
            }
            let r = self
                .call_with_timeout(&target, req, self.opts.rpc_timeout.min(left))
                .await;
            let last = match r {
                Ok(ClientResponse::Error(ServerError::NotLeader {
                    addr: Some(addr), ..
                })) if addr != target => {
                    self.leaders.write().insert(gpid, addr.clone());
                    target = addr;
                    // Redirects cost no backoff, but a ping-pong between stale views does.
                    tokio::time::sleep(self.opts.backoff_min.min(left)).await;
                    continue;
                }
                Ok(ClientResponse::Error(ServerError::Throttled { delay_ms })) => {
                    tokio::time::sleep(Duration::from_millis(delay_ms).min(left)).await;
                    continue;
                }
                Ok(ClientResponse::Error(e)) if e.is_retryable() => format!("{target}: {e}"),
                Ok(ClientResponse::Error(e)) => return Err(e.into()),
                Ok(resp) => {
                    self.leaders.write().insert(gpid, target);
                    return Ok(resp);
                }
                Err(e) => format!("{target}: {e}"),
            };
            tracing::debug!(%gpid, error = %last, "retrying");
            self.leaders.write().remove(&gpid);
            next = (next + 1) % replicas.len();
            target = replicas[next].addr.clone();
            if Instant::now() + backoff >= deadline {
                return Err(self.deadline_error(last));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.opts.backoff_max);
        }
    }

    /// The value of `key`.
    pub async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let layout = self.layout(table).await?;
        let partition = layout.partition_of(key);
        let req = ClientRequest::Get {
            table: table.to_string(),
            partition,
            key: key.to_vec(),
        };
        match self.partition_call(&layout, partition, &req).await? {
            ClientResponse::Value(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.batch(
            table,
            vec![WriteOp::Put {
                key: key.to_vec(),
                value: value.to_vec(),
            }],
        )
        .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, table: &str, key: &[u8]) -> Result<()> {
        self.batch(table, vec![WriteOp::Delete { key: key.to_vec() }])
            .await
    }

    /// Puts and deletes; atomic per partition (see the module doc). Range deletes are refused.
    pub async fn batch(&self, table: &str, ops: Vec<WriteOp>) -> Result<()> {
        let layout = self.layout(table).await?;
        let mut groups: BTreeMap<u32, Vec<WriteOp>> = BTreeMap::new();
        for op in ops {
            let key = match &op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
                WriteOp::DeleteRange { .. } => {
                    return Err(Error::InvalidArgument(
                        "range deletes span hash partitions".into(),
                    ))
                }
            };
            groups.entry(layout.partition_of(key)).or_default().push(op);
        }
        for (partition, ops) in groups {
            let req = ClientRequest::Write {
                table: table.to_string(),
                partition,
                ops,
            };
            match self.partition_call(&layout, partition, &req).await? {
                ClientResponse::Written { .. } => {}
                other => return Err(unexpected(other)),
            }
        }
        Ok(())
    }

    /// Up to `limit` rows with keys in `[start, end)` in key order, across all partitions.
    pub async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let layout = self.layout(table).await?;
        let mut all = Vec::new();
        for partition in 0..layout.partition_count {
            let mut cursor = start.to_vec();
            let mut got = 0usize;
            while got < limit {
                let req = ClientRequest::Scan {
                    table: table.to_string(),
                    partition,
                    start: cursor.clone(),
                    end: end.map(<[u8]>::to_vec),
                    limit: u32::try_from(limit - got).unwrap_or(u32::MAX),
                };
                let (rows, resume) = match self.partition_call(&layout, partition, &req).await? {
                    ClientResponse::Rows { rows, resume_from } => (rows, resume_from),
                    other => return Err(unexpected(other)),
                };
                got = got.saturating_add(rows.len());
                all.extend(rows);
                match resume {
                    Some(k) => cursor = k,
                    None => break,
                }
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.truncate(limit);
        Ok(all)
    }
}

fn unexpected(resp: ClientResponse) -> Error {
    match resp {
        ClientResponse::Error(e) => Error::Server(e),
        other => Error::Transport(format!("unexpected answer {other:?}")),
    }
}
