//! The `raft_meta` keyspace: the group's small durable facts under fixed names, JSON-encoded
//! (they are tiny and read once at open), next to the log and the records in one database.

use fjall::{Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;

/// Keyspace names of the group's storage.
pub(crate) const META_KEYSPACE: &str = "raft_meta";
pub(crate) const LOG_KEYSPACE: &str = "raft_log";

/// The names in `raft_meta`.
pub(crate) mod name {
    pub const IDENTITY: &str = "identity";
    pub const VOTE: &str = "vote";
    pub const COMMITTED: &str = "committed";
    pub const LAST_PURGED: &str = "last_purged";
    pub const APPLIED: &str = "applied";
    pub const MEMBERSHIP: &str = "membership";
    pub const VERSION_FLOOR: &str = "version_floor";
    pub const TOPOLOGY: &str = "topology";
    pub const RECORDS_GEN: &str = "records_gen";
    /// The meta of the last snapshot built or installed: a snapshot exists to send.
    pub const SNAPSHOT: &str = "snapshot";
    pub const BOOT: &str = "boot";
}

/// Typed access to `raft_meta`.
#[derive(Clone)]
pub(crate) struct Meta {
    pub db: fjall::Database,
    pub ks: Keyspace,
}

impl Meta {
    pub fn open(db: &fjall::Database) -> Result<Meta, StorageError> {
        Ok(Meta {
            db: db.clone(),
            ks: db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?,
        })
    }

    pub fn get<T: DeserializeOwned>(&self, name: &'static str) -> Result<Option<T>, StorageError> {
        match self.ks.get(name)? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StorageError::corrupt(name, e)),
        }
    }

    pub fn put<T: Serialize>(
        &self,
        batch: &mut OwnedWriteBatch,
        name: &'static str,
        value: &T,
    ) -> Result<(), StorageError> {
        let raw = serde_json::to_vec(value).map_err(|e| StorageError::corrupt(name, e))?;
        batch.insert(&self.ks, name, raw);
        Ok(())
    }

    /// Writes one fact alone and syncs it to disk (identity, boot marker).
    pub fn put_synced<T: Serialize>(
        &self,
        name: &'static str,
        value: &T,
    ) -> Result<(), StorageError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        self.put(&mut batch, name, value)?;
        batch.commit()?;
        Ok(())
    }

    /// Writes `Some` value, removes the name for `None` (read back as absent).
    pub fn put_opt<T: Serialize>(
        &self,
        batch: &mut OwnedWriteBatch,
        name: &'static str,
        value: Option<&T>,
    ) -> Result<(), StorageError> {
        match value {
            Some(v) => self.put(batch, name, v),
            None => {
                self.remove(batch, name);
                Ok(())
            }
        }
    }

    pub fn remove(&self, batch: &mut OwnedWriteBatch, name: &'static str) {
        batch.remove(&self.ks, name);
    }
}
