//! Cleanup after a migration: the records to purge (every tombstone, and every live key this
//! shard no longer owns), computed before anything is written; the direct path and a raft
//! entry (`raft_target.rs`) purge by the same rules.

use fjall::{Keyspace, OwnedWriteBatch as WriteBatch};
use kvproto::Key;
use kvproto::wire::CleanupReport;

use super::engine::Engine;
use super::error::StorageError;
use super::scan::records;

pub struct Purge {
    pub report: CleanupReport,
    /// What is purged: keys and sizes only, not values, so a cleanup that drops most of a large
    /// shard holds no more than its keys.
    pub dropped: Vec<Dropped>,
}

/// One purged record, as the counters need it.
pub struct Dropped {
    pub key: Key,
    /// A value, not a tombstone.
    pub live: bool,
    pub value_len: u64,
}

impl Purge {
    /// Scans the records keyspace `kv`. Blocking.
    pub fn new(kv: &Keyspace, owned: impl Fn(&Key) -> bool) -> Result<Purge, StorageError> {
        let mut report = CleanupReport::default();
        let mut dropped = Vec::new();
        for stored in records(kv.iter()) {
            let (key, record) = stored?.into_parts()?;
            if record.is_tombstone() {
                report.removed_tombstones += 1;
            } else if !owned(&key) {
                report.removed_keys += 1;
            } else {
                continue;
            }
            dropped.push(Dropped {
                live: !record.is_tombstone(),
                value_len: record.value_len(),
                key,
            });
        }
        Ok(Purge { report, dropped })
    }

    /// The engine batch that purges, keeping the clock's floor: purged records take their
    /// versions with them.
    pub fn batch(&self, engine: &Engine, clock_floor: u64) -> WriteBatch {
        let mut batch = engine.db.batch();
        for dropped in &self.dropped {
            batch.remove(&engine.kv, dropped.key.as_bytes());
        }
        engine.keep_clock_floor(&mut batch, clock_floor);
        batch
    }
}
