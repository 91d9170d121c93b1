//! The storage error, and how engine errors map to it (a full disk is its own case: 507;
//! a journal the store refuses to open, its own too).

use thiserror::Error;

use super::journal_check::JournalError;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("disk full: the write was not applied (reads still work)")]
    Full,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt record stored for key {0:?}")]
    Corrupt(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A journal the store refuses to open (damaged with data after it, or missing).
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        if is_disk_full(&e) {
            return StorageError::Full;
        }
        StorageError::Engine(e.to_string())
    }
}

impl StorageError {
    /// A blocking task that did not finish (panicked or was cancelled).
    pub fn task(e: tokio::task::JoinError) -> Self {
        StorageError::Engine(e.to_string())
    }
}

/// Whether an engine error is, somewhere down its chain, ENOSPC or EDQUOT.
fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded)
        {
            return true;
        }
        cur = err.source();
    }
    // fjall's Debug rendering names the io error even where `source` stops.
    let text = format!("{e:?}");
    text.contains("StorageFull") || text.contains("QuotaExceeded")
}
