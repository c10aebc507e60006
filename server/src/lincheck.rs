//! A linearizability checker for a single read/write register (Wing & Gong's search with
//! memoization, as in Knossos and Porcupine), for Jepsen-style histories recorded by tests.
//!
//! A history is a list of operations, each with its invocation time, its completion time
//! (`None` when the outcome is unknown: a write that timed out may or may not have taken
//! effect, at any point after its invocation), and what it did. Reads that failed carry no
//! information and are left out by the recorder. The history is linearizable when some total
//! order of the completed operations and a subset of the unknown ones respects real time
//! (an operation that completed before another was invoked comes first) and register
//! semantics (a read returns the latest write before it, or the initial value).
//!
//! The search linearizes one "minimal" operation at a time — one invoked before every
//! not-yet-linearized completed operation finished — and memoizes (linearized set, register
//! value) states already explored, so its cost is bounded by the number of distinct states,
//! not of orders. [`MAX_SEARCH_STATES`] bounds it anyway; past it the checker says "unknown".

use std::collections::HashSet;

/// Most states the search visits before giving up.
pub const MAX_SEARCH_STATES: usize = 5_000_000;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    /// Wrote this value.
    Write(u64),
    /// Read this value (`None`: the register was never written / deleted).
    Read(Option<u64>),
}

/// One operation of a history. Times are in any monotonic unit (e.g. µs since the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Which client ran it (for reports only).
    pub client: u32,
    /// Invocation time.
    pub invoked: u64,
    /// Completion time; `None` when the outcome is unknown (only meaningful for writes).
    pub completed: Option<u64>,
    /// What it did.
    pub op: RegisterOp,
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid linearization exists.
    Linearizable,
    /// No valid linearization exists; the longest linearizable prefix found is given as indices
    /// into the history (for the report).
    NotLinearizable {
        /// Indices of the operations of the deepest partial linearization found.
        deepest: Vec<usize>,
    },
    /// The search hit [`MAX_SEARCH_STATES`].
    Unknown,
}

fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// One level of the (explicit, so deep histories cannot overflow the thread stack) search.
struct Frame {
    bits: Vec<u64>,
    value: Option<u64>,
    /// Completed operations linearized so far.
    done: usize,
    /// Only operations invoked at or before this may be linearized next.
    horizon: u64,
    /// Next operation index to try.
    next: usize,
    /// The operation this frame linearized (None for the root).
    op: Option<usize>,
}

/// The earliest completion among completed operations not yet linearized.
fn horizon(ops: &[Operation], bits: &[u64]) -> u64 {
    (0..ops.len())
        .filter(|&i| !is_set(bits, i))
        .filter_map(|i| ops[i].completed)
        .min()
        .unwrap_or(u64::MAX)
}

/// Checks a single-register history whose register starts as `None`.
pub fn check(ops: &[Operation]) -> Verdict {
    // A read of a value nobody wrote can never be linearized.
    let written: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match o.op {
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Read(_) => None,
        })
        .collect();
    if let Some(i) = ops.iter().position(|o| {
        matches!(o.op, RegisterOp::Read(Some(v)) if !written.contains(&v)) && o.completed.is_some()
    }) {
        return Verdict::NotLinearizable { deepest: vec![i] };
    }
    let total = ops.iter().filter(|o| o.completed.is_some()).count();
    if total == 0 {
        return Verdict::Linearizable;
    }
    let bits = vec![0u64; ops.len().div_ceil(64).max(1)];
    let mut visited: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut deepest: Vec<usize> = Vec::new();
    let mut stack = vec![Frame {
        horizon: horizon(ops, &bits),
        bits,
        value: None,
        done: 0,
        next: 0,
        op: None,
    }];
    while let Some(top) = stack.last_mut() {
        let candidate = (top.next..ops.len()).find(|&i| {
            !is_set(&top.bits, i)
                && ops[i].invoked <= top.horizon
                && match ops[i].op {
                    RegisterOp::Write(_) => true,
                    RegisterOp::Read(r) => r == top.value,
                }
        });
        let Some(i) = candidate else {
            stack.pop();
            continue;
        };
        top.next = i + 1;
        let mut bits = top.bits.clone();
        set(&mut bits, i);
        let value = match ops[i].op {
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Read(_) => top.value,
        };
        let done = top.done + usize::from(ops[i].completed.is_some());
        if done == total {
            return Verdict::Linearizable;
        }
        if !visited.insert((bits.clone(), value)) {
            continue;
        }
        if visited.len() > MAX_SEARCH_STATES {
            return Verdict::Unknown;
        }
        stack.push(Frame {
            horizon: horizon(ops, &bits),
            bits,
            value,
            done,
            next: 0,
            op: Some(i),
        });
        if stack.len() > deepest.len() {
            deepest = stack.iter().filter_map(|f| f.op).collect();
        }
    }
    Verdict::NotLinearizable { deepest }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, invoked: u64, completed: Option<u64>, op: RegisterOp) -> Operation {
        Operation {
            client,
            invoked,
            completed,
            op,
        }
    }
    use RegisterOp::{Read, Write};

    #[test]
    fn sequential_histories() {
        let ok = [
            op(0, 0, Some(1), Read(None)),
            op(0, 2, Some(3), Write(1)),
            op(1, 4, Some(5), Read(Some(1))),
        ];
        assert_eq!(check(&ok), Verdict::Linearizable);
        let stale = [
            op(0, 0, Some(1), Write(1)),
            op(0, 2, Some(3), Write(2)),
            op(1, 4, Some(5), Read(Some(1))),
        ];
        assert!(matches!(check(&stale), Verdict::NotLinearizable { .. }));
        let phantom = [op(0, 0, Some(1), Read(Some(9)))];
        assert!(matches!(check(&phantom), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // Write(2) overlaps both reads: 1 then 2 is fine, but not 2 then 1.
        let h = [
            op(0, 0, Some(1), Write(1)),
            op(1, 2, Some(10), Write(2)),
            op(2, 3, Some(4), Read(Some(1))),
            op(2, 5, Some(6), Read(Some(2))),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
        let h = [
            op(0, 0, Some(1), Write(1)),
            op(1, 2, Some(10), Write(2)),
            op(2, 3, Some(4), Read(Some(2))),
            op(2, 5, Some(6), Read(Some(1))),
        ];
        assert!(matches!(check(&h), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn unknown_writes_may_apply_late_or_never() {
        // The timed-out write of 2 is seen long after it was invoked: allowed.
        let late = [
            op(0, 0, Some(1), Write(1)),
            op(1, 2, None, Write(2)),
            op(2, 50, Some(51), Read(Some(1))),
            op(2, 60, Some(61), Read(Some(2))),
        ];
        assert_eq!(check(&late), Verdict::Linearizable);
        let never = [
            op(0, 0, Some(1), Write(1)),
            op(1, 2, None, Write(2)),
            op(2, 60, Some(61), Read(Some(1))),
        ];
        assert_eq!(check(&never), Verdict::Linearizable);
        // But it cannot apply before it was invoked.
        let early = [
            op(0, 0, Some(1), Write(1)),
            op(2, 2, Some(3), Read(Some(2))),
            op(1, 10, None, Write(2)),
        ];
        assert!(matches!(check(&early), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn many_concurrent_clients_stay_tractable() {
        // 4 clients, 3000 operations (deeper than a recursive search could go on a test
        // thread's stack), a linearizable interleaving built from a sequential run
        // whose operations are then widened to overlap their neighbours.
        let mut h = Vec::new();
        let mut value = None;
        for i in 0..3000u64 {
            let t = i * 10;
            let o = if i % 3 == 0 {
                value = Some(i);
                Write(i)
            } else {
                Read(value)
            };
            h.push(op((i % 4) as u32, t.saturating_sub(15), Some(t + 15), o));
        }
        assert_eq!(check(&h), Verdict::Linearizable);
    }
}
