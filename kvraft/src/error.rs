//! The storage's errors. openraft takes `io::Error` from storage, so each converts into one
//! (kind `Other`, the message kept); a storage error stops the group on this copy.

use std::io;

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("corrupt raft state ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("this volume's raft identity belongs to group {found}, not {expected}")]
    GroupMismatch { found: String, expected: String },
    #[error("reading the kernel boot id: {0}")]
    BootId(io::Error),
    #[error("starting the log's flush thread: {0}")]
    Flusher(io::Error),
    #[error("no OS randomness for a node id: {0}")]
    Random(String),
}

/// Why the apply interface could not stage an entry (not an outcome such as a failed
/// precondition: those are answers, this is a broken store).
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("stored record of {key:?} is unreadable: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("{0}")]
    Other(String),
}

impl StorageError {
    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        StorageError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> Self {
        io::Error::other(e)
    }
}
