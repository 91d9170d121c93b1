//! Durability per `--sync`: what happens between a write reaching the engine and its answer,
//! the background sync of `--sync batch`, and the flush at shutdown.
//!
//! Every mode hands the journal tail to the OS (one `write(2)`) before a write is acknowledged,
//! so a process crash never loses it. The fdatasync goes through a descriptor of our own on
//! fjall's journal files: fjall's own `persist(SyncData)` holds its journal lock through the
//! fsync, which stalled every writer for its length (see README.md, "Storage").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fjall::PersistMode;

use super::commit::GroupCommit;
use super::engine::Engine;
use super::error::StorageError;
use super::journal_check;
use super::journal_ledger::Ledger;
use crate::config::SyncMode;

#[derive(Debug)]
pub struct Durability {
    mode: SyncMode,
    /// The engine's directory, holding its journals.
    dir: PathBuf,
    group: GroupCommit,
    /// Set by every write, cleared by `sync_if_dirty`: an idle server does not fsync.
    dirty: AtomicBool,
    /// Told the newest journal at each sync, so a deleted one is noticed at the next start.
    ledger: Arc<Ledger>,
}

impl Durability {
    pub fn new(mode: SyncMode, dir: PathBuf, ledger: Ledger) -> Self {
        Durability {
            mode,
            dir,
            group: GroupCommit::default(),
            dirty: AtomicBool::new(false),
            ledger: Arc::new(ledger),
        }
    }

    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// Notes that something was written since the last background sync.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Makes a write as durable as `--sync` asks before it is acknowledged: handed to the OS in
    /// every mode (a process crash cannot lose it), and fsynced with `always`, where concurrent
    /// writers share one fsync (group commit). A failure here poisons the engine (the caller's).
    pub async fn acknowledge(&self, engine: Arc<Engine>) -> Result<(), StorageError> {
        if self.mode == SyncMode::Always {
            let ticket = self.group.ticket();
            self.group.wait(ticket, || self.sync_to_disk(engine)).await
        } else {
            // The store already handed its write to the OS under the key's stripe lock (so no
            // reader sees a record a crash could lose); this finds the buffer empty then (no
            // syscall), and stays so that no caller can be acknowledged before its write(2).
            // A failed flush poisons the engine.
            engine
                .db
                .persist(PersistMode::Buffer)
                .map_err(StorageError::from)
        }
    }

    /// `--sync batch`'s tick: fsync if anything was written since the last one.
    pub async fn sync_if_dirty(
        &self,
        engine: impl FnOnce() -> Result<Arc<Engine>, StorageError>,
    ) -> Result<(), StorageError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.sync_to_disk(engine()?)
            .await
            .inspect_err(|_| self.mark_dirty())
    }

    /// Puts everything written so far on stable storage without holding fjall's journal lock
    /// through the fsync (its own `persist(SyncData)` does, stalling every writer meanwhile):
    /// the journal tail goes to the OS under a brief lock, then each journal file is
    /// `fdatasync`ed through a descriptor of our own while writers carry on.
    async fn sync_to_disk(&self, engine: Arc<Engine>) -> Result<(), StorageError> {
        engine
            .db
            .persist(PersistMode::Buffer)
            .map_err(StorageError::from)?;
        let (dir, ledger) = (self.dir.clone(), self.ledger.clone());
        tokio::task::spawn_blocking(move || {
            let newest = sync_journals(&dir)?;
            if let Some(id) = newest {
                note(&ledger, id);
            }
            Ok(())
        })
        .await
        .map_err(StorageError::task)?
        .map_err(StorageError::Io)
    }
}

impl Durability {
    /// Records the newest journal in the ledger (shutdown; `--sync never` has no other sync).
    pub async fn note_newest_journal(&self) -> Result<(), StorageError> {
        let (dir, ledger) = (self.dir.clone(), self.ledger.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(&id) = journal_check::journal_ids(&dir)?.last() {
                note(&ledger, id);
            }
            Ok(())
        })
        .await
        .map_err(StorageError::task)?
        .map_err(StorageError::Io)
    }
}

/// Records the newest journal; a failure (a full disk, say) only weakens the deleted-journal
/// check until the next sync, so it is logged, never failed into a write's answer.
fn note(ledger: &Ledger, newest: u64) {
    if let Err(e) = ledger.note(newest) {
        tracing::warn!(error = %e, newest, "cannot record the newest journal in the ledger");
    }
}

/// Forces everything written so far to stable storage (shutdown).
pub async fn flush(engine: Arc<Engine>) -> Result<(), StorageError> {
    tokio::task::spawn_blocking(move || engine.db.persist(PersistMode::SyncAll))
        .await
        .map_err(StorageError::task)?
        .map_err(StorageError::from)
}

/// `fdatasync` of every fjall journal (`N.jnl`) in the store directory: the active one holds the
/// newest records; a sealed one still listed may hold records not yet flushed to tables (tables
/// are synced by fjall itself, and a journal is deleted only after that). Answers the newest id.
fn sync_journals(dir: &Path) -> std::io::Result<Option<u64>> {
    let ids = journal_check::journal_ids(dir)?;
    for &id in &ids {
        match std::fs::File::open(dir.join(format!("{id}.jnl"))) {
            Ok(file) => file.sync_data()?,
            // Deleted since the listing: its records are in synced tables.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ids.last().copied())
}
