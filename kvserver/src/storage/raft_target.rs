//! The store as a replicated shard's state machine: `kvraft::ApplyTarget` on [`Store`].
//!
//! kvraft decides the order, the versions, the delete mode and the misdirection fence; this
//! file applies each committed command by the same rules as the direct write path (the pure
//! decisions of `write.rs`, the import `Plan`, the cleanup `Purge`), staging the changes in the
//! entry's batch. What the direct path does to the cache, the counters and the clock right after
//! its write happens here once the entry's batch is committed ([`Effects`]), under the key's
//! stripe lock, so a concurrent read can never put an older record back into the cache.

use bytes::Bytes;
use fjall::Keyspace;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use kvproto::{Key, Topology};
use kvraft::{ApplyError, ApplyTarget, Tx};

use super::Store;
use super::cleanup::Purge;
use super::counters::Totals;
use super::error::StorageError;
use super::import::Plan;
use super::record::{Record, decode_stored};
use super::scan::records as stored_records;
use super::write::{self, DeleteMode, Precondition, WriteOutcome};

/// What an applied command leaves to do once its entry's batch is committed.
pub struct Effects(Change);

enum Change {
    /// Nothing was stored (a refused precondition, a delete of nothing).
    Nothing,
    /// One key went from `before` to `after` (`None`: removed).
    Key {
        key: Key,
        before: Option<Record>,
        after: Option<Record>,
    },
    Imported {
        plan: Plan,
        mode: ImportMode,
    },
    Cleaned(Purge),
}

impl From<StorageError> for ApplyError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt(key) => ApplyError::Corrupt {
                key,
                detail: "not a record this server wrote".to_owned(),
            },
            other => ApplyError::Other(other.to_string()),
        }
    }
}

impl Store {
    /// The key's record as committed before the entry being applied: the cache, which holds
    /// committed records only, else the entry's view of the records.
    fn committed_record(&self, tx: &Tx<'_>, key: &Key) -> Result<Option<Record>, ApplyError> {
        if let Some(hit) = self.cache.get(key) {
            return Ok(Some(hit));
        }
        match tx.get(key.as_bytes())? {
            Some(raw) => Ok(Some(decode_stored(key, raw)?)),
            None => Ok(None),
        }
    }

    /// Stages `key`'s change from `before` to `after` (`None`: removed).
    fn stage_key(
        tx: &mut Tx<'_>,
        key: &Key,
        before: Option<Record>,
        after: Option<Record>,
    ) -> Effects {
        match &after {
            Some(record) => tx.insert(key.as_bytes(), record.encode()),
            None => tx.remove(key.as_bytes()),
        }
        Effects(Change::Key {
            key: key.clone(),
            before,
            after,
        })
    }

    /// Whether `records` is the keyspace the store serves now.
    fn serves(&self, records: &Keyspace) -> bool {
        self.slot
            .get()
            .is_ok_and(|engine| engine.kv.name() == records.name())
    }
}

impl ApplyTarget for Store {
    type Effects = Effects;

    fn put(
        &self,
        tx: &mut Tx<'_>,
        key: &Key,
        value: &Bytes,
        precondition: Precondition,
        remote: Option<u64>,
        version: u64,
    ) -> Result<(WriteOutcome, Effects), ApplyError> {
        let before = self.committed_record(tx, key)?;
        match write::record_to_store(
            before.as_ref(),
            Some(value.clone()),
            precondition,
            remote,
            || version,
        ) {
            Ok(after) => {
                let outcome = WriteOutcome::Written(after.version);
                Ok((outcome, Self::stage_key(tx, key, before, Some(after))))
            }
            Err(answer) => Ok((answer, Effects(Change::Nothing))),
        }
    }

    fn delete(
        &self,
        tx: &mut Tx<'_>,
        key: &Key,
        precondition: Precondition,
        remote: Option<u64>,
        version: u64,
        mode: DeleteMode,
    ) -> Result<(WriteOutcome, Effects), ApplyError> {
        let before = self.committed_record(tx, key)?;
        let decided = match mode {
            // A key only the previous owner holds is deleted too: its tombstone stops the
            // read-through (the direct path's rule).
            DeleteMode::Tombstone => {
                write::record_to_store(before.as_ref(), None, precondition, remote, || version)
                    .map(|tombstone| (tombstone.version, Some(tombstone)))
            }
            // As on the direct path, the answer carries the version removed.
            DeleteMode::Remove => {
                write::version_to_remove(before.as_ref(), precondition).map(|v| (v, None))
            }
        };
        match decided {
            Ok((answered, after)) => Ok((
                WriteOutcome::Written(answered),
                Self::stage_key(tx, key, before, after),
            )),
            Err(answer) => Ok((answer, Effects(Change::Nothing))),
        }
    }

    fn import(
        &self,
        tx: &mut Tx<'_>,
        mode: ImportMode,
        records: &[BulkRecord],
    ) -> Result<(ImportReport, Effects), ApplyError> {
        // As on the direct path, from the stored records (what earlier entries committed).
        let kv = tx.records().clone();
        let plan = Plan::new(records.iter().cloned(), mode, |key| {
            kv.get(key.as_bytes())?
                .map(|raw| decode_stored(key, raw))
                .transpose()
        })?;
        for (key, _, after) in plan.written() {
            tx.insert(key.as_bytes(), after.encode());
        }
        let report = plan.report;
        Ok((report, Effects(Change::Imported { plan, mode })))
    }

    fn cleanup(
        &self,
        tx: &mut Tx<'_>,
        owned: &dyn Fn(&Key) -> bool,
    ) -> Result<(CleanupReport, Effects), ApplyError> {
        let purge = Purge::new(tx.records(), owned)?;
        for dropped in &purge.dropped {
            tx.remove(dropped.key.as_bytes());
        }
        let report = purge.report;
        Ok((report, Effects(Change::Cleaned(purge))))
    }

    fn version_floor(&self, records: &Keyspace) -> Result<u64, ApplyError> {
        if self.serves(records) {
            // Above every stored version and the floor kept across cleanups.
            return Ok(self.clock.last());
        }
        let mut floor = 0;
        for stored in stored_records(records.iter()) {
            floor = floor.max(stored?.record()?.version);
        }
        Ok(floor)
    }

    fn committed(&self, effects: Effects) {
        // The batch fsync of `--sync batch` covers applied entries too.
        self.durability.mark_dirty();
        match effects.0 {
            Change::Nothing => {}
            Change::Key { key, before, after } => {
                let _stripe = self.stripe(&key).lock();
                match &after {
                    Some(record) => {
                        self.cache.put(&key, record);
                        self.clock.observe(record.version);
                    }
                    None => self.cache.forget(&key),
                }
                self.counters.account(before.as_ref(), after.as_ref());
            }
            Change::Imported { plan, mode } => {
                for (key, before, after) in plan.written() {
                    // As on the direct path: an if-absent import writes only keys with no
                    // record here, which the cache (stored records only) cannot hold.
                    if mode == ImportMode::Overwrite {
                        let _stripe = self.stripe(key).lock();
                        self.cache.put(key, after);
                    }
                    self.counters.account(before, Some(after));
                }
                self.clock.observe(plan.max_version);
            }
            Change::Cleaned(purge) => {
                for dropped in &purge.dropped {
                    let _stripe = self.stripe(&dropped.key).lock();
                    self.cache.forget(&dropped.key);
                    self.counters.removed(dropped.live, dropped.value_len);
                }
            }
        }
    }

    fn topology_applied(&self, topology: Option<&Topology>) {
        // Handed on through a watch: the server adopts it on its own task (it writes a file).
        self.applied_topology
            .send_replace(topology.map(|t| std::sync::Arc::new(t.clone())));
    }

    fn reset(&self, records: &Keyspace) {
        self.gate.exclusive(|| {
            self.cache.clear();
            if self.serves(records) {
                // Opening the group on the records already served: the counters hold.
                return;
            }
            let rescanned = self
                .slot
                .serve_records(records.clone())
                .and_then(|engine| Totals::scan(&engine.kv));
            match rescanned {
                Ok(totals) => {
                    self.counters.reset(&totals);
                    self.clock.observe(totals.max_version);
                    tracing::info!(
                        keyspace = &**records.name(),
                        keys = totals.keys,
                        "serving the records of an installed snapshot"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot count the records of an installed snapshot");
                }
            }
        });
    }
}
