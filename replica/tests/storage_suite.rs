//! openraft's own storage test suite against the plog + engine adapter (mapping §12.12).

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use siltdb_replica::plog::{Plog, PlogOptions};
use siltdb_replica::raft::TypeConfig;
use siltdb_replica::state_machine::{EngineStateMachine, StateMachineOptions};
use std::sync::Arc;

struct Builder;

impl StoreBuilder<TypeConfig, Plog, EngineStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, Plog, EngineStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = StateMachineOptions::default();
        let fs = Arc::clone(&opts.db.fs);
        let (sm, durable) =
            EngineStateMachine::open(dir.path(), opts).map_err(|e| e.to_storage_read())?;
        let plog = Plog::open(dir.path().join("plog"), fs, PlogOptions::default(), durable)
            .map_err(|e| e.to_storage_read())?;
        Ok((dir, plog, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("storage suite");
}
