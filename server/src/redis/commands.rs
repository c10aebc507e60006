//! The Redis commands and their mapping onto the data model: a string key `k` is the record
//! `(k, "")`, a hash field `f` of `k` is `(k, f)`. Read-modify-write commands (SET with
//! NX/XX/GET/KEEPTTL, SETNX, GETDEL, DEL, EXPIRE, PERSIST, INCR..., HSET, HDEL) are single
//! atomic ops on one hash key, decided by the replicas' state machine.
//!
//! Limits: MSET and multi-key DEL/EXISTS are per key, not atomic across keys (keys live in
//! different partitions); SET without options writes the string record without removing hash
//! fields of the same key; EXPIRE/TTL/PERSIST act on string keys; HSCAN answers in one page;
//! SCAN cursors are held by the node that issued them (at most [`MAX_SCAN_CURSORS`]).

use super::resp::Reply;
use crate::auth::{Keyring, Role};
use crate::client::Client;
use crate::pegasus::{Record, ScanRange, Ttl};
use parking_lot::Mutex;
use siltdb_replica::pegasus::atomic::{parse_i64, AtomicKind};
use siltdb_replica::pegasus::{now_ms, AtomicResult, CheckType, Expire, Mutate};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// SCAN cursors a node keeps (the oldest is forgotten first).
pub const MAX_SCAN_CURSORS: usize = 10_000;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INT: &str = "value is not an integer or out of range";

/// State shared by every connection of one endpoint.
pub struct Shared {
    /// Routes to the partition leaders.
    pub client: Arc<Client>,
    /// The table served.
    pub table: String,
    /// The secrets AUTH accepts; `None`: no AUTH needed.
    pub keyring: Option<Arc<Keyring>>,
    cursors: Mutex<Cursors>,
}

/// Issued SCAN cursors: the last id, each live cursor's (partition, engine key), issue order.
type Cursors = (u64, BTreeMap<u64, (u32, Vec<u8>)>, VecDeque<u64>);

impl Shared {
    /// Serves `table` through `client`; with a `keyring`, connections must AUTH
    /// ([`super::auth`]).
    pub fn new(client: Arc<Client>, table: String, keyring: Option<Arc<Keyring>>) -> Self {
        Shared {
            client,
            table,
            keyring,
            cursors: Mutex::new((0, BTreeMap::new(), VecDeque::new())),
        }
    }
}

/// Per-connection state.
#[derive(Debug, Default)]
pub struct Session {
    /// RESP3 after `HELLO 3`.
    pub resp3: bool,
    /// The connection should close after this reply (QUIT).
    pub quit: bool,
    /// The role AUTH granted (`None` before AUTH).
    pub role: Option<Role>,
}

/// (name, arity): positive = exact count with the name, negative = at least that many.
const COMMANDS: &[(&str, i32)] = &[
    ("ping", -1),
    ("echo", 2),
    ("select", 2),
    ("get", 2),
    ("set", -3),
    ("setnx", 3),
    ("getdel", 2),
    ("del", -2),
    ("exists", -2),
    ("expire", 3),
    ("pexpire", 3),
    ("ttl", 2),
    ("pttl", 2),
    ("persist", 2),
    ("incr", 2),
    ("incrby", 3),
    ("decr", 2),
    ("decrby", 3),
    ("mget", -2),
    ("mset", -3),
    ("hset", -4),
    ("hget", 3),
    ("hdel", -3),
    ("hlen", 2),
    ("hgetall", 2),
    ("hmget", -3),
    ("hscan", -3),
    ("scan", -2),
    ("dbsize", 1),
    ("info", -1),
    ("command", -1),
    ("hello", -1),
    ("auth", -2),
    ("quit", -1),
    ("client", -2),
    ("config", -2),
];

fn arity_ok(name: &str, n: usize) -> Option<bool> {
    let (_, a) = COMMANDS.iter().find(|(c, _)| *c == name)?;
    let n = n as i32;
    Some(if *a >= 0 { n == *a } else { n >= -a })
}

fn unknown(args: &[Vec<u8>]) -> Reply {
    let mut s = format!(
        "unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&args[0])
    );
    for a in args.iter().skip(1).take(16) {
        s.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    Reply::err(s)
}

fn int_arg(a: &[u8]) -> Result<i64, Reply> {
    parse_i64(a).ok_or_else(|| Reply::err(NOT_INT))
}

fn backend(e: siltdb_client::Error) -> Reply {
    Reply::err(format!("backend: {e}"))
}

fn atomic_err(r: &AtomicResult) -> Option<Reply> {
    r.error.as_ref().map(|e| {
        if e.contains("overflow") {
            Reply::err("increment or decrement would overflow")
        } else if e.contains("integer") {
            Reply::err(NOT_INT)
        } else {
            Reply::err(e)
        }
    })
}

/// Runs one command.
pub async fn execute(shared: &Shared, session: &mut Session, args: Vec<Vec<u8>>) -> Reply {
    if args.is_empty() {
        return Reply::Nil;
    }
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match arity_ok(&name, args.len()) {
        None => return unknown(&args),
        Some(false) => {
            return Reply::err(format!("wrong number of arguments for '{name}' command"))
        }
        Some(true) => {}
    }
    if shared.keyring.is_some() {
        if let Some(refused) = super::auth::refusal(&name, session.role) {
            return refused;
        }
    }
    match run(shared, session, &name, &args).await {
        Ok(r) | Err(r) => r,
    }
}

type Res = Result<Reply, Reply>;

async fn run(shared: &Shared, session: &mut Session, name: &str, a: &[Vec<u8>]) -> Res {
    let pg = shared.client.pegasus(&shared.table);
    let cam = |key: &[u8], check: CheckType, mutations: Vec<Mutate>, ret: bool| {
        AtomicKind::CheckAndMutate {
            hash_key: key.to_vec(),
            check_sort_key: Vec::new(),
            check,
            operand: Vec::new(),
            mutations,
            return_check_value: ret,
        }
    };
    let atomic = |k: AtomicKind| {
        let pg = shared.client.pegasus(&shared.table);
        async move { pg.atomic(k).await.map_err(backend) }
    };
    Ok(match name {
        "ping" => match a.get(1) {
            None => Reply::Simple("PONG".into()),
            Some(m) if a.len() == 2 => Reply::Bulk(m.clone()),
            Some(_) => return Err(Reply::err("wrong number of arguments for 'ping' command")),
        },
        "echo" => Reply::Bulk(a[1].clone()),
        "select" => match parse_i64(&a[1]) {
            Some(0) => Reply::ok(),
            Some(_) => Reply::err("DB index is out of range"),
            None => Reply::err(NOT_INT),
        },
        "quit" => {
            session.quit = true;
            Reply::ok()
        }
        "auth" if shared.keyring.is_some() => {
            let Some(k) = shared.keyring.as_deref() else {
                return Err(Reply::err("no keyring"));
            };
            let secret = match a.len() {
                2 => &a[1],
                3 => &a[2],
                _ => return Err(Reply::err("syntax error")),
            };
            session.role = Some(super::auth::check(k, secret)?);
            Reply::ok()
        }
        "auth" => match a.len() {
            2 => Reply::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            3 if a[1] == b"default" => Reply::ok(),
            3 => {
                Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
            }
            _ => Reply::err("syntax error"),
        },
        "hello" => {
            if let Some(v) = a.get(1) {
                match parse_i64(v) {
                    Some(2) => session.resp3 = false,
                    Some(3) => session.resp3 = true,
                    Some(_) => {
                        return Err(Reply::Error("NOPROTO unsupported protocol version".into()))
                    }
                    None => {
                        return Err(Reply::err(
                            "Protocol version is not an integer or out of range",
                        ))
                    }
                }
            }
            let mut i = 2;
            while i < a.len() {
                match a[i].to_ascii_lowercase().as_slice() {
                    b"auth" if i + 2 < a.len() && shared.keyring.is_some() => {
                        if let Some(k) = shared.keyring.as_deref() {
                            session.role = Some(super::auth::check(k, &a[i + 2])?);
                        }
                        i += 3;
                    }
                    b"auth" if i + 2 < a.len() => {
                        if a[i + 1] != b"default" {
                            return Err(Reply::Error(
                                "WRONGPASS invalid username-password pair or user is disabled."
                                    .into(),
                            ));
                        }
                        i += 3;
                    }
                    b"setname" if i + 1 < a.len() => i += 2,
                    _ => return Err(Reply::err("syntax error")),
                }
            }
            let s = |x: &str| Reply::bulk(x);
            Reply::Map(vec![
                (s("server"), s("redis")),
                (s("version"), s("7.0.0")),
                (s("proto"), Reply::Int(if session.resp3 { 3 } else { 2 })),
                (s("id"), Reply::Int(1)),
                (s("mode"), s("standalone")),
                (s("role"), s("master")),
                (s("modules"), Reply::Array(vec![])),
            ])
        }
        "client" => match a[1].to_ascii_lowercase().as_slice() {
            b"getname" => Reply::Nil,
            b"id" => Reply::Int(1),
            _ => Reply::ok(),
        },
        "config" => Reply::Array(vec![]),
        "command" => match a.get(1).map(|s| s.to_ascii_lowercase()) {
            None => Reply::Array(
                COMMANDS
                    .iter()
                    .map(|(n, ar)| {
                        Reply::Array(vec![
                            Reply::bulk(*n),
                            Reply::Int(i64::from(*ar)),
                            Reply::Array(vec![]),
                            Reply::Int(if *n == "mset" || *n == "mget" { 1 } else { 0 }),
                            Reply::Int(if *n == "mset" || *n == "mget" { -1 } else { 0 }),
                            Reply::Int(1),
                        ])
                    })
                    .collect(),
            ),
            Some(s) if s == b"count" => Reply::Int(COMMANDS.len() as i64),
            Some(_) => Reply::Array(vec![]),
        },
        "info" => {
            let text = format!(
                "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nsiltdb_table:{}\r\n\
                 # Replication\r\nrole:master\r\n# Keyspace\r\n",
                shared.table
            );
            Reply::Bulk(text.into_bytes())
        }
        "get" => match string_value(&pg, &a[1]).await? {
            Some(r) => Reply::Bulk(r.value),
            None => Reply::Nil,
        },
        "set" => set(shared, &a[1], &a[2], &a[3..]).await?,
        "setnx" => {
            let put = Mutate::Put {
                sort_key: Vec::new(),
                value: a[2].clone(),
                expire: Expire::At(pg.expire_of(Ttl::TableDefault).await.map_err(backend)?),
            };
            let r = atomic(cam(&a[1], CheckType::ValueNotExist, vec![put], false)).await?;
            Reply::Int(i64::from(r.succeeded))
        }
        "getdel" => {
            let del = Mutate::Delete {
                sort_key: Vec::new(),
            };
            let r = atomic(cam(&a[1], CheckType::NoCheck, vec![del], true)).await?;
            r.check_value.map_or(Reply::Nil, |(_, v)| Reply::Bulk(v))
        }
        "del" => {
            let mut n = 0;
            for k in &a[1..] {
                let r = atomic(cam(k, CheckType::NoCheck, vec![Mutate::DeleteAll], false)).await?;
                n += i64::from(r.live_before.first().is_some_and(|&c| c > 0));
            }
            Reply::Int(n)
        }
        "exists" => {
            let mut n = 0;
            for k in &a[1..] {
                n += i64::from(first_record(&pg, k).await?.is_some());
            }
            Reply::Int(n)
        }
        "expire" | "pexpire" => {
            let t = int_arg(&a[2])?;
            let ms = if name == "expire" {
                t.checked_mul(1000)
            } else {
                Some(t)
            };
            let ms =
                ms.ok_or_else(|| Reply::err(format!("invalid expire time in '{name}' command")))?;
            let m = if ms <= 0 {
                Mutate::Delete {
                    sort_key: Vec::new(),
                }
            } else {
                Mutate::SetExpire {
                    sort_key: Vec::new(),
                    expire_ms: now_ms().saturating_add(ms as u64),
                }
            };
            let r = atomic(cam(&a[1], CheckType::ValueExist, vec![m], false)).await?;
            Reply::Int(i64::from(r.succeeded))
        }
        "ttl" | "pttl" => match first_record(&pg, &a[1]).await? {
            None => Reply::Int(-2),
            Some(r) if r.expire_ms == 0 || !r.sort_key.is_empty() => Reply::Int(-1),
            Some(r) => {
                let left = r.expire_ms.saturating_sub(now_ms()) as i64;
                Reply::Int(if name == "pttl" {
                    left
                } else {
                    (left + 500) / 1000
                })
            }
        },
        "persist" => {
            let m = Mutate::SetExpire {
                sort_key: Vec::new(),
                expire_ms: 0,
            };
            let r = atomic(cam(&a[1], CheckType::ValueExist, vec![m], true)).await?;
            Reply::Int(i64::from(r.check_value.is_some_and(|(e, _)| e != 0)))
        }
        "incr" | "decr" | "incrby" | "decrby" => {
            let by = match name {
                "incr" => 1,
                "decr" => -1,
                "incrby" => int_arg(&a[2])?,
                _ => int_arg(&a[2])?
                    .checked_neg()
                    .ok_or_else(|| Reply::err("decrement would overflow"))?,
            };
            let r = atomic(AtomicKind::Incr {
                hash_key: a[1].clone(),
                sort_key: Vec::new(),
                delta: by,
                expire: Expire::Keep,
            })
            .await?;
            if let Some(e) = atomic_err(&r) {
                return Err(e);
            }
            Reply::Int(r.int_value)
        }
        "mget" => {
            let mut out = Vec::new();
            for k in &a[1..] {
                let v = pg.get(k, b"").await.map_err(backend)?;
                out.push(v.map_or(Reply::Nil, Reply::Bulk));
            }
            Reply::Array(out)
        }
        "mset" => {
            if a.len().is_multiple_of(2) {
                return Err(Reply::err("wrong number of arguments for 'mset' command"));
            }
            for kv in a[1..].chunks(2) {
                pg.set(&kv[0], b"", &kv[1], Ttl::TableDefault)
                    .await
                    .map_err(backend)?;
            }
            Reply::ok()
        }
        "hset" => {
            if !a.len().is_multiple_of(2) {
                return Err(Reply::err("wrong number of arguments for 'hset' command"));
            }
            let expire = Expire::At(pg.expire_of(Ttl::TableDefault).await.map_err(backend)?);
            let mut puts = Vec::new();
            for fv in a[2..].chunks(2) {
                if fv[0].is_empty() {
                    return Err(Reply::err("empty hash field names are not supported"));
                }
                puts.push(Mutate::Put {
                    sort_key: fv[0].clone(),
                    value: fv[1].clone(),
                    expire,
                });
            }
            // The check refuses a key holding a string.
            let r = atomic(cam(&a[1], CheckType::ValueNotExist, puts, false)).await?;
            if !r.succeeded {
                return Err(Reply::Error(WRONGTYPE.into()));
            }
            Reply::Int(r.live_before.iter().filter(|&&n| n == 0).count() as i64)
        }
        "hget" => {
            if a[2].is_empty() {
                return Ok(Reply::Nil);
            }
            match pg.get(&a[1], &a[2]).await.map_err(backend)? {
                Some(v) => Reply::Bulk(v),
                None => {
                    hash_type_check(&pg, &a[1]).await?;
                    Reply::Nil
                }
            }
        }
        "hdel" => {
            let dels = a[2..]
                .iter()
                .filter(|f| !f.is_empty())
                .map(|f| Mutate::Delete {
                    sort_key: f.clone(),
                })
                .collect();
            let r = atomic(cam(&a[1], CheckType::ValueNotExist, dels, false)).await?;
            if !r.succeeded {
                return Err(Reply::Error(WRONGTYPE.into()));
            }
            Reply::Int(r.live_before.iter().sum::<u64>() as i64)
        }
        "hlen" => Reply::Int(hash_fields(&pg, &a[1]).await?.len() as i64),
        "hgetall" => {
            let fields = hash_fields(&pg, &a[1]).await?;
            Reply::Map(
                fields
                    .into_iter()
                    .map(|r| (Reply::Bulk(r.sort_key), Reply::Bulk(r.value)))
                    .collect(),
            )
        }
        "hmget" => {
            hash_type_check(&pg, &a[1]).await?;
            let recs = pg
                .multi_get(&a[1], a[2..].to_vec())
                .await
                .map_err(backend)?;
            let by: BTreeMap<_, _> = recs.into_iter().map(|r| (r.sort_key, r.value)).collect();
            Reply::Array(
                a[2..]
                    .iter()
                    .map(|f| match by.get(f) {
                        Some(v) if !f.is_empty() => Reply::Bulk(v.clone()),
                        _ => Reply::Nil,
                    })
                    .collect(),
            )
        }
        "hscan" => {
            let (pattern, _) = scan_options(&a[3..])?;
            int_arg(&a[2])?;
            let mut items = Vec::new();
            for r in hash_fields(&pg, &a[1]).await? {
                if pattern.as_ref().is_none_or(|p| glob(p, &r.sort_key)) {
                    items.push(Reply::Bulk(r.sort_key));
                    items.push(Reply::Bulk(r.value));
                }
            }
            Reply::Array(vec![Reply::bulk("0"), Reply::Array(items)])
        }
        "scan" => scan(shared, &a[1], &a[2..]).await?,
        "dbsize" => {
            let mut n = 0i64;
            for p in 0..pg.partition_count().await.map_err(backend)? {
                let mut from = Some(Vec::new());
                let mut last: Option<Vec<u8>> = None;
                while let Some(f) = from {
                    let (recs, next) = pg
                        .scan_partition(p, f, 10_000, true)
                        .await
                        .map_err(backend)?;
                    for r in recs {
                        if last.as_ref() != Some(&r.hash_key) {
                            n += 1;
                            last = Some(r.hash_key);
                        }
                    }
                    from = next;
                }
            }
            Reply::Int(n)
        }
        _ => unknown(a),
    })
}

/// The first live record of `key`: its string record if any (sort key "" sorts first), else
/// its first hash field.
async fn first_record(
    pg: &crate::pegasus::Pegasus<'_>,
    key: &[u8],
) -> Result<Option<Record>, Reply> {
    let range = ScanRange {
        start_inclusive: true,
        limit: 1,
        ..ScanRange::default()
    };
    Ok(pg
        .scan(key, range)
        .await
        .map_err(backend)?
        .into_iter()
        .next())
}

async fn string_value(
    pg: &crate::pegasus::Pegasus<'_>,
    key: &[u8],
) -> Result<Option<Record>, Reply> {
    match first_record(pg, key).await? {
        Some(r) if r.sort_key.is_empty() => Ok(Some(r)),
        Some(_) => Err(Reply::Error(WRONGTYPE.into())),
        None => Ok(None),
    }
}

async fn hash_type_check(pg: &crate::pegasus::Pegasus<'_>, key: &[u8]) -> Result<(), Reply> {
    match first_record(pg, key).await? {
        Some(r) if r.sort_key.is_empty() => Err(Reply::Error(WRONGTYPE.into())),
        _ => Ok(()),
    }
}

async fn hash_fields(pg: &crate::pegasus::Pegasus<'_>, key: &[u8]) -> Result<Vec<Record>, Reply> {
    let range = ScanRange {
        start_inclusive: true,
        ..ScanRange::default()
    };
    let recs = pg.scan(key, range).await.map_err(backend)?;
    if recs.first().is_some_and(|r| r.sort_key.is_empty()) {
        return Err(Reply::Error(WRONGTYPE.into()));
    }
    Ok(recs)
}

async fn set(shared: &Shared, key: &[u8], value: &[u8], opts: &[Vec<u8>]) -> Res {
    let pg = shared.client.pegasus(&shared.table);
    let (mut ttl, mut nx, mut xx, mut keep, mut get) = (None, false, false, false, false);
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].to_ascii_lowercase();
        match o.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"keepttl" if ttl.is_none() => keep = true,
            b"get" => get = true,
            b"ex" | b"px" | b"exat" | b"pxat" if ttl.is_none() && !keep && i + 1 < opts.len() => {
                let n = int_arg(&opts[i + 1])?;
                if n <= 0 {
                    return Err(Reply::err("invalid expire time in 'set' command"));
                }
                let n = n as u64;
                let at = match o.as_slice() {
                    b"ex" => n.checked_mul(1000).map(|m| now_ms().saturating_add(m)),
                    b"px" => Some(now_ms().saturating_add(n)),
                    b"exat" => n.checked_mul(1000),
                    _ => Some(n),
                };
                ttl = Some(at.ok_or_else(|| Reply::err("invalid expire time in 'set' command"))?);
                i += 1;
            }
            _ => return Err(Reply::err("syntax error")),
        }
        i += 1;
    }
    if !nx && !xx && !keep && !get {
        let t = match ttl {
            Some(at) => Ttl::After(Duration::from_millis(at.saturating_sub(now_ms()).max(1))),
            None => Ttl::TableDefault,
        };
        pg.set(key, b"", value, t).await.map_err(backend)?;
        return Ok(Reply::ok());
    }
    let expire = match (ttl, keep) {
        (Some(at), _) => Expire::At(at),
        (None, true) => Expire::Keep,
        (None, false) => Expire::At(pg.expire_of(Ttl::TableDefault).await.map_err(backend)?),
    };
    let check = if nx {
        CheckType::ValueNotExist
    } else if xx {
        CheckType::ValueExist
    } else {
        CheckType::NoCheck
    };
    let put = Mutate::Put {
        sort_key: Vec::new(),
        value: value.to_vec(),
        expire,
    };
    let r = pg
        .atomic(AtomicKind::CheckAndMutate {
            hash_key: key.to_vec(),
            check_sort_key: Vec::new(),
            check,
            operand: Vec::new(),
            mutations: vec![put],
            return_check_value: get,
        })
        .await
        .map_err(backend)?;
    Ok(if get {
        r.check_value.map_or(Reply::Nil, |(_, v)| Reply::Bulk(v))
    } else if r.succeeded {
        Reply::ok()
    } else {
        Reply::Nil
    })
}

fn scan_options(opts: &[Vec<u8>]) -> Result<(Option<Vec<u8>>, u32), Reply> {
    let (mut pattern, mut count) = (None, 10u32);
    let mut i = 0;
    while i < opts.len() {
        if i + 1 >= opts.len() {
            return Err(Reply::err("syntax error"));
        }
        match opts[i].to_ascii_lowercase().as_slice() {
            b"match" => pattern = Some(opts[i + 1].clone()),
            b"count" => {
                let n = int_arg(&opts[i + 1])?;
                if n < 1 {
                    return Err(Reply::err("syntax error"));
                }
                count = u32::try_from(n).unwrap_or(u32::MAX).min(10_000);
            }
            b"type" => {}
            _ => return Err(Reply::err("syntax error")),
        }
        i += 2;
    }
    Ok((pattern, count))
}

async fn scan(shared: &Shared, cursor: &[u8], opts: &[Vec<u8>]) -> Res {
    let pg = shared.client.pegasus(&shared.table);
    let cursor = u64::try_from(int_arg(cursor)?).map_err(|_| Reply::err("invalid cursor"))?;
    let (pattern, count) = scan_options(opts)?;
    let (mut partition, mut from) = if cursor == 0 {
        (0, Vec::new())
    } else {
        match shared.cursors.lock().1.get(&cursor) {
            Some(c) => c.clone(),
            None => return Err(Reply::err("invalid cursor")),
        }
    };
    let partitions = pg.partition_count().await.map_err(backend)?;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    while partition < partitions && keys.len() < count as usize {
        let (recs, next) = pg
            .scan_partition(partition, from.clone(), count, true)
            .await
            .map_err(backend)?;
        for r in recs {
            if keys.last() != Some(&r.hash_key) {
                keys.push(r.hash_key);
            }
        }
        match next {
            Some(n) => from = n,
            None => {
                partition += 1;
                from = Vec::new();
            }
        }
    }
    let next = if partition >= partitions {
        0
    } else {
        let mut c = shared.cursors.lock();
        c.0 += 1;
        let id = c.0;
        c.1.insert(id, (partition, from));
        c.2.push_back(id);
        while c.2.len() > MAX_SCAN_CURSORS {
            if let Some(old) = c.2.pop_front() {
                c.1.remove(&old);
            }
        }
        id
    };
    let items = keys
        .into_iter()
        .filter(|k| pattern.as_ref().is_none_or(|p| glob(p, k)))
        .map(Reply::Bulk)
        .collect();
    Ok(Reply::Array(vec![
        Reply::Bulk(next.to_string().into_bytes()),
        Reply::Array(items),
    ]))
}

/// Redis glob matching (`*`, `?`, `[...]`, `\` escapes), iterative with backtracking on `*`.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => {
                let mut j = pi + 1;
                let neg = p.get(j) == Some(&b'^');
                if neg {
                    j += 1;
                }
                let mut hit = false;
                while j < p.len() && p[j] != b']' {
                    if p[j] == b'\\' && j + 1 < p.len() {
                        j += 1;
                        hit |= p[j] == s[si];
                    } else if j + 2 < p.len() && p[j + 1] == b'-' && p[j + 2] != b']' {
                        let (lo, hi) = (p[j].min(p[j + 2]), p[j].max(p[j + 2]));
                        hit |= (lo..=hi).contains(&s[si]);
                        j += 2;
                    } else {
                        hit |= p[j] == s[si];
                    }
                    j += 1;
                }
                (hit != neg).then_some(j + 1 - pi)
            }
            Some(b'\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(2),
            Some(&c) => (c == s[si]).then_some(1),
            None => None,
        };
        match step {
            Some(n) => {
                pi += n;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"user:*", b"user:1"));
        assert!(!glob(b"user:*", b"users"));
        assert!(glob(b"h?llo", b"hello"));
        assert!(glob(b"h[ae]llo", b"hallo"));
        assert!(!glob(b"h[^e]llo", b"hello"));
        assert!(glob(b"h[a-c]llo", b"hbllo"));
        assert!(glob(b"a\\*b", b"a*b"));
        assert!(glob(b"*a*b*", b"xxaxxbxx"));
        assert!(!glob(b"*a*b", b"xxbxxa"));
    }

    #[test]
    fn arity_follows_the_table() {
        assert_eq!(arity_ok("get", 2), Some(true));
        assert_eq!(arity_ok("get", 3), Some(false));
        assert_eq!(arity_ok("set", 5), Some(true));
        assert_eq!(arity_ok("nope", 1), None);
        let r = unknown(&[b"foo".to_vec(), b"a".to_vec()]);
        assert_eq!(
            r,
            Reply::err("unknown command 'foo', with args beginning with: 'a' ")
        );
    }
}
