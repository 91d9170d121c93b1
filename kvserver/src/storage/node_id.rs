//! The node ID a copy reports before it belongs to a group (copy 0 of a shard, until the
//! operator forms the group with `POST /v1/admin/raft/init`): a random non-zero `u64`, born on
//! the volume at the first ask and kept synced in the store's meta keyspace, so the ID the
//! operator reads is the one the copy joins with. A copy whose group is known from its flags
//! takes its ID from kvraft's identity instead.

use fjall::PersistMode;
use rand::TryRngCore;
use rand::rngs::OsRng;

use super::Store;
use super::error::StorageError;

/// Key in the meta keyspace.
const META_NODE_ID: &[u8] = b"raft_node_id_before_group";

impl Store {
    /// This volume's node ID before any group, created (and synced) on the first call. Blocking.
    /// Callers serialize the first calls (`raft_node.rs` holds its lock).
    pub fn node_id_before_group(&self) -> Result<u64, StorageError> {
        let engine = self.slot.get()?;
        if let Some(raw) = engine.meta.get(META_NODE_ID)? {
            let bytes = <[u8; 8]>::try_from(&*raw)
                .map_err(|_| StorageError::Corrupt("meta: raft_node_id_before_group".into()))?;
            return Ok(u64::from_be_bytes(bytes));
        }
        let id = loop {
            let id = OsRng.try_next_u64().map_err(|e| {
                StorageError::Engine(format!("no OS randomness for a node id: {e}"))
            })?;
            if id != 0 {
                break id;
            }
        };
        self.guard_write(engine.meta.insert(META_NODE_ID, id.to_be_bytes()))?;
        self.guard_write(engine.db.persist(PersistMode::SyncAll))?;
        tracing::info!(node_id = id, "created this volume's raft node id");
        Ok(id)
    }

    /// The database the records live in, for a group's storage beside them.
    pub fn database(&self) -> Result<fjall::Database, StorageError> {
        Ok(self.slot.get()?.db.clone())
    }
}
