//! The fjall database behind a slot that can be emptied and refilled.
//!
//! The records live in the `kv` keyspace; a replicated shard's snapshot install moves them to
//! another generation of it (`kv.<g>`, kvraft's), which the slot then serves, reopens included.
//!
//! fjall poisons itself after a failed journal write (a full disk, say) and then refuses every
//! write until it is reopened. Reads keep working on the poisoned instance, so the store keeps it
//! until the disk has room again, and only then swaps in a freshly opened one (see `poison.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch as WriteBatch};
use kvproto::Key;
use parking_lot::{Mutex, RwLock};

use super::error::StorageError;
use super::journal_check;
use super::record::{Record, decode_stored};

const MEMTABLE_BYTES: u64 = 8 << 20;
/// The records keyspace of a store that never installed a raft snapshot (kvraft's generation 0).
const RECORDS: &str = kvraft::RECORDS_KEYSPACE;
/// Key in the meta keyspace: a version floor that survives purging every record.
const META_CLOCK_FLOOR: &[u8] = b"clock_floor";

/// An open database with the keyspaces the server uses.
pub struct Engine {
    pub db: Database,
    /// Key → `Record` (see `record.rs`).
    pub kv: Keyspace,
    /// Server bookkeeping (the version floor kept across purges).
    pub meta: Keyspace,
}

impl Engine {
    /// Opens the database under `dir` once its journals pass the verifier (which may drop a
    /// torn tail; see `journal_check.rs`): fjall itself would truncate a damaged journal.
    /// `records` names the records keyspace served (`kv` unless a snapshot moved them).
    pub fn open(dir: &Path, records: &str) -> Result<Engine, StorageError> {
        let report = journal_check::verify(dir)?;
        tracing::info!(
            journals = report.journals,
            batches = report.batches,
            torn_tails_dropped = report.repaired.len(),
            "journals verified"
        );
        // The store flushes the journal itself before acknowledging (group commit), so many
        // concurrent writes share one write(2) instead of taking one each under fjall's lock.
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .open()
            .map_err(StorageError::from)?;
        // A smaller memtable than fjall's 64 MiB default: inserts search a skiplist holding
        // every version since the last flush, and overwrite-heavy loads (the book's) pay for its
        // depth on every write. Flushes of 8 MiB are cheap. (Fixed when the keyspace is created.)
        //
        // The keyspaces need the flag too: the database's covers write batches only, and a
        // keyspace without it has fjall write(2) its journal under the journal lock on every
        // single insert and remove, one syscall per request. Like the memtable size, the flag
        // is fixed when a keyspace is created: a store created before keeps fjall's flush (as
        // correct, only slower).
        let kv = db
            .keyspace(records, || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(MEMTABLE_BYTES)
                    .manual_journal_persist(true)
            })
            .map_err(StorageError::from)?;
        let meta = db
            .keyspace("meta", || {
                KeyspaceCreateOptions::default().manual_journal_persist(true)
            })
            .map_err(StorageError::from)?;
        Ok(Engine { db, kv, meta })
    }

    /// The same database serving the records of `kv` instead.
    fn serving(&self, kv: Keyspace) -> Engine {
        Engine {
            db: self.db.clone(),
            kv,
            meta: self.meta.clone(),
        }
    }

    /// The key's stored record, tombstones included.
    pub fn record(&self, key: &Key) -> Result<Option<Record>, StorageError> {
        match self.kv.get(key.as_bytes())? {
            Some(raw) => decode_stored(key, raw).map(Some),
            None => Ok(None),
        }
    }

    /// The version floor kept by the last cleanup (0 if none).
    pub fn clock_floor(&self) -> Result<u64, StorageError> {
        Ok(self
            .meta
            .get(META_CLOCK_FLOOR)?
            .and_then(|v| <[u8; 8]>::try_from(&*v).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Adds keeping `floor` as the version floor to `batch`.
    pub fn keep_clock_floor(&self, batch: &mut WriteBatch, floor: u64) {
        batch.insert(&self.meta, META_CLOCK_FLOOR, floor.to_be_bytes().to_vec());
    }

    /// Waits, without blocking a runtime thread, while the engine's flushes and compactions are
    /// behind. fjall throttles a writer that finds 4 sealed memtables or 20 level-0 runs queued
    /// by sleeping in the inserting thread (up to 100 ms at a time), which would stall every
    /// request on that runtime worker; waiting here first, asynchronously, keeps reads flowing.
    /// Bounded: after ~10 s the write goes ahead and fjall throttles it itself.
    pub async fn wait_for_flushes(&self) {
        for _ in 0..2000 {
            if self.kv.sealed_memtable_count() < 3 && self.kv.l0_table_count() < 16 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Holds the current engine; empty only while a reopen is in progress or has failed.
pub struct Slot {
    dir: PathBuf,
    current: RwLock<Option<Arc<Engine>>>,
    /// The records keyspace a reopen serves.
    records: Mutex<String>,
}

impl Slot {
    pub fn open(dir: PathBuf) -> Result<Slot, StorageError> {
        let engine = Engine::open(&dir, RECORDS)?;
        Ok(Slot {
            dir,
            current: RwLock::new(Some(Arc::new(engine))),
            records: Mutex::new(RECORDS.to_owned()),
        })
    }

    /// Serves the records of `kv` from now on (a snapshot moved them there); returns the engine
    /// serving them.
    pub fn serve_records(&self, kv: Keyspace) -> Result<Arc<Engine>, StorageError> {
        let mut slot = self.current.write();
        let current = slot
            .as_ref()
            .ok_or_else(|| StorageError::Unavailable("the storage engine is reopening".into()))?;
        let engine = Arc::new(current.serving(kv));
        *self.records.lock() = engine.kv.name().to_string();
        *slot = Some(engine.clone());
        Ok(engine)
    }

    pub fn get(&self) -> Result<Arc<Engine>, StorageError> {
        self.current
            .read()
            .clone()
            .ok_or_else(|| StorageError::Unavailable("the storage engine is reopening".into()))
    }

    /// Closes the current engine and opens it again (the verifier drops a torn tail).
    /// Blocking: call from a blocking thread.
    pub fn reopen(&self) -> Result<(), StorageError> {
        let mut slot = self.current.write();
        if let Some(old) = slot.take() {
            // Readers hold clones for a few microseconds; an export may hold one longer. fjall
            // keeps its lock file until the last handle is gone, so wait for them, boundedly.
            for _ in 0..2000 {
                if Arc::strong_count(&old) == 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let records = self.records.lock().clone();
        let engine = Engine::open(&self.dir, &records)?;
        *slot = Some(Arc::new(engine));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `needle` is in the store's journal files on disk (they are preallocated, so their
    /// length says nothing).
    fn journal_holds(dir: &Path, needle: &[u8]) -> bool {
        journal_check::journal_ids(dir).unwrap().iter().any(|id| {
            let bytes = std::fs::read(dir.join(format!("{id}.jnl"))).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    }

    #[test]
    fn a_single_insert_waits_in_the_journal_buffer_for_the_stores_flush() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), RECORDS).unwrap();
        engine.kv.insert("the-key", "a-value-to-find").unwrap();
        // fjall's own per-insert write(2) would have put it in the file already.
        assert!(!journal_holds(dir.path(), b"a-value-to-find"));
        engine.db.persist(fjall::PersistMode::Buffer).unwrap();
        assert!(journal_holds(dir.path(), b"a-value-to-find"));
    }
}
