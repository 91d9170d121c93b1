//! The small apply interface: how the state machine hands a committed command to the store
//! that owns the records (kvserver's storage in phase 4, a test store here).
//!
//! The state machine owns the database, the order and the bookkeeping (which entry is applied,
//! the version floor, the topology, the membership); the target owns the record format and
//! the rules of one write, import or cleanup. Every call stages its changes in the [`Tx`] of
//! one entry, which the state machine commits in one batch together with `applied`, so replay
//! after a crash finds either all of an entry or none of it. Calls come in log order, one at a
//! time, and each sees what the previous entries committed.

use bytes::Bytes;
use fjall::{Keyspace, OwnedWriteBatch, Slice};
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use kvproto::{Key, Topology};

use crate::command::{DeleteMode, Precondition, WriteOutcome};
use crate::error::ApplyError;

/// The changes of one entry, staged against the current records keyspace.
pub struct Tx<'a> {
    pub(crate) batch: &'a mut OwnedWriteBatch,
    pub(crate) records: &'a Keyspace,
}

impl Tx<'_> {
    /// The key's stored bytes as committed before this entry.
    pub fn get(&self, key: &[u8]) -> Result<Option<Slice>, ApplyError> {
        Ok(self.records.get(key)?)
    }

    pub fn insert(&mut self, key: &[u8], value: impl Into<Slice>) {
        self.batch.insert(self.records, key, value);
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.batch.remove(self.records, key);
    }

    /// The records keyspace, to scan (a cleanup); reads see what was committed before this entry.
    pub fn records(&self) -> &Keyspace {
        self.records
    }
}

/// What a store implements to be a replicated shard's state machine.
pub trait ApplyTarget: Send + Sync + 'static {
    /// What a staged change leaves to do once its batch is committed (e.g. cache updates).
    type Effects: Send;

    /// Writes `value` with `version` (decided by the state machine) if `precondition` holds.
    /// `remote` is the previous owner's live version: the key's live version when nothing at
    /// all (no tombstone either) is stored here.
    fn put(
        &self,
        tx: &mut Tx<'_>,
        key: &Key,
        value: &Bytes,
        precondition: Precondition,
        remote: Option<u64>,
        version: u64,
    ) -> Result<(WriteOutcome, Self::Effects), ApplyError>;

    /// Deletes the key with `version` if `precondition` holds and a live value exists (here,
    /// or by `remote` as for [`Self::put`]: then a tombstone records the delete).
    fn delete(
        &self,
        tx: &mut Tx<'_>,
        key: &Key,
        precondition: Precondition,
        remote: Option<u64>,
        version: u64,
        mode: DeleteMode,
    ) -> Result<(WriteOutcome, Self::Effects), ApplyError>;

    /// Imports a batch under `mode` (versions come with the records).
    fn import(
        &self,
        tx: &mut Tx<'_>,
        mode: ImportMode,
        records: &[BulkRecord],
    ) -> Result<(ImportReport, Self::Effects), ApplyError>;

    /// Drops every record whose key `owned` refuses.
    fn cleanup(
        &self,
        tx: &mut Tx<'_>,
        owned: &dyn Fn(&Key) -> bool,
    ) -> Result<(CleanupReport, Self::Effects), ApplyError>;

    /// The highest version the records hold or were ever given (kvserver's clock floor). Asked
    /// once, when a group starts on a volume without a stored version floor, so a group made
    /// from an existing store goes on above every version it already handed out.
    fn version_floor(&self, records: &Keyspace) -> Result<u64, ApplyError>;

    /// Called after the entry's batch is committed, with what its staging returned.
    fn committed(&self, effects: Self::Effects);

    /// The records were replaced wholesale (a snapshot was installed): they now live in
    /// `records`; drop caches and counters derived from the old ones.
    fn reset(&self, records: &Keyspace);

    /// The applied topology, after the state machine opened, after an entry that changed it
    /// was committed, and after a snapshot install (so a server routes by the map its group
    /// applied). Called on the state machine's task: hand it on, do not block.
    fn topology_applied(&self, topology: Option<&Topology>) {
        let _ = topology;
    }
}
