//! Read-modify-write operations on the records of one hash key, decided at apply time.
//!
//! An [`AtomicOp`] is the log entry itself (a control trailer of the mutation,
//! `docs/format.md`, "Mutation payload"): every replica applies it to the same state with the
//! same clock reading (`now_ms`, stamped by the leader when it proposed the op), so every
//! replica decides it the same way. The state machine returns the [`AtomicResult`] to the
//! leader's caller. Business failures (a non-integer value, an overflow) are results, never
//! apply errors: an op that fails writes nothing.

use super::record::{decode_key, encode_key, encode_value, hash_key_range, live_value};
use crate::mutation::{get_bytes, get_u64, put_bytes, take, RESERVED_KEY_PREFIX};
use serde::{Deserialize, Serialize};
use siltdb::{Db, WriteBatch};
pub use siltdb_client::pegasus::atomic::{
    parse_i64, AtomicKind, AtomicResult, CheckType, Expire, Mutate,
};
use std::collections::BTreeMap;

/// Most mutations in one check-and-mutate.
pub const MAX_MUTATIONS: usize = 10_000;

/// A read-modify-write op with the leader's clock reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtomicOp {
    /// Milliseconds since the Unix epoch when the leader proposed it: "now" for expiry checks.
    pub now_ms: u64,
    /// The operation.
    pub kind: AtomicKind,
}

const KIND_CAM: u8 = 1;
const KIND_INCR: u8 = 2;

impl AtomicOp {
    /// The hash key the op works on.
    pub fn hash_key(&self) -> &[u8] {
        match &self.kind {
            AtomicKind::CheckAndMutate { hash_key, .. } | AtomicKind::Incr { hash_key, .. } => {
                hash_key
            }
        }
    }

    /// Bytes of keys and values, for throttling and size bounds.
    pub fn size_bytes(&self) -> u64 {
        let n = match &self.kind {
            AtomicKind::CheckAndMutate {
                hash_key,
                check_sort_key,
                operand,
                mutations,
                ..
            } => {
                let m: usize = mutations
                    .iter()
                    .map(|m| match m {
                        Mutate::Put {
                            sort_key, value, ..
                        } => sort_key.len() + value.len(),
                        Mutate::Delete { sort_key } | Mutate::SetExpire { sort_key, .. } => {
                            sort_key.len()
                        }
                        Mutate::DeleteAll => 0,
                    })
                    .sum();
                hash_key.len() + check_sort_key.len() + operand.len() + m
            }
            AtomicKind::Incr {
                hash_key, sort_key, ..
            } => hash_key.len() + sort_key.len() + 8,
        };
        n as u64
    }

    /// Meaning checks: key sizes, the reserved prefix, the mutation count.
    pub fn validate(&self, value_max_bytes: usize) -> Result<(), String> {
        let key_ok = |sort_key: &[u8]| -> Result<(), String> {
            let k = encode_key(self.hash_key(), sort_key)
                .ok_or_else(|| format!("hash key longer than {} bytes", u16::MAX))?;
            if k.starts_with(RESERVED_KEY_PREFIX) {
                return Err("record key uses the reserved prefix \\0silt/".into());
            }
            if k.len() > value_max_bytes {
                return Err(format!("key larger than {value_max_bytes} bytes"));
            }
            Ok(())
        };
        match &self.kind {
            AtomicKind::CheckAndMutate {
                check_sort_key,
                mutations,
                operand,
                ..
            } => {
                key_ok(check_sort_key)?;
                if mutations.len() > MAX_MUTATIONS {
                    return Err(format!("more than {MAX_MUTATIONS} mutations"));
                }
                if operand.len() > value_max_bytes {
                    return Err(format!("operand larger than {value_max_bytes} bytes"));
                }
                for m in mutations {
                    match m {
                        Mutate::Put {
                            sort_key, value, ..
                        } => {
                            key_ok(sort_key)?;
                            if value.len() > value_max_bytes {
                                return Err(format!("value larger than {value_max_bytes} bytes"));
                            }
                        }
                        Mutate::Delete { sort_key } | Mutate::SetExpire { sort_key, .. } => {
                            key_ok(sort_key)?
                        }
                        Mutate::DeleteAll => {}
                    }
                }
                Ok(())
            }
            AtomicKind::Incr { sort_key, .. } => key_ok(sort_key),
        }
    }

    /// Appends the encoding (`docs/format.md`, "Mutation payload", control kind 2).
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.now_ms.to_le_bytes());
        match &self.kind {
            AtomicKind::CheckAndMutate {
                hash_key,
                check_sort_key,
                check,
                operand,
                mutations,
                return_check_value,
            } => {
                out.push(KIND_CAM);
                put_bytes(out, hash_key);
                put_bytes(out, check_sort_key);
                out.push(check.code());
                put_bytes(out, operand);
                out.push(u8::from(*return_check_value));
                out.extend_from_slice(&(mutations.len() as u32).to_le_bytes());
                for m in mutations {
                    match m {
                        Mutate::Put {
                            sort_key,
                            value,
                            expire,
                        } => {
                            out.push(1);
                            put_bytes(out, sort_key);
                            put_bytes(out, value);
                            encode_expire(out, *expire);
                        }
                        Mutate::Delete { sort_key } => {
                            out.push(2);
                            put_bytes(out, sort_key);
                        }
                        Mutate::SetExpire {
                            sort_key,
                            expire_ms,
                        } => {
                            out.push(3);
                            put_bytes(out, sort_key);
                            out.extend_from_slice(&expire_ms.to_le_bytes());
                        }
                        Mutate::DeleteAll => out.push(4),
                    }
                }
            }
            AtomicKind::Incr {
                hash_key,
                sort_key,
                delta,
                expire,
            } => {
                out.push(KIND_INCR);
                put_bytes(out, hash_key);
                put_bytes(out, sort_key);
                out.extend_from_slice(&delta.to_le_bytes());
                encode_expire(out, *expire);
            }
        }
    }

    /// Decodes what [`AtomicOp::encode_to`] wrote, advancing `buf`; `None` when malformed.
    pub fn decode(buf: &mut &[u8]) -> Option<AtomicOp> {
        let now_ms = get_u64(buf)?;
        let kind = match *take(buf, 1)?.first()? {
            KIND_CAM => {
                let hash_key = get_bytes(buf)?;
                let check_sort_key = get_bytes(buf)?;
                let check = CheckType::from_code(*take(buf, 1)?.first()?)?;
                let operand = get_bytes(buf)?;
                let return_check_value = match *take(buf, 1)?.first()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let count = u32::from_le_bytes(take(buf, 4)?.try_into().ok()?) as usize;
                let mut mutations = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    mutations.push(match *take(buf, 1)?.first()? {
                        1 => Mutate::Put {
                            sort_key: get_bytes(buf)?,
                            value: get_bytes(buf)?,
                            expire: decode_expire(buf)?,
                        },
                        2 => Mutate::Delete {
                            sort_key: get_bytes(buf)?,
                        },
                        3 => Mutate::SetExpire {
                            sort_key: get_bytes(buf)?,
                            expire_ms: get_u64(buf)?,
                        },
                        4 => Mutate::DeleteAll,
                        _ => return None,
                    });
                }
                AtomicKind::CheckAndMutate {
                    hash_key,
                    check_sort_key,
                    check,
                    operand,
                    mutations,
                    return_check_value,
                }
            }
            KIND_INCR => AtomicKind::Incr {
                hash_key: get_bytes(buf)?,
                sort_key: get_bytes(buf)?,
                delta: i64::from_le_bytes(take(buf, 8)?.try_into().ok()?),
                expire: decode_expire(buf)?,
            },
            _ => return None,
        };
        Some(AtomicOp { now_ms, kind })
    }

    /// Decides the op against `db` (plus nothing else: the caller wrote every earlier entry),
    /// adding its writes to `batch`. Errors are engine read errors only.
    pub fn apply(&self, db: &Db, batch: &mut WriteBatch) -> siltdb::Result<AtomicResult> {
        let mut view = View {
            db,
            now: self.now_ms,
            overlay: BTreeMap::new(),
        };
        let mut res = AtomicResult::default();
        match &self.kind {
            AtomicKind::CheckAndMutate {
                hash_key,
                check_sort_key,
                check,
                operand,
                mutations,
                return_check_value,
            } => {
                let Some(ck) = encode_key(hash_key, check_sort_key) else {
                    res.error = Some("hash key too long".into());
                    return Ok(res);
                };
                let current = view.live(&ck)?;
                if *return_check_value {
                    res.check_value.clone_from(&current);
                }
                match check.passes(current.as_ref().map(|(_, v)| v.as_slice()), operand) {
                    Err(e) => {
                        res.error = Some(e);
                        return Ok(res);
                    }
                    Ok(false) => return Ok(res),
                    Ok(true) => {}
                }
                res.succeeded = true;
                for m in mutations {
                    let n = view.mutate(hash_key, m)?;
                    res.live_before.push(n);
                }
            }
            AtomicKind::Incr {
                hash_key,
                sort_key,
                delta,
                expire,
            } => {
                let Some(k) = encode_key(hash_key, sort_key) else {
                    res.error = Some("hash key too long".into());
                    return Ok(res);
                };
                let current = view.live(&k)?;
                let (old_expire, base) = match &current {
                    None => (0, 0),
                    Some((e, v)) if v.is_empty() => (*e, 0),
                    Some((e, v)) => match parse_i64(v) {
                        Some(n) => (*e, n),
                        None => {
                            res.error = Some("value is not an integer or out of range".into());
                            return Ok(res);
                        }
                    },
                };
                let Some(n) = base.checked_add(*delta) else {
                    res.error = Some("increment or decrement would overflow".into());
                    return Ok(res);
                };
                let e = match expire {
                    Expire::At(e) => *e,
                    Expire::Keep => old_expire,
                };
                view.put(k, e, n.to_string().as_bytes());
                res.succeeded = true;
                res.int_value = n;
                res.live_before.push(u64::from(current.is_some()));
            }
        }
        for (k, v) in view.overlay {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        Ok(res)
    }
}

/// The engine as the op sees it: `db` under the op's own writes so far.
struct View<'a> {
    db: &'a Db,
    now: u64,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl View<'_> {
    fn live(&self, key: &[u8]) -> siltdb::Result<Option<(u64, Vec<u8>)>> {
        let raw = match self.overlay.get(key) {
            Some(v) => v.clone(),
            None => self.db.get(key)?,
        };
        Ok(live_value(raw.as_deref(), self.now).map(|(e, v)| (e, v.to_vec())))
    }

    fn put(&mut self, key: Vec<u8>, expire: u64, value: &[u8]) {
        self.overlay.insert(key, Some(encode_value(expire, value)));
    }

    fn mutate(&mut self, hash_key: &[u8], m: &Mutate) -> siltdb::Result<u64> {
        let key = |s: &[u8]| encode_key(hash_key, s).unwrap_or_default();
        Ok(match m {
            Mutate::Put {
                sort_key,
                value,
                expire,
            } => {
                let k = key(sort_key);
                let cur = self.live(&k)?;
                let e = match expire {
                    Expire::At(e) => *e,
                    Expire::Keep => cur.as_ref().map_or(0, |(e, _)| *e),
                };
                self.put(k, e, value);
                u64::from(cur.is_some())
            }
            Mutate::Delete { sort_key } => {
                let k = key(sort_key);
                let cur = self.live(&k)?;
                self.overlay.insert(k, None);
                u64::from(cur.is_some())
            }
            Mutate::SetExpire {
                sort_key,
                expire_ms,
            } => {
                let k = key(sort_key);
                match self.live(&k)? {
                    Some((_, v)) => {
                        self.put(k, *expire_ms, &v);
                        1
                    }
                    None => 0,
                }
            }
            Mutate::DeleteAll => {
                let Some((start, end)) = hash_key_range(hash_key) else {
                    return Ok(0);
                };
                let opts = siltdb::ReadOptions {
                    lower_bound: Some(start.clone()),
                    upper_bound: end.clone(),
                    ..siltdb::ReadOptions::default()
                };
                let mut keys: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
                for item in self.db.iter(&opts) {
                    let (k, v) = item?;
                    if decode_key(&k).is_some_and(|(h, _)| h == hash_key) {
                        keys.insert(k, live_value(Some(&v), self.now).is_some());
                    }
                }
                for (k, v) in self.overlay.range(start..) {
                    if end.as_ref().is_some_and(|e| k >= e) {
                        break;
                    }
                    keys.insert(k.clone(), live_value(v.as_deref(), self.now).is_some());
                }
                let mut n = 0;
                for (k, live) in keys {
                    n += u64::from(live);
                    self.overlay.insert(k, None);
                }
                n
            }
        })
    }
}

fn encode_expire(out: &mut Vec<u8>, e: Expire) {
    match e {
        Expire::At(t) => {
            out.push(0);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Expire::Keep => {
            out.push(1);
            out.extend_from_slice(&0u64.to_le_bytes());
        }
    }
}

fn decode_expire(buf: &mut &[u8]) -> Option<Expire> {
    let kind = *take(buf, 1)?.first()?;
    let t = get_u64(buf)?;
    match kind {
        0 => Some(Expire::At(t)),
        1 => Some(Expire::Keep),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb_client::pegasus::atomic::CHECK_TYPES;

    fn cam(check: CheckType, operand: &str, mutations: Vec<Mutate>) -> AtomicOp {
        AtomicOp {
            now_ms: 1_000,
            kind: AtomicKind::CheckAndMutate {
                hash_key: b"h".to_vec(),
                check_sort_key: b"s".to_vec(),
                check,
                operand: operand.into(),
                mutations,
                return_check_value: true,
            },
        }
    }

    fn put(s: &str, v: &str) -> Mutate {
        Mutate::Put {
            sort_key: s.into(),
            value: v.into(),
            expire: Expire::At(0),
        }
    }

    fn run(db: &Db, op: &AtomicOp) -> AtomicResult {
        let mut b = WriteBatch::new();
        let r = op.apply(db, &mut b).unwrap();
        db.write(b, &siltdb::WriteOptions::default()).unwrap();
        r
    }

    #[test]
    fn checks_follow_pegasus() {
        use CheckType as C;
        assert!(C::ValueNotExist.passes(None, b"").unwrap());
        assert!(C::ValueNotExistOrEmpty.passes(Some(b""), b"").unwrap());
        assert!(!C::ValueExist.passes(None, b"").unwrap());
        assert!(C::MatchPrefix.passes(Some(b"abc"), b"ab").unwrap());
        assert!(C::MatchPostfix.passes(Some(b"abc"), b"bc").unwrap());
        assert!(C::MatchAnywhere.passes(Some(b"abc"), b"b").unwrap());
        assert!(C::BytesLess.passes(Some(b"a"), b"b").unwrap());
        assert!(C::IntGreater.passes(Some(b"10"), b"9").unwrap());
        assert!(!C::BytesGreater.passes(Some(b"10"), b"9").unwrap());
        assert!(C::IntEqual.passes(Some(b"x"), b"1").is_err());
        assert!(C::IntEqual.passes(None, b"x").is_err());
        for c in CHECK_TYPES {
            assert_eq!(CheckType::from_code(c.code()), Some(c));
        }
        assert_eq!(CheckType::from_code(18), None);
        assert_eq!(parse_i64(b"-12"), Some(-12));
        for bad in ["", "-", "01", "+1", " 1", "-0", "9223372036854775808"] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn check_and_mutate_and_incr_apply_against_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), siltdb::Options::default()).unwrap();
        let r = run(&db, &cam(CheckType::ValueNotExist, "", vec![put("s", "1")]));
        assert!(r.succeeded && r.check_value.is_none() && r.live_before == vec![0]);
        let r = run(&db, &cam(CheckType::ValueNotExist, "", vec![put("s", "2")]));
        assert!(!r.succeeded);
        assert_eq!(r.check_value, Some((0, b"1".to_vec())));
        let incr = |delta| AtomicOp {
            now_ms: 1_000,
            kind: AtomicKind::Incr {
                hash_key: b"h".to_vec(),
                sort_key: b"s".to_vec(),
                delta,
                expire: Expire::Keep,
            },
        };
        assert_eq!(run(&db, &incr(5)).int_value, 6);
        assert!(run(&db, &incr(i64::MAX)).error.is_some());
        assert_eq!(run(&db, &incr(-1)).int_value, 5);
        // An expired record counts as absent.
        let r = run(
            &db,
            &cam(
                CheckType::NoCheck,
                "",
                vec![Mutate::SetExpire {
                    sort_key: b"s".to_vec(),
                    expire_ms: 500,
                }],
            ),
        );
        assert_eq!(r.live_before, vec![1]);
        assert_eq!(run(&db, &incr(1)).int_value, 1);
        run(
            &db,
            &cam(CheckType::NoCheck, "", vec![put("t", "x"), put("u", "y")]),
        );
        let r = run(
            &db,
            &cam(CheckType::ValueExist, "", vec![Mutate::DeleteAll]),
        );
        assert_eq!(r.live_before, vec![3]);
        let mut n = 0;
        for item in db.iter(&siltdb::ReadOptions::default()) {
            item.unwrap();
            n += 1;
        }
        assert_eq!(n, 0);
        let bad = run(&db, &cam(CheckType::IntLess, "x", vec![put("s", "1")]));
        assert!(bad.error.is_some() && !bad.succeeded);
    }

    #[test]
    fn encoding_round_trips_and_survives_truncation() {
        let ops = [
            cam(
                CheckType::BytesEqual,
                "v",
                vec![
                    put("a", "b"),
                    Mutate::Delete {
                        sort_key: b"c".to_vec(),
                    },
                    Mutate::SetExpire {
                        sort_key: b"d".to_vec(),
                        expire_ms: 9,
                    },
                    Mutate::DeleteAll,
                    Mutate::Put {
                        sort_key: b"e".to_vec(),
                        value: b"f".to_vec(),
                        expire: Expire::Keep,
                    },
                ],
            ),
            AtomicOp {
                now_ms: 7,
                kind: AtomicKind::Incr {
                    hash_key: b"h".to_vec(),
                    sort_key: b"".to_vec(),
                    delta: -3,
                    expire: Expire::At(99),
                },
            },
        ];
        for op in ops {
            let mut buf = Vec::new();
            op.encode_to(&mut buf);
            let mut b = buf.as_slice();
            assert_eq!(AtomicOp::decode(&mut b), Some(op.clone()));
            assert!(b.is_empty());
            for cut in 0..buf.len() {
                let mut b = &buf[..cut];
                assert_eq!(AtomicOp::decode(&mut b), None);
            }
        }
    }
}
