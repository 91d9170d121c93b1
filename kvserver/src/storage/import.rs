//! Bulk import: the effect of an import computed before anything is written, so the store
//! applies it as one atomic engine batch.

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
    touched: HashMap<Key, (Option<Record>, Option<Record>)>,
}

impl Plan {
    /// Later records for the same key win, as if applied one by one; `IfAbsent` skips keys that
    /// hold a value or a tombstone here. One hash map: imports run on the copy's hot path.
    pub fn new(
        engine: &Engine,
        records: Vec<BulkRecord>,
        mode: ImportMode,
    ) -> Result<Plan, StorageError> {
        let mut report = ImportReport::default();
        let mut touched: HashMap<Key, (Option<Record>, Option<Record>)> =
            HashMap::with_capacity(records.len());
        for rec in records {
            let (before, after) = match touched.entry(rec.key) {
                Entry::Occupied(slot) => slot.into_mut(),
                Entry::Vacant(slot) => {
                    let stored = engine.record(slot.key())?;
                    slot.insert((stored, None))
                }
            };
            if mode == ImportMode::IfAbsent && (before.is_some() || after.is_some()) {
                report.skipped += 1;
                continue;
            }
            *after = Some(Record {
                version: rec.version,
                value: rec.value,
            });
            report.applied += 1;
        }
        Ok(Plan { report, touched })
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
