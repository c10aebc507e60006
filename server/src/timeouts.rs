//! Client-supplied timeouts, capped by server maxima: a request cannot make the server hold a
//! lock, a task or a connection longer than the server allows, whatever number it carries.
//!
//! Layer: node infrastructure (read by [`crate::dispatch`] before a request is handled).
//!
//! Every duration field of a request passes through [`cap_request`] once, at the door; the
//! services below see only capped values.

use crate::membership::{CHANGE_TIMEOUT_MIN, MAX_CHANGE_TIMEOUT};
use siltdb_client::bulk_load::ReplicaBulkOp;
use siltdb_client::meta::MetaRequest;
use siltdb_client::proto::ClientRequest;
use siltdb_client::split::{MAX_SPLIT_TIMEOUT, SPLIT_TIMEOUT_MIN};
use std::time::Duration;

/// Longest a bulk-load ingest proposal may wait for its entry to apply on the leader.
pub const MAX_INGEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a meta request may give each replica move to catch up (each move's
/// `ChangeReplicas` is also bounded by [`MAX_CHANGE_TIMEOUT`] on its leader).
pub const MAX_CATCH_UP_TIMEOUT: Duration = MAX_CHANGE_TIMEOUT;

/// `ms` clamped to `min..=max`, in milliseconds.
pub fn capped_ms(ms: u64, min: Duration, max: Duration) -> u64 {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    ms.clamp(millis(min), millis(max))
}

/// Caps every client-chosen duration in `req` (module docs).
pub fn cap_request(req: &mut ClientRequest) {
    match req {
        ClientRequest::ChangeReplicas { timeout_ms, .. } => {
            *timeout_ms = capped_ms(*timeout_ms, CHANGE_TIMEOUT_MIN, MAX_CHANGE_TIMEOUT);
        }
        ClientRequest::BulkLoadReplica {
            op: ReplicaBulkOp::Ingest { timeout_ms, .. },
            ..
        } => {
            *timeout_ms = capped_ms(*timeout_ms, Duration::from_millis(1), MAX_INGEST_TIMEOUT);
        }
        ClientRequest::Meta(
            MetaRequest::MoveReplica { catch_up_ms, .. }
            | MetaRequest::DrainNode { catch_up_ms, .. }
            | MetaRequest::AddNode { catch_up_ms, .. }
            | MetaRequest::RemoveNode { catch_up_ms, .. },
        ) => {
            *catch_up_ms = capped_ms(*catch_up_ms, CHANGE_TIMEOUT_MIN, MAX_CATCH_UP_TIMEOUT);
        }
        ClientRequest::SplitTable { timeout_ms, .. }
        | ClientRequest::Meta(MetaRequest::SplitTable { timeout_ms, .. }) => {
            *timeout_ms = capped_ms(*timeout_ms, SPLIT_TIMEOUT_MIN, MAX_SPLIT_TIMEOUT);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_zero_timeouts_are_brought_into_range() {
        let mut r = ClientRequest::ChangeReplicas {
            table: "t".into(),
            partition: 0,
            from: 1,
            to: siltdb_client::layout::NodeInfo {
                id: 2,
                addr: "127.0.0.1:1".into(),
            },
            timeout_ms: u64::MAX,
        };
        cap_request(&mut r);
        let ClientRequest::ChangeReplicas { timeout_ms, .. } = r else {
            unreachable!()
        };
        assert_eq!(timeout_ms, MAX_CHANGE_TIMEOUT.as_millis() as u64);

        let mut m = ClientRequest::Meta(MetaRequest::DrainNode {
            node: 3,
            catch_up_ms: 0,
        });
        cap_request(&mut m);
        let ClientRequest::Meta(MetaRequest::DrainNode { catch_up_ms, .. }) = m else {
            unreachable!()
        };
        assert_eq!(catch_up_ms, CHANGE_TIMEOUT_MIN.as_millis() as u64);
    }

    #[test]
    fn a_timeout_in_range_is_kept() {
        assert_eq!(
            capped_ms(5_000, Duration::from_secs(1), Duration::from_secs(10)),
            5_000
        );
    }
}
