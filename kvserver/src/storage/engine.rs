//! The fjall database behind a slot that can be emptied and refilled.
//!
//! fjall poisons itself after a failed journal write (a full disk, say) and then refuses every
//! write until it is reopened. Reads keep working on the poisoned instance, so the store keeps it
//! until the disk has room again, and only then swaps in a freshly opened one (see `Store`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use parking_lot::RwLock;

use super::StorageError;

const MEMTABLE_BYTES: u64 = 8 << 20;

/// An open database with the keyspaces the server uses.
pub struct Engine {
    pub db: Database,
    /// Key → `Record` (see `record.rs`).
    pub kv: Keyspace,
    /// Server bookkeeping (the version floor kept across purges).
    pub meta: Keyspace,
}

impl Engine {
    pub fn open(dir: &Path) -> Result<Engine, StorageError> {
        // The store flushes the journal itself before acknowledging (group commit), so many
        // concurrent writes share one write(2) instead of taking one each under fjall's lock.
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .open()
            .map_err(StorageError::from)?;
        // A smaller memtable than fjall's 64 MiB default: inserts search a skiplist holding
        // every version since the last flush, and overwrite-heavy loads (the book's) pay for its
        // depth on every write. Flushes of 8 MiB are cheap. (Fixed when the keyspace is created.)
        let kv = db
            .keyspace("kv", || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
            .map_err(StorageError::from)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(StorageError::from)?;
        Ok(Engine { db, kv, meta })
    }
}

/// Holds the current engine; empty only while a reopen is in progress or has failed.
pub struct Slot {
    dir: PathBuf,
    current: RwLock<Option<Arc<Engine>>>,
}

impl Slot {
    pub fn open(dir: PathBuf) -> Result<Slot, StorageError> {
        let engine = Engine::open(&dir)?;
        Ok(Slot {
            dir,
            current: RwLock::new(Some(Arc::new(engine))),
        })
    }

    pub fn get(&self) -> Result<Arc<Engine>, StorageError> {
        self.current
            .read()
            .clone()
            .ok_or_else(|| StorageError::Unavailable("the storage engine is reopening".into()))
    }

    /// Closes the current engine and opens it again (journal recovery drops any torn tail).
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
        let engine = Engine::open(&self.dir)?;
        *slot = Some(Arc::new(engine));
        Ok(())
    }
}
