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
//!
//! Partition splits: a server whose layout has more partitions than the client's answers
//! `WrongPartition` for a key that moved (and for any scan routed by the old count); the
//! client then fetches the newest layout ([`Client::refresh_layout`]) and routes again (up to
//! [`MAX_REROUTES`] times per operation; a scan starts again after the last row it returned).

use crate::auth::Secret;
use crate::bulk_load::BulkLoadReport;
use crate::conn::{CallError, FramedConn};
use crate::duplication::{DuplicationReport, FailMode};
use crate::error::{Error, Result, ServerError};
use crate::frame::{self, FrameKind};
use crate::layout::TableLayout;
use crate::proto::{ClientRequest, ClientResponse, DigestReply, NodeStats};
use crate::types::{Gpid, WriteOp};
use parking_lot::{Mutex, RwLock};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Idle connections kept per server.
pub const MAX_IDLE_CONNECTIONS_PER_NODE: usize = 4;
/// How many times one operation routes again by a newer layout after a `WrongPartition`
/// answer (the table was split under it).
pub const MAX_REROUTES: u32 = 4;

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
    /// Rows per partition page of a scan. Default [`SCAN_PAGE_ROWS`].
    pub scan_page_rows: u32,
    /// The secret presented on every connection ([`crate::auth`]); `None` for a cluster
    /// without authentication. Default `None`.
    pub token: Option<Secret>,
    /// TLS of every connection ([`crate::tls`]); `None`: plain TCP. Default `None`.
    pub tls: Option<crate::tls::TlsClient>,
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
            scan_page_rows: SCAN_PAGE_ROWS,
            token: None,
            tls: None,
        }
    }

    /// These options speaking TLS with `tls` on every connection.
    pub fn with_tls(mut self, tls: Option<crate::tls::TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    /// These options presenting `token` on every connection.
    pub fn with_token(mut self, token: Option<Secret>) -> Self {
        self.token = token;
        self
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
    /// back as `Ok(ClientResponse::Error(_))`, and so does a refused handshake
    /// ([`ServerError::Unauthenticated`], never retried).
    pub async fn call_with_timeout(
        &self,
        addr: &str,
        req: &ClientRequest,
        timeout: Duration,
    ) -> Result<ClientResponse> {
        let mut payload =
            frame::encode_payload(req).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let pooled = self.idle.lock().get_mut(addr).and_then(Vec::pop);
        let reused = pooled.is_some();
        let mut conn = pooled.unwrap_or_else(|| self.new_conn(addr));
        let started = Instant::now();
        // The payload is kept for a second attempt only when there can be one.
        let first = if reused {
            payload.clone()
        } else {
            std::mem::take(&mut payload)
        };
        let mut r = conn
            .call(
                FrameKind::ClientRequest,
                FrameKind::ClientResponse,
                first,
                timeout,
            )
            .await;
        if r.is_err() && reused {
            // An idle connection the server closed (it restarted, or dropped idle peers):
            // once more on a fresh connection, within what is left of the bound.
            conn = self.new_conn(addr);
            let left = timeout.saturating_sub(started.elapsed());
            r = conn
                .call(
                    FrameKind::ClientRequest,
                    FrameKind::ClientResponse,
                    payload,
                    left,
                )
                .await;
        }
        let bytes = match r {
            Ok(b) => b,
            Err(CallError::Unauthenticated { addr, reason }) => {
                return Ok(ClientResponse::Error(ServerError::Unauthenticated(
                    format!("{addr}: {reason}"),
                )))
            }
            Err(e) => return Err(Error::Transport(e.to_string())),
        };
        {
            let mut idle = self.idle.lock();
            let pool = idle.entry(addr.to_string()).or_default();
            if pool.len() < MAX_IDLE_CONNECTIONS_PER_NODE {
                pool.push(conn);
            }
        }
        frame::decode_payload(&bytes)
            .map_err(|e| Error::Transport(format!("answer from {addr}: {e}")))
    }

    fn new_conn(&self, addr: &str) -> FramedConn {
        FramedConn::with_token(addr, self.opts.token.clone()).with_tls(self.opts.tls.clone())
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

    /// Sends `req` to the one server `addr`, retrying retryable failures with backoff until
    /// the deadline (the requests every node of a layout must get, one node at a time).
    pub async fn retry_on(&self, addr: &str, req: &ClientRequest) -> Result<ClientResponse> {
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

    /// Drops the cached layout of `table` (the next call fetches it again).
    pub fn forget_layout(&self, table: &str) {
        self.tables.write().remove(table);
    }

    /// Caches `layout` unless a newer epoch of it is cached.
    pub fn remember_layout(&self, layout: &TableLayout) {
        let mut cache = self.tables.write();
        match cache.get(&layout.name) {
            Some(c) if c.epoch > layout.epoch => {}
            _ => {
                cache.insert(layout.name.clone(), layout.clone());
            }
        }
    }

    /// Sends a partition request to its leader, following redirects and retrying on other
    /// nodes until the deadline.
    async fn partition_call(
        &self,
        layout: &TableLayout,
        partition: u32,
        req: &ClientRequest,
    ) -> Result<ClientResponse> {
        self.partition_call_with(layout, partition, req, self.opts.rpc_timeout)
            .await
    }

    /// `Client::partition_call` (to the partition's leader, following redirects, retrying
    /// on other nodes until the deadline) with each RPC bounded by `rpc_timeout`. A node that no
    /// longer hosts the partition (a moved replica) makes the client fetch the table's newest
    /// layout and route by it.
    pub async fn partition_call_with(
        &self,
        layout: &TableLayout,
        partition: u32,
        req: &ClientRequest,
        rpc_timeout: Duration,
    ) -> Result<ClientResponse> {
        let gpid = layout.gpid(partition);
        let mut replicas = layout.replicas(partition);
        if replicas.is_empty() {
            return Err(Error::InvalidArgument(format!("{gpid} has no replicas")));
        }
        // A long operation (a membership change) gets at least one whole attempt.
        let deadline = Instant::now() + self.opts.deadline.max(rpc_timeout);
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
                .call_with_timeout(&target, req, rpc_timeout.min(left))
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
                Ok(ClientResponse::Error(e @ ServerError::NoSuchPartition(_))) => {
                    self.forget_layout(&layout.name);
                    if let Ok(newer) = self.layout(&layout.name).await {
                        let moved = newer.replicas(partition);
                        if !moved.is_empty() {
                            replicas = moved;
                        }
                    }
                    format!("{target}: {e}")
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

    /// `Client::partition_call` (see [`Client::partition_call_with`]) for the data-model API ([`crate::pegasus`]).
    pub async fn route(
        &self,
        layout: &TableLayout,
        partition: u32,
        req: &ClientRequest,
    ) -> Result<ClientResponse> {
        self.partition_call(layout, partition, req).await
    }

    /// The value of `key`.
    pub async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut reroutes = 0;
        loop {
            let layout = self.layout(table).await?;
            let partition = layout.partition_of(key);
            let req = ClientRequest::Get {
                table: table.to_string(),
                partition,
                key: key.to_vec(),
            };
            match self.partition_call(&layout, partition, &req).await {
                Err(Error::Server(ServerError::WrongPartition(_))) if reroutes < MAX_REROUTES => {
                    reroutes += 1;
                    self.refresh_layout(table).await?;
                }
                Ok(ClientResponse::Value(v)) => return Ok(v),
                Ok(other) => return Err(unexpected(other)),
                Err(e) => return Err(e),
            }
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
        let mut left = ops;
        let mut reroutes = 0;
        loop {
            let layout = self.layout(table).await?;
            match self.batch_in(&layout, left).await {
                Err((Error::Server(ServerError::WrongPartition(_)), unsent))
                    if reroutes < MAX_REROUTES =>
                {
                    reroutes += 1;
                    left = unsent;
                    self.refresh_layout(table).await?;
                }
                Err((e, _)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// [`Client::batch`] routed by `layout`; on failure, the error and the ops not written
    /// (the failed group's and the later groups').
    async fn batch_in(
        &self,
        layout: &TableLayout,
        ops: Vec<WriteOp>,
    ) -> std::result::Result<(), (Error, Vec<WriteOp>)> {
        let table = layout.name.as_str();
        let mut groups: BTreeMap<u32, Vec<WriteOp>> = BTreeMap::new();
        for op in ops {
            let key = match &op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
                WriteOp::DeleteRange { .. } => {
                    return Err((
                        Error::InvalidArgument("range deletes span hash partitions".into()),
                        Vec::new(),
                    ))
                }
            };
            groups.entry(layout.partition_of(key)).or_default().push(op);
        }
        let mut groups: VecDeque<(u32, Vec<WriteOp>)> = groups.into_iter().collect();
        while let Some((partition, ops)) = groups.pop_front() {
            let req = ClientRequest::Write {
                table: table.to_string(),
                partition,
                ops,
            };
            let failed = match self.partition_call(layout, partition, &req).await {
                Ok(ClientResponse::Written { .. }) => continue,
                Ok(other) => unexpected(other),
                Err(e) => e,
            };
            let ClientRequest::Write { ops, .. } = req else {
                return Err((failed, Vec::new()));
            };
            let unsent = ops
                .into_iter()
                .chain(groups.into_iter().flat_map(|(_, g)| g))
                .collect();
            return Err((failed, unsent));
        }
        Ok(())
    }

    /// Fetches the newest layout of `table` from its nodes (after a `WrongPartition` answer:
    /// the table was split) and caches it.
    pub async fn refresh_layout(&self, table: &str) -> Result<TableLayout> {
        self.newest_layout(table).await
    }

    /// Up to `limit` rows with keys in `[start, end)` in key order, across all partitions
    /// (a [`ScanStream`] collected: memory is the result plus one page per partition).
    pub async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut stream = self.scan_stream(table, start, end).await?;
        let mut all = Vec::new();
        while all.len() < limit {
            match stream.next().await? {
                Some(row) => all.push(row),
                None => break,
            }
        }
        Ok(all)
    }

    /// The rows with keys in `[start, end)` in key order, across all partitions, fetched a page
    /// ([`ClientOptions::scan_page_rows`]) at a time per partition and merged as they are consumed. Each
    /// page is a linearizable read of its partition; the stream as a whole is not a snapshot.
    pub async fn scan_stream(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<ScanStream<'_>> {
        let layout = self.layout(table).await?;
        let mut stream = ScanStream {
            client: self,
            layout,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            last: None,
            reroutes: 0,
            parts: Vec::new(),
            fronts: BinaryHeap::new(),
        };
        match stream.fill_all().await {
            Err(e) if is_wrong_partition(&e) => stream.reroute().await?,
            r => r?,
        }
        Ok(stream)
    }
}

/// Default rows of one page of a partition scan.
pub const SCAN_PAGE_ROWS: u32 = 1000;

struct PartitionCursor {
    rows: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Where the next page starts; `None` once the partition is exhausted.
    resume: Option<Vec<u8>>,
}

/// A cross-partition scan in key order (see [`Client::scan_stream`]).
pub struct ScanStream<'a> {
    client: &'a Client,
    layout: TableLayout,
    /// First key of the scan.
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    /// The last key returned (a scan routed again resumes after it).
    last: Option<Vec<u8>>,
    /// Times the scan was routed again by a newer layout.
    reroutes: u32,
    parts: Vec<PartitionCursor>,
    /// The first buffered key of every partition that has one, smallest on top.
    fronts: BinaryHeap<Reverse<(Vec<u8>, u32)>>,
}

impl ScanStream<'_> {
    /// The next row, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(Reverse((_, partition))) = self.fronts.pop() else {
            return Ok(None);
        };
        let cursor = &mut self.parts[partition as usize];
        let row = cursor.rows.pop_front();
        if let Some((k, _)) = &row {
            self.last = Some(k.clone());
        }
        let cursor = &mut self.parts[partition as usize];
        if cursor.rows.is_empty() {
            match self.refill(partition).await {
                Err(e) if is_wrong_partition(&e) => self.reroute().await?,
                r => r?,
            }
        } else if let Some((k, _)) = cursor.rows.front() {
            self.fronts.push(Reverse((k.clone(), partition)));
        }
        Ok(row)
    }

    /// Fetches the first page of every partition of the layout.
    async fn fill_all(&mut self) -> Result<()> {
        let from = match &self.last {
            Some(k) => {
                let mut after = k.clone();
                after.push(0);
                after
            }
            None => self.start.clone(),
        };
        self.parts.clear();
        self.fronts.clear();
        for partition in 0..self.layout.partition_count {
            self.parts.push(PartitionCursor {
                rows: VecDeque::new(),
                resume: Some(from.clone()),
            });
            self.refill(partition).await?;
        }
        Ok(())
    }

    /// The table was split under the scan: fetch the newest layout and go on after the last
    /// row returned, by partition of the new layout.
    async fn reroute(&mut self) -> Result<()> {
        loop {
            if self.reroutes >= MAX_REROUTES {
                return Err(Error::Server(ServerError::WrongPartition(format!(
                    "{}: the layout kept changing during the scan",
                    self.layout.name
                ))));
            }
            self.reroutes += 1;
            self.layout = self.client.refresh_layout(&self.layout.name).await?;
            match self.fill_all().await {
                Err(e) if is_wrong_partition(&e) => continue,
                r => return r,
            }
        }
    }

    /// Fetches the next page of `partition` (when its buffer is empty and it has more) and
    /// publishes its first key.
    async fn refill(&mut self, partition: u32) -> Result<()> {
        let cursor = &mut self.parts[partition as usize];
        while cursor.rows.is_empty() {
            let Some(from) = cursor.resume.take() else {
                return Ok(());
            };
            let req = ClientRequest::Scan {
                table: self.layout.name.clone(),
                partition,
                start: from,
                end: self.end.clone(),
                limit: self.client.opts.scan_page_rows.max(1),
                partition_count: self.layout.partition_count,
            };
            match self
                .client
                .partition_call(&self.layout, partition, &req)
                .await?
            {
                ClientResponse::Rows { rows, resume_from } => {
                    cursor.rows.extend(rows);
                    cursor.resume = resume_from;
                }
                other => return Err(unexpected(other)),
            }
        }
        if let Some((k, _)) = cursor.rows.front() {
            self.fronts.push(Reverse((k.clone(), partition)));
        }
        Ok(())
    }
}

/// Cluster duplication (see [`crate::duplication`]; the duplicators run in the server).
impl Client {
    /// A duplication write into partition `partition` of `table` (used by the remote sink):
    /// with `clear`, every user key of the partition is deleted first. `source` and
    /// `source_term` fence off a deposed source leader (see
    /// [`ClientRequest::DuplicationWrite`]).
    pub async fn duplication_write(
        &self,
        table: &str,
        partition: u32,
        clear: bool,
        ops: Vec<WriteOp>,
        source: &str,
        source_term: u64,
    ) -> Result<()> {
        let layout = self.layout(table).await?;
        if partition >= layout.partition_count {
            return Err(Error::InvalidArgument(format!(
                "partition {partition} of {} partitions",
                layout.partition_count
            )));
        }
        let req = ClientRequest::DuplicationWrite {
            table: table.to_string(),
            partition,
            clear,
            ops,
            source: source.to_string(),
            source_term,
        };
        match self.partition_call(&layout, partition, &req).await? {
            ClientResponse::Written { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Adds a duplication of `table` to `remote_table` on the cluster reached through
    /// `remote_seeds` and returns its id (`dup_id`, or a new one: the time in ms). The
    /// follower table must exist with the same partition count. The record goes to every node
    /// of the layout; if one does not take it, the error names it: add it again with the same
    /// id once the node is up (idempotent for the same id and remote).
    pub async fn add_duplication(
        &self,
        table: &str,
        remote_seeds: &[String],
        remote_table: &str,
        fail_mode: Option<FailMode>,
        dup_id: Option<u64>,
    ) -> Result<u64> {
        let layout = self.layout(table).await?;
        if remote_seeds.is_empty() {
            return Err(Error::InvalidArgument("no remote seeds".into()));
        }
        let mut ro = self.opts.clone();
        ro.seeds = remote_seeds.to_vec();
        let remote = Client::new(ro).layout(remote_table).await?;
        if remote.partition_count != layout.partition_count {
            return Err(Error::InvalidArgument(format!(
                "{table} has {} partitions, the follower table {remote_table} {}",
                layout.partition_count, remote.partition_count
            )));
        }
        // Pegasus-style id: the time of the request (ms), unique per table in practice.
        let dup_id = match dup_id {
            Some(id) => id,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| Error::Internal(format!("clock before 1970: {e}")))?
                .as_millis() as u64,
        };
        let req = ClientRequest::AddDuplication {
            table: table.to_string(),
            dup_id,
            remote_seeds: remote_seeds.to_vec(),
            remote_table: remote_table.to_string(),
            fail_mode,
        };
        let mut failed = Vec::new();
        for n in &layout.nodes {
            match self.retry_on(&n.addr, &req).await {
                Ok(ClientResponse::Ok) => {}
                Ok(other) => failed.push(format!("node {}: {}", n.id, unexpected(other))),
                Err(e) => failed.push(format!("node {}: {e}", n.id)),
            }
        }
        if !failed.is_empty() {
            return Err(Error::Internal(format!(
                "duplication {dup_id} not added everywhere ({}); add it again with id \
                 {dup_id} once every node is up",
                failed.join("; ")
            )));
        }
        Ok(dup_id)
    }

    /// Removes duplication `dup_id` of `table` from every node of the layout; returns how
    /// many replicas held it. Idempotent: repeat it when a node was down.
    pub async fn remove_duplication(&self, table: &str, dup_id: u64) -> Result<u32> {
        let layout = self.layout(table).await?;
        let req = ClientRequest::RemoveDuplication {
            table: table.to_string(),
            dup_id,
        };
        let (mut removed, mut failed) = (0u32, Vec::new());
        for n in &layout.nodes {
            match self.retry_on(&n.addr, &req).await {
                Ok(ClientResponse::DuplicationRemoved { replicas }) => {
                    removed = removed.saturating_add(replicas)
                }
                Ok(other) => failed.push(format!("node {}: {}", n.id, unexpected(other))),
                Err(e) => failed.push(format!("node {}: {e}", n.id)),
            }
        }
        if !failed.is_empty() {
            return Err(Error::Internal(format!(
                "duplication {dup_id} not removed everywhere ({}); repeat the removal once \
                 every node is up",
                failed.join("; ")
            )));
        }
        if removed == 0 {
            return Err(Error::InvalidArgument(format!(
                "no duplication {dup_id} of {table}"
            )));
        }
        Ok(removed)
    }

    /// Every node's view of the duplications of `table` (one request per node, no retry; a
    /// node that does not answer is listed as unreachable).
    pub async fn query_duplication(&self, table: &str) -> Result<DuplicationReport> {
        let layout = self.layout(table).await?;
        let req = ClientRequest::QueryDuplication {
            table: table.to_string(),
        };
        let mut report = DuplicationReport::default();
        for n in &layout.nodes {
            match self.call(&n.addr, &req).await {
                Ok(ClientResponse::Duplications(v)) => report.replicas.extend(v),
                Ok(other) => report
                    .unreachable
                    .push((n.id, unexpected(other).to_string())),
                Err(e) => report.unreachable.push((n.id, e.to_string())),
            }
        }
        Ok(report)
    }
}

fn is_wrong_partition(e: &Error) -> bool {
    matches!(e, Error::Server(ServerError::WrongPartition(_)))
}

fn unexpected(resp: ClientResponse) -> Error {
    match resp {
        ClientResponse::Error(e) => Error::Server(e),
        other => Error::Transport(format!("unexpected answer {other:?}")),
    }
}
