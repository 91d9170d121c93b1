//! Bulk import: the effect of an import computed before anything is written, so the store
//! applies it as one atomic engine batch (the direct path) or one raft entry's batch
//! (`raft_target.rs`), by the same rules. In no mode does a key's version go backwards: a
//! record replaces what a key holds only with a higher version.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use fjall::OwnedWriteBatch as WriteBatch;
use kvproto::Key;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{ImportMode, ImportReport};

use super::engine::Engine;
use super::error::StorageError;
use super::record::Record;

/// An import's effect: per key, its record before and the one it ends with.
pub struct Plan {
    pub report: ImportReport,
    /// The highest version among the records, applied or skipped: the clock moves past it.
    pub max_version: u64,
    touched: HashMap<Key, (Option<Record>, Option<Record>)>,
}

impl Plan {
    /// As if applied one by one: `IfAbsent` skips keys that hold a value or a tombstone here (or
    /// got one earlier in the batch); `Overwrite` replaces a key's record only with a higher
    /// version (an older or equal copy is skipped). One hash map: imports run on the copy's hot
    /// path. `stored` reads a key's record as it is before the import.
    pub fn new(
        records: impl ExactSizeIterator<Item = BulkRecord>,
        mode: ImportMode,
        mut stored: impl FnMut(&Key) -> Result<Option<Record>, StorageError>,
    ) -> Result<Plan, StorageError> {
        let mut report = ImportReport::default();
        let mut max_version = 0;
        let mut touched: HashMap<Key, (Option<Record>, Option<Record>)> =
            HashMap::with_capacity(records.len());
        for rec in records {
            max_version = max_version.max(rec.version);
            let (before, after) = match touched.entry(rec.key) {
                Entry::Occupied(slot) => slot.into_mut(),
                Entry::Vacant(slot) => {
                    let before = stored(slot.key())?;
                    slot.insert((before, None))
                }
            };
            let held = after.as_ref().or(before.as_ref());
            let skip = match mode {
                ImportMode::IfAbsent => held.is_some(),
                ImportMode::Overwrite => held.is_some_and(|h| h.version >= rec.version),
            };
            if skip {
                report.skipped += 1;
                continue;
            }
            *after = Some(Record {
                version: rec.version,
                value: rec.value,
            });
            report.applied += 1;
        }
        Ok(Plan {
            report,
            max_version,
            touched,
        })
    }

    /// The engine batch that applies the plan.
    pub fn batch(&self, engine: &Engine) -> WriteBatch {
        let mut batch = engine.db.batch();
        for (key, _, after) in self.written() {
            batch.insert(&engine.kv, key.as_bytes(), after.encode());
        }
        batch
    }

    /// Every key the plan writes: its record before and after.
    pub fn written(&self) -> impl Iterator<Item = (&Key, Option<&Record>, &Record)> {
        self.touched
            .iter()
            .filter_map(|(key, (before, after))| Some((key, before.as_ref(), after.as_ref()?)))
    }
}
