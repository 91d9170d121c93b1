//! The live key and byte counters (`/v1/info`, metrics), kept up to date by every write and
//! recounted from the engine at open and after a reopen.

use std::sync::atomic::{AtomicU64, Ordering};

use fjall::Keyspace;

use super::error::StorageError;
use super::record::Record;
use super::scan::records;

/// Totals over every stored record.
#[derive(Debug, Default)]
pub struct Totals {
    pub keys: u64,
    pub bytes: u64,
    pub max_version: u64,
}

impl Totals {
    /// Scans the whole records keyspace `kv`. Blocking.
    pub fn scan(kv: &Keyspace) -> Result<Totals, StorageError> {
        let mut totals = Totals::default();
        for stored in records(kv.iter()) {
            let record = stored?.record()?;
            totals.max_version = totals.max_version.max(record.version);
            if !record.is_tombstone() {
                totals.keys += 1;
                totals.bytes += record.value_len();
            }
        }
        Ok(totals)
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    keys: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub fn new(totals: &Totals) -> Self {
        let counters = Counters::default();
        counters.reset(totals);
        counters
    }

    pub fn reset(&self, totals: &Totals) {
        self.keys.store(totals.keys, Ordering::Relaxed);
        self.bytes.store(totals.bytes, Ordering::Relaxed);
    }

    pub fn keys(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Adjusts both counters for a change of one key from `before` to `after`.
    /// A record removed whole (cleanup): `live` when it held a value of `value_len` bytes.
    pub fn removed(&self, live: bool, value_len: u64) {
        if live {
            self.keys.fetch_sub(1, Ordering::Relaxed);
        }
        self.bytes.fetch_sub(value_len, Ordering::Relaxed);
    }

    pub fn account(&self, before: Option<&Record>, after: Option<&Record>) {
        let live = |r: Option<&Record>| r.is_some_and(|r| !r.is_tombstone());
        match (live(before), live(after)) {
            (false, true) => {
                self.keys.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.keys.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.bytes
            .fetch_add(after.map_or(0, Record::value_len), Ordering::Relaxed);
        self.bytes
            .fetch_sub(before.map_or(0, Record::value_len), Ordering::Relaxed);
    }
}
