//! The openraft type configuration (mapping §3).

use crate::checkpoint::CheckpointHandle;
use crate::mutation::{Mutation, MutationResp};

openraft::declare_raft_types!(
    /// siltdb-replica's openraft types: decree = log index, ballot = term, mutation = entry.
    pub TypeConfig:
        D = Mutation,
        R = MutationResp,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = CheckpointHandle,
        AsyncRuntime = openraft::TokioRuntime,
);
