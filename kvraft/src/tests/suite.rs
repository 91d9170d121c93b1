//! openraft's own storage test suite (`openraft::testing::log::Suite`, 0.10.0-alpha.37) on
//! the fjall log and state machine: every case gets a fresh database in a temporary dir.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::target::TestTarget;
use super::{open_db, open_storage};
use crate::log_store::LogStore;
use crate::state_machine::StateMachine;
use crate::types::ShardRaft;

struct Builder;

impl StoreBuilder<ShardRaft, LogStore, StateMachine<TestTarget>, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachine<TestTarget>), StorageError<ShardRaft>> {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let db = open_db(dir.path());
        let storage = open_storage(&db, Arc::new(TestTarget::default()));
        Ok((dir, storage.log, storage.sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(Builder)
        .await
        .expect("openraft's storage suite");
}
