//! The one table from request kind to the lowest role allowed to send it.
//!
//! Read-only: reads of data (get, scan, data-model reads), statistics, digests, the table
//! list, the catalog, hot-key reports and status queries. Read-write: writes of data (write,
//! data-model writes and read-modify-writes). Admin: everything else — tables, app envs,
//! membership, splits, bulk loads,
//! duplication (including the writes a source cluster ships), checkpoints, fault injection —
//! and all Raft traffic.

use crate::layout::{NodeInfo, TableLayout};
use crate::proto::ClientRequest;
use siltdb_client::auth::{Role, AUTH_FAILED};
use siltdb_client::backup::BackupRequest;
use siltdb_client::bulk_load::ReplicaBulkOp;
use siltdb_client::meta::MetaRequest;
use siltdb_client::pegasus::PegasusRequest;
use siltdb_client::pegasus::{AtomicKind, Expire, ScanRange};
use siltdb_client::split::SplitOp;
use siltdb_client::ServerError;

/// The lowest role that may send `req`. Exhaustive on purpose: a new request kind must be
/// placed here before it compiles.
pub fn required_role(req: &ClientRequest) -> Role {
    use ClientRequest as R;
    match req {
        R::Get { .. }
        | R::Scan { .. }
        | R::ListTables
        | R::Stats
        | R::Digest { .. }
        | R::Membership { .. }
        | R::QueryDuplication { .. }
        | R::QueryBulkLoad { .. }
        | R::HotKeys { .. } => Role::ReadOnly,
        R::Write { .. } => Role::ReadWrite,
        R::Pegasus { req, .. } => pegasus_role(req),
        R::Meta(m) => meta_role(m),
        R::CreateTable(_)
        | R::Checkpoint { .. }
        | R::Partition { .. }
        | R::Heal
        | R::UpdateTable(_)
        | R::ChangeReplicas { .. }
        | R::AddDuplication { .. }
        | R::RemoveDuplication { .. }
        | R::DuplicationWrite { .. }
        | R::StartBulkLoad { .. }
        | R::BulkLoadReplica { .. }
        | R::Backup(_)
        | R::SplitTable { .. }
        | R::SplitReplica { .. } => Role::Admin,
    }
}

fn pegasus_role(req: &PegasusRequest) -> Role {
    use PegasusRequest as P;
    match req {
        P::MultiGet { .. } | P::Scan { .. } | P::SortKeyCount { .. } | P::ScanPartition { .. } => {
            Role::ReadOnly
        }
        P::MultiSet { .. } | P::MultiDel { .. } | P::Atomic(_) => Role::ReadWrite,
    }
}

fn meta_role(req: &MetaRequest) -> Role {
    use MetaRequest as M;
    match req {
        M::Catalog => Role::ReadOnly,
        M::RegisterNode(_)
        | M::CreateTable { .. }
        | M::MoveReplica { .. }
        | M::DrainNode { .. }
        | M::AddNode { .. }
        | M::RemoveNode { .. }
        | M::ReconcileTables
        | M::AddDuplication { .. }
        | M::RemoveDuplication { .. }
        | M::SetEnv { .. }
        | M::DelEnv { .. }
        | M::SplitTable { .. } => Role::Admin,
    }
}

/// `None` when `role` may send `req`, else the refusal to answer with.
pub fn permission_error(req: &ClientRequest, role: Role) -> Option<ServerError> {
    let needed = required_role(req);
    (role < needed).then(|| {
        ServerError::PermissionDenied(format!(
            "{AUTH_FAILED}: permission denied: a {role} token may not send {} (needs {needed})",
            request_name(req)
        ))
    })
}

/// The variant name of a request (for messages; never its data, which may be secret).
pub fn request_name(req: &ClientRequest) -> &'static str {
    use ClientRequest as R;
    match req {
        R::Get { .. } => "Get",
        R::Write { .. } => "Write",
        R::Scan { .. } => "Scan",
        R::CreateTable(_) => "CreateTable",
        R::ListTables => "ListTables",
        R::Stats => "Stats",
        R::Digest { .. } => "Digest",
        R::Checkpoint { .. } => "Checkpoint",
        R::Partition { .. } => "Partition",
        R::Heal => "Heal",
        R::UpdateTable(_) => "UpdateTable",
        R::ChangeReplicas { .. } => "ChangeReplicas",
        R::Meta(_) => "Meta",
        R::AddDuplication { .. } => "AddDuplication",
        R::RemoveDuplication { .. } => "RemoveDuplication",
        R::QueryDuplication { .. } => "QueryDuplication",
        R::DuplicationWrite { .. } => "DuplicationWrite",
        R::StartBulkLoad { .. } => "StartBulkLoad",
        R::QueryBulkLoad { .. } => "QueryBulkLoad",
        R::BulkLoadReplica { .. } => "BulkLoadReplica",
        R::Pegasus { .. } => "Pegasus",
        R::Membership { .. } => "Membership",
        R::Backup(_) => "Backup",
        R::HotKeys { .. } => "HotKeys",
        R::SplitTable { .. } => "SplitTable",
        R::SplitReplica { .. } => "SplitReplica",
    }
}

/// One request of every kind (and of every meta and data-model kind) with the role it needs:
/// the cases of the role tests (the unit test checks the list is complete) and of the tests
/// through the binaries.
pub fn sample_requests() -> Vec<(ClientRequest, Role)> {
    use Role::{Admin, ReadOnly, ReadWrite};
    let t = || "t".to_string();
    let node = NodeInfo {
        id: 2,
        addr: "127.0.0.1:1".into(),
    };
    let layout = TableLayout::new("t", 1, 1, 1, vec![node.clone()]);
    let hk = || b"h".to_vec();
    let pg = |req: PegasusRequest| ClientRequest::Pegasus {
        table: t(),
        partition: 0,
        req,
    };
    use ClientRequest as R;
    use MetaRequest as M;
    use PegasusRequest as P;
    vec![
        (
            R::Get {
                table: t(),
                partition: 0,
                key: vec![1],
            },
            ReadOnly,
        ),
        (
            R::Write {
                table: t(),
                partition: 0,
                ops: vec![],
            },
            ReadWrite,
        ),
        (
            R::Scan {
                table: t(),
                partition: 0,
                start: vec![],
                end: None,
                limit: 1,
                partition_count: 0,
            },
            ReadOnly,
        ),
        (R::CreateTable(layout.clone()), Admin),
        (R::ListTables, ReadOnly),
        (R::Stats, ReadOnly),
        (
            R::Membership {
                table: t(),
                partition: 0,
            },
            ReadOnly,
        ),
        (
            R::Digest {
                table: t(),
                partition: 0,
            },
            ReadOnly,
        ),
        (R::Checkpoint { table: t() }, Admin),
        (R::Partition { peers: vec![2] }, Admin),
        (R::Heal, Admin),
        (R::UpdateTable(layout), Admin),
        (
            R::ChangeReplicas {
                table: t(),
                partition: 0,
                from: 1,
                to: node.clone(),
                timeout_ms: 1,
            },
            Admin,
        ),
        (R::Meta(M::RegisterNode(node)), Admin),
        (
            R::Meta(M::CreateTable {
                name: t(),
                partition_count: 1,
                replica_count: 1,
                nodes: vec![],
            }),
            Admin,
        ),
        (R::Meta(M::Catalog), ReadOnly),
        (
            R::Meta(M::MoveReplica {
                table: t(),
                partition: 0,
                from: 1,
                to: 2,
                catch_up_ms: 1,
            }),
            Admin,
        ),
        (
            R::Meta(M::DrainNode {
                node: 1,
                catch_up_ms: 1,
            }),
            Admin,
        ),
        (
            R::Meta(M::AddNode {
                node: 1,
                catch_up_ms: 1,
            }),
            Admin,
        ),
        (
            R::Meta(M::RemoveNode {
                node: 1,
                catch_up_ms: 1,
            }),
            Admin,
        ),
        (R::Meta(M::ReconcileTables), Admin),
        (
            R::Meta(M::AddDuplication {
                table: t(),
                remote_seeds: vec![],
                remote_table: t(),
                fail_mode: None,
            }),
            Admin,
        ),
        (
            R::Meta(M::RemoveDuplication {
                table: t(),
                dup_id: 1,
            }),
            Admin,
        ),
        (
            R::Meta(M::SetEnv {
                table: t(),
                key: "default_ttl".into(),
                value: "1".into(),
            }),
            Admin,
        ),
        (
            R::Meta(M::DelEnv {
                table: t(),
                key: "default_ttl".into(),
            }),
            Admin,
        ),
        (
            R::HotKeys {
                table: t(),
                kind: None,
            },
            ReadOnly,
        ),
        (
            R::AddDuplication {
                table: t(),
                dup_id: 1,
                remote_seeds: vec![],
                remote_table: t(),
                fail_mode: None,
            },
            Admin,
        ),
        (
            R::RemoveDuplication {
                table: t(),
                dup_id: 1,
            },
            Admin,
        ),
        (R::QueryDuplication { table: t() }, ReadOnly),
        (
            R::DuplicationWrite {
                table: t(),
                partition: 0,
                clear: true,
                ops: vec![],
                source: "s".into(),
                source_term: 1,
            },
            Admin,
        ),
        (
            R::StartBulkLoad {
                table: t(),
                source_dir: "/x".into(),
            },
            Admin,
        ),
        (R::QueryBulkLoad { table: t() }, ReadOnly),
        (
            R::Backup(BackupRequest::Prepare {
                table: t(),
                partition: 0,
            }),
            Admin,
        ),
        (
            R::BulkLoadReplica {
                table: t(),
                partition: 0,
                op: ReplicaBulkOp::State,
            },
            Admin,
        ),
        (
            pg(P::MultiGet {
                hash_key: hk(),
                sort_keys: vec![],
            }),
            ReadOnly,
        ),
        (
            pg(P::Scan {
                hash_key: hk(),
                range: ScanRange {
                    start: vec![],
                    stop: None,
                    start_inclusive: true,
                    stop_inclusive: false,
                    limit: 1,
                    reverse: false,
                },
            }),
            ReadOnly,
        ),
        (pg(P::SortKeyCount { hash_key: hk() }), ReadOnly),
        (
            pg(P::MultiSet {
                hash_key: hk(),
                kvs: vec![],
                expire_ms: 0,
            }),
            ReadWrite,
        ),
        (
            pg(P::MultiDel {
                hash_key: hk(),
                sort_keys: vec![],
            }),
            ReadWrite,
        ),
        (
            pg(P::Atomic(AtomicKind::Incr {
                hash_key: hk(),
                sort_key: vec![],
                delta: 1,
                expire: Expire::Keep,
            })),
            ReadWrite,
        ),
        (
            pg(P::ScanPartition {
                from: vec![],
                limit: 1,
                keys_only: true,
                partition_count: 0,
            }),
            ReadOnly,
        ),
        (
            R::SplitTable {
                table: t(),
                partitions: None,
                timeout_ms: 1,
            },
            Admin,
        ),
        (
            R::SplitReplica {
                table: t(),
                op: SplitOp::Status,
            },
            Admin,
        ),
        (
            R::Meta(M::SplitTable {
                table: t(),
                partitions: Some(2),
                timeout_ms: 1,
            }),
            Admin,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of `req`'s variant; exhaustive, so a new variant fails to compile here until
    /// [`sample_requests`] lists it.
    fn variant(req: &ClientRequest) -> usize {
        use ClientRequest as R;
        match req {
            R::Get { .. } => 0,
            R::Write { .. } => 1,
            R::Scan { .. } => 2,
            R::CreateTable(_) => 3,
            R::ListTables => 4,
            R::Stats => 5,
            R::Digest { .. } => 6,
            R::Checkpoint { .. } => 7,
            R::Partition { .. } => 8,
            R::Heal => 9,
            R::UpdateTable(_) => 10,
            R::ChangeReplicas { .. } => 11,
            R::Meta(_) => 12,
            R::AddDuplication { .. } => 13,
            R::RemoveDuplication { .. } => 14,
            R::QueryDuplication { .. } => 15,
            R::DuplicationWrite { .. } => 16,
            R::StartBulkLoad { .. } => 17,
            R::QueryBulkLoad { .. } => 18,
            R::BulkLoadReplica { .. } => 19,
            R::Pegasus { .. } => 20,
            R::Membership { .. } => 21,
            R::Backup(_) => 22,
            R::HotKeys { .. } => 23,
            R::SplitTable { .. } => 24,
            R::SplitReplica { .. } => 25,
        }
    }
    const VARIANTS: usize = 26;

    fn meta_variant(req: &MetaRequest) -> usize {
        use MetaRequest as M;
        match req {
            M::RegisterNode(_) => 0,
            M::CreateTable { .. } => 1,
            M::Catalog => 2,
            M::MoveReplica { .. } => 3,
            M::DrainNode { .. } => 4,
            M::AddNode { .. } => 5,
            M::RemoveNode { .. } => 6,
            M::ReconcileTables => 7,
            M::AddDuplication { .. } => 8,
            M::RemoveDuplication { .. } => 9,
            M::SetEnv { .. } => 10,
            M::DelEnv { .. } => 11,
            M::SplitTable { .. } => 12,
        }
    }
    const META_VARIANTS: usize = 13;

    fn pegasus_variant(req: &PegasusRequest) -> usize {
        use PegasusRequest as P;
        match req {
            P::MultiGet { .. } => 0,
            P::Scan { .. } => 1,
            P::SortKeyCount { .. } => 2,
            P::MultiSet { .. } => 3,
            P::MultiDel { .. } => 4,
            P::Atomic(_) => 5,
            P::ScanPartition { .. } => 6,
        }
    }
    const PEGASUS_VARIANTS: usize = 7;

    #[test]
    fn every_request_kind_has_its_role_and_lower_roles_are_refused() {
        let all = sample_requests();
        let mut seen = [false; VARIANTS];
        let mut meta_seen = [false; META_VARIANTS];
        let mut pg_seen = [false; PEGASUS_VARIANTS];
        for (req, needed) in &all {
            seen[variant(req)] = true;
            match req {
                ClientRequest::Meta(m) => meta_seen[meta_variant(m)] = true,
                ClientRequest::Pegasus { req, .. } => pg_seen[pegasus_variant(req)] = true,
                _ => {}
            }
            assert_eq!(required_role(req), *needed, "{req:?}");
            for role in Role::ALL {
                let refused = permission_error(req, role);
                assert_eq!(refused.is_some(), role < *needed, "{req:?} as {role}");
                if let Some(e) = refused {
                    let shown = e.to_string();
                    assert!(
                        shown.contains(crate::auth::AUTH_FAILED)
                            && shown.contains(request_name(req)),
                        "{shown}"
                    );
                }
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "a request kind is missing: {seen:?}"
        );
        assert!(
            meta_seen.iter().all(|s| *s),
            "a meta kind is missing: {meta_seen:?}"
        );
        assert!(
            pg_seen.iter().all(|s| *s),
            "a data-model kind is missing: {pg_seen:?}"
        );
        for (req, _) in &all {
            let shown = format!("{req:?}");
            assert!(shown.starts_with(request_name(req)), "{shown}");
        }
    }
}
