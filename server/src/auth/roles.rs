//! The one table from request kind to the lowest role allowed to send it.
//!
//! Read-only: reads of data (get, scan, data-model reads), statistics, digests, the table
//! list, the catalog and status queries. Read-write: writes of data (write, data-model writes
//! and read-modify-writes). Admin: everything else — tables, membership, bulk loads,
//! duplication (including the writes a source cluster ships), checkpoints, fault injection —
//! and all Raft traffic.

use crate::proto::ClientRequest;
use siltdb_client::auth::Role;
use siltdb_client::meta::MetaRequest;
use siltdb_client::pegasus::PegasusRequest;
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
        | R::QueryDuplication { .. }
        | R::QueryBulkLoad { .. } => Role::ReadOnly,
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
        | R::BulkLoadReplica { .. } => Role::Admin,
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
        | M::RemoveDuplication { .. } => Role::Admin,
    }
}

/// `None` when `role` may send `req`, else the refusal to answer with.
pub fn permission_error(req: &ClientRequest, role: Role) -> Option<ServerError> {
    let needed = required_role(req);
    (role < needed).then(|| {
        ServerError::PermissionDenied(format!(
            "a {role} token may not send {} (needs {needed})",
            request_name(req)
        ))
    })
}

/// The variant name of a request (for messages; never its data, which may be secret).
pub fn request_name(req: &ClientRequest) -> String {
    let shown = format!("{req:?}");
    let end = shown
        .find(|c: char| !c.is_alphanumeric() && c != '_')
        .unwrap_or(shown.len());
    shown[..end].to_string()
}
