//! The one record iterator: every scan of the keyspace (listing, export, count, cleanup, the
//! totals counted at open) walks the engine through [`records`].

use kvproto::Key;

use super::error::StorageError;
use super::record::{Record, decode_stored};

/// One stored entry: its key, decoded; its record, decoded on demand (a scan that skips the key
/// does not pay for, nor fail on, its record).
pub struct Stored {
    pub key: Key,
    raw: fjall::Slice,
}

impl Stored {
    pub fn record(&self) -> Result<Record, StorageError> {
        decode_stored(&self.key, self.raw.clone())
    }

    pub fn into_parts(self) -> Result<(Key, Record), StorageError> {
        let record = decode_stored(&self.key, self.raw)?;
        Ok((self.key, record))
    }
}

/// The entries of an engine iterator (`kv.iter()`, `kv.range(..)`) in key order; stored keys
/// that are not valid keys are skipped with a warning.
pub fn records(iter: fjall::Iter) -> impl Iterator<Item = Result<Stored, StorageError>> {
    iter.filter_map(|guard| match guard.into_inner() {
        Err(e) => Some(Err(StorageError::from(e))),
        Ok((k, raw)) => match Key::from_bytes(&k) {
            Ok(key) => Some(Ok(Stored { key, raw })),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a stored key that is not valid");
                None
            }
        },
    })
}
