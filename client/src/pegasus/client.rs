//! The Rust API of the data model: [`crate::Client::pegasus`] gives a [`Pegasus`] handle on
//! one table.
//!
//! Every request goes to the leader of `partition_of(hash_key)` with the client's retries. As
//! with plain writes, a write or atomic op that fails with a timeout may still have been
//! applied; a retried atomic op (incr) may then apply twice.

use super::atomic::{now_ms, AtomicKind, AtomicResult, CheckType, Expire, Mutate};
use super::proto::{
    PegasusRequest, PegasusResponse, Record, ScanRange, EXPIRE_NEVER, EXPIRE_TABLE_DEFAULT,
};
use crate::client::Client;
use crate::error::{Error, Result, ServerError};
use crate::layout::{partition_of, TableLayout};
use crate::proto::{ClientRequest, ClientResponse};
use std::time::Duration;

/// The lifetime a write gives its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The table's default: the `default_ttl` app env the leader sees when the write arrives
    /// ([`crate::envs`]; never when unset).
    TableDefault,
    /// Never expire.
    Never,
    /// Expire this long after the write.
    After(Duration),
}

/// The data-model API on one table (see the module doc).
pub struct Pegasus<'a> {
    client: &'a Client,
    table: String,
}

impl Client {
    /// The data-model API on `table`.
    pub fn pegasus(&self, table: &str) -> Pegasus<'_> {
        Pegasus {
            client: self,
            table: table.to_string(),
        }
    }
}

impl Pegasus<'_> {
    async fn layout(&self) -> Result<TableLayout> {
        self.client.layout(&self.table).await
    }

    async fn call_in(
        &self,
        layout: &TableLayout,
        partition: u32,
        req: PegasusRequest,
    ) -> Result<PegasusResponse> {
        let req = ClientRequest::Pegasus {
            table: self.table.clone(),
            partition,
            req,
        };
        match self.client.route(layout, partition, &req).await? {
            ClientResponse::Pegasus(r) => Ok(r),
            ClientResponse::Error(e) => Err(Error::Server(e)),
            other => Err(Error::Transport(format!("unexpected answer {other:?}"))),
        }
    }

    /// Routes by `hash_key`; after a split of the table (a `WrongPartition` answer) once more
    /// by the newest layout, up to [`crate::client::MAX_REROUTES`] times.
    async fn call(&self, hash_key: &[u8], req: PegasusRequest) -> Result<PegasusResponse> {
        let mut reroutes = 0;
        loop {
            let layout = self.layout().await?;
            let p = partition_of(hash_key, layout.partition_count);
            match self.call_in(&layout, p, req.clone()).await {
                Err(Error::Server(ServerError::WrongPartition(_)))
                    if reroutes < crate::client::MAX_REROUTES =>
                {
                    reroutes += 1;
                    self.client.refresh_layout(&self.table).await?;
                }
                r => return r,
            }
        }
    }

    /// The expiry a request carries for `ttl` written now: the absolute time (ms since the
    /// epoch), or [`EXPIRE_TABLE_DEFAULT`] / [`EXPIRE_NEVER`], which the leader resolves.
    pub async fn expire_of(&self, ttl: Ttl) -> Result<u64> {
        let after = match ttl {
            Ttl::Never => return Ok(EXPIRE_NEVER),
            Ttl::TableDefault => return Ok(EXPIRE_TABLE_DEFAULT),
            Ttl::After(d) => d,
        };
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        Ok(now_ms().saturating_add(ms.max(1)).min(EXPIRE_NEVER - 1))
    }

    /// Sets one record.
    pub async fn set(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        value: &[u8],
        ttl: Ttl,
    ) -> Result<()> {
        self.multi_set(hash_key, vec![(sort_key.to_vec(), value.to_vec())], ttl)
            .await
    }

    /// Sets records of one hash key atomically.
    pub async fn multi_set(
        &self,
        hash_key: &[u8],
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
        ttl: Ttl,
    ) -> Result<()> {
        let expire_ms = self.expire_of(ttl).await?;
        let req = PegasusRequest::MultiSet {
            hash_key: hash_key.to_vec(),
            kvs,
            expire_ms,
        };
        match self.call(hash_key, req).await? {
            PegasusResponse::Written { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The live value of a record.
    pub async fn get(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_record(hash_key, sort_key).await?.map(|r| r.value))
    }

    /// The live record (value and expiry).
    pub async fn get_record(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Record>> {
        Ok(self
            .multi_get(hash_key, vec![sort_key.to_vec()])
            .await?
            .into_iter()
            .next())
    }

    /// The live records among `sort_keys` (empty: every record of the hash key).
    pub async fn multi_get(&self, hash_key: &[u8], sort_keys: Vec<Vec<u8>>) -> Result<Vec<Record>> {
        let req = PegasusRequest::MultiGet {
            hash_key: hash_key.to_vec(),
            sort_keys,
        };
        records(self.call(hash_key, req).await?).map(|(r, _)| r)
    }

    /// Deletes one record.
    pub async fn del(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<()> {
        self.multi_del(hash_key, vec![sort_key.to_vec()]).await
    }

    /// Deletes records of one hash key atomically.
    pub async fn multi_del(&self, hash_key: &[u8], sort_keys: Vec<Vec<u8>>) -> Result<()> {
        let req = PegasusRequest::MultiDel {
            hash_key: hash_key.to_vec(),
            sort_keys,
        };
        match self.call(hash_key, req).await? {
            PegasusResponse::Written { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The live records of a sort-key range (all of them when `range.limit` is 0).
    pub async fn scan(&self, hash_key: &[u8], range: ScanRange) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = Vec::new();
        let mut range = range;
        loop {
            let req = PegasusRequest::Scan {
                hash_key: hash_key.to_vec(),
                range: range.clone(),
            };
            let (page, more) = records(self.call(hash_key, req).await?)?;
            let last = page.last().map(|r| r.sort_key.clone());
            out.extend(page);
            match last {
                Some(last) if more && range.limit == 0 && !range.reverse => {
                    range.start = last;
                    range.start_inclusive = false;
                }
                _ => return Ok(out),
            }
        }
    }

    /// How many live records `hash_key` holds.
    pub async fn sortkey_count(&self, hash_key: &[u8]) -> Result<u64> {
        let req = PegasusRequest::SortKeyCount {
            hash_key: hash_key.to_vec(),
        };
        match self.call(hash_key, req).await? {
            PegasusResponse::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Pegasus check_and_mutate: if the record `check_sort_key` passes `check` against
    /// `operand`, applies `mutations` (atomically, decided at apply time).
    pub async fn check_and_mutate(
        &self,
        hash_key: &[u8],
        check_sort_key: &[u8],
        check: CheckType,
        operand: &[u8],
        mutations: Vec<Mutate>,
        return_check_value: bool,
    ) -> Result<AtomicResult> {
        self.atomic(AtomicKind::CheckAndMutate {
            hash_key: hash_key.to_vec(),
            check_sort_key: check_sort_key.to_vec(),
            check,
            operand: operand.to_vec(),
            mutations,
            return_check_value,
        })
        .await
    }

    /// Pegasus check_and_set: `check_and_mutate` with one put of `set_sort_key`.
    #[allow(clippy::too_many_arguments)]
    pub async fn check_and_set(
        &self,
        hash_key: &[u8],
        check_sort_key: &[u8],
        check: CheckType,
        operand: &[u8],
        set_sort_key: &[u8],
        set_value: &[u8],
        ttl: Ttl,
        return_check_value: bool,
    ) -> Result<AtomicResult> {
        let expire = Expire::At(self.expire_of(ttl).await?);
        let put = Mutate::Put {
            sort_key: set_sort_key.to_vec(),
            value: set_value.to_vec(),
            expire,
        };
        self.check_and_mutate(
            hash_key,
            check_sort_key,
            check,
            operand,
            vec![put],
            return_check_value,
        )
        .await
    }

    /// Adds `delta` to the decimal i64 record (absent = 0) and returns the new value; the
    /// record keeps its expiry unless `ttl` is given. Non-integers and overflow are errors.
    pub async fn incr(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        delta: i64,
        ttl: Option<Ttl>,
    ) -> Result<i64> {
        let expire = match ttl {
            None => Expire::Keep,
            Some(t) => Expire::At(self.expire_of(t).await?),
        };
        let r = self
            .atomic(AtomicKind::Incr {
                hash_key: hash_key.to_vec(),
                sort_key: sort_key.to_vec(),
                delta,
                expire,
            })
            .await?;
        match r.error {
            Some(e) => Err(Error::InvalidArgument(e)),
            None => Ok(r.int_value),
        }
    }

    /// Any atomic op; business failures are in [`AtomicResult::error`].
    pub async fn atomic(&self, kind: AtomicKind) -> Result<AtomicResult> {
        let hash_key = match &kind {
            AtomicKind::CheckAndMutate { hash_key, .. } | AtomicKind::Incr { hash_key, .. } => {
                hash_key.clone()
            }
        };
        match self.call(&hash_key, PegasusRequest::Atomic(kind)).await? {
            PegasusResponse::Atomic(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// The table's partition count.
    pub async fn partition_count(&self) -> Result<u32> {
        Ok(self.layout().await?.partition_count)
    }

    /// Up to `limit` live records of `partition` from engine key `from` on, and the engine key
    /// to continue from (`None`: the partition is done).
    pub async fn scan_partition(
        &self,
        partition: u32,
        from: Vec<u8>,
        limit: u32,
        keys_only: bool,
    ) -> Result<(Vec<Record>, Option<Vec<u8>>)> {
        let layout = self.layout().await?;
        self.scan_partition_in(&layout, partition, from, limit, keys_only)
            .await
    }

    /// [`Pegasus::scan_partition`] routed by `layout`: `WrongPartition` when the table no
    /// longer has its partition count (it was split).
    pub async fn scan_partition_in(
        &self,
        layout: &TableLayout,
        partition: u32,
        from: Vec<u8>,
        limit: u32,
        keys_only: bool,
    ) -> Result<(Vec<Record>, Option<Vec<u8>>)> {
        let req = PegasusRequest::ScanPartition {
            from,
            limit,
            keys_only,
            partition_count: layout.partition_count,
        };
        match self.call_in(layout, partition, req).await? {
            PegasusResponse::Records {
                records,
                resume_from,
                ..
            } => Ok((records, resume_from)),
            other => Err(unexpected(other)),
        }
    }

    /// Every live record of the table, partition by partition (hash keys in no global order).
    /// A split of the table during the scan starts it again by the newest layout (up to
    /// [`crate::client::MAX_REROUTES`] times).
    pub async fn scan_all(&self, limit: usize) -> Result<Vec<Record>> {
        let mut reroutes = 0;
        loop {
            let layout = self.layout().await?;
            match self.scan_all_in(&layout, limit).await {
                Err(Error::Server(ServerError::WrongPartition(_)))
                    if reroutes < crate::client::MAX_REROUTES =>
                {
                    reroutes += 1;
                    self.client.refresh_layout(&self.table).await?;
                }
                r => return r,
            }
        }
    }

    async fn scan_all_in(&self, layout: &TableLayout, limit: usize) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for p in 0..layout.partition_count {
            let mut from = Some(Vec::new());
            while let Some(f) = from {
                if out.len() >= limit {
                    return Ok(out);
                }
                let (recs, next) = self.scan_partition_in(layout, p, f, 1000, false).await?;
                out.extend(recs);
                from = next;
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

fn records(r: PegasusResponse) -> Result<(Vec<Record>, bool)> {
    match r {
        PegasusResponse::Records { records, more, .. } => Ok((records, more)),
        other => Err(unexpected(other)),
    }
}

fn unexpected(r: PegasusResponse) -> Error {
    Error::Transport(format!("unexpected answer {r:?}"))
}
