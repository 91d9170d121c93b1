//! The group a copy without raft flags (copy 0) was given by `POST /v1/admin/raft/init`, with
//! its own member entry, kept synced in the store's meta keyspace: after a restart this is how
//! it knows to start its group again, as the same member. Also the applied topology a running
//! group publishes (`kvraft::ApplyTarget::topology_applied`), for the server to route by.

use std::sync::Arc;

use fjall::PersistMode;
use kvproto::Topology;
use kvproto::raft::{GroupId, Member};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Store;
use super::error::StorageError;

/// Key in the meta keyspace.
const META_JOINED_GROUP: &[u8] = b"raft_joined_group";

/// The group this volume joined at init, and this copy as its group knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedGroup {
    pub group: GroupId,
    pub member: Member,
}

impl Store {
    /// The group an init gave this volume, if any. Blocking.
    pub fn joined_group(&self) -> Result<Option<JoinedGroup>, StorageError> {
        let engine = self.slot.get()?;
        match engine.meta.get(META_JOINED_GROUP)? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StorageError::Corrupt(format!("meta: raft_joined_group: {e}"))),
        }
    }

    /// Keeps `joined` (synced) so a restart starts the group again. Blocking.
    pub fn persist_joined_group(&self, joined: &JoinedGroup) -> Result<(), StorageError> {
        let engine = self.slot.get()?;
        let raw = serde_json::to_vec(joined)
            .map_err(|e| StorageError::Corrupt(format!("meta: raft_joined_group: {e}")))?;
        self.guard_write(engine.meta.insert(META_JOINED_GROUP, raw))?;
        self.guard_write(engine.db.persist(PersistMode::SyncAll))?;
        Ok(())
    }

    /// The topology the running group applied last (`None` before it applied any).
    pub fn applied_topology(&self) -> watch::Receiver<Option<Arc<Topology>>> {
        self.applied_topology.subscribe()
    }

    /// The wall-clock stamp a leader puts into what it proposes (`at_micros`): this server's
    /// hybrid clock, above every version it applied or handed out.
    pub fn version_stamp(&self) -> u64 {
        self.clock.next()
    }
}
