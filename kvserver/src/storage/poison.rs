//! Engine poisoning, handled in one place. fjall poisons itself after a failed journal write
//! (a full disk, say) and refuses every later write; reads keep working. The store marks the
//! engine here when a write or its flush fails ([`Poison::record`]), and the next write reopens
//! it once the filesystem has room again ([`Poison::recover`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::StorageError;

/// Free space the disk must have again before a poisoned engine is reopened.
const MIN_FREE_BYTES_TO_RECOVER: u64 = 8 << 20;

#[derive(Debug)]
pub struct Poison {
    set: AtomicBool,
    /// One reopen at a time; writers arriving meanwhile wait for it.
    recovering: tokio::sync::Mutex<()>,
    /// The data dir, whose filesystem is checked for room.
    dir: PathBuf,
}

impl Poison {
    pub fn new(dir: PathBuf) -> Self {
        Poison {
            set: AtomicBool::new(false),
            recovering: tokio::sync::Mutex::new(()),
            dir,
        }
    }

    /// Whether the engine awaits a reopen.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Marks the engine for reopening after `what` failed, and words the error for the client:
    /// an engine error on a nearly full disk is a full disk.
    pub fn record(&self, error: StorageError, what: &str) -> StorageError {
        self.set.store(true, Ordering::Release);
        tracing::warn!(error = %error, "{what}; the engine will be reopened once the disk has room");
        if matches!(error, StorageError::Engine(_)) && self.disk_low() {
            StorageError::Full
        } else {
            error
        }
    }

    /// If the engine is poisoned, runs `reopen` once the disk has room (`Full` until then).
    pub async fn recover(
        &self,
        reopen: impl FnOnce() -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        if !self.is_set() {
            return Ok(());
        }
        let _one = self.recovering.lock().await;
        if self.is_set() {
            if self.disk_low() {
                return Err(StorageError::Full);
            }
            reopen()?;
            self.set.store(false, Ordering::Release);
            tracing::info!("storage engine reopened; writes accepted again");
        }
        Ok(())
    }

    /// Whether the data dir's filesystem is too full to try writing again.
    fn disk_low(&self) -> bool {
        match rustix::fs::statvfs(&self.dir) {
            Ok(s) => s.f_bavail.saturating_mul(s.f_frsize) < MIN_FREE_BYTES_TO_RECOVER,
            Err(_) => false,
        }
    }
}
