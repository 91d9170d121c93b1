//! A bounded read cache of records (values and tombstones) in front of the engine, weighted by
//! bytes. Hot keys are then served without touching the LSM tree. It is filled and updated only
//! under the key's stripe lock, so it never holds a record older than the engine's.

use bytes::Bytes;
use kvproto::Key;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::record::Record;

/// Per-entry overhead counted on top of key and value bytes.
const ENTRY_OVERHEAD: u64 = 64;
/// Typical entry size, to size the cache's tables.
const TYPICAL_ENTRY: u64 = 256;

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<Key, Record> for ByBytes {
    fn weight(&self, key: &Key, record: &Record) -> u64 {
        key.as_bytes().len() as u64 + record.value_len() + ENTRY_OVERHEAD
    }
}

pub struct ReadCache(Option<Cache<Key, Record, ByBytes>>);

impl ReadCache {
    /// A cache of about `bytes`; 0 disables it.
    pub fn new(bytes: u64) -> Self {
        ReadCache((bytes > 0).then(|| {
            let items = usize::try_from(bytes / TYPICAL_ENTRY)
                .unwrap_or(usize::MAX)
                .max(16);
            Cache::with_weighter(items, bytes, ByBytes)
        }))
    }

    pub fn get(&self, key: &Key) -> Option<Record> {
        self.0.as_ref()?.get(key)
    }

    /// Keeps a copy of `record` whose value owns exactly its bytes: a value may be a view into a
    /// much larger buffer (a request's read buffer, an import body, an engine block), which the
    /// weigher, counting only the value's length, would otherwise keep alive unseen.
    pub fn put(&self, key: &Key, record: &Record) {
        if let Some(c) = &self.0 {
            let owned = Record {
                version: record.version,
                value: record.value.as_deref().map(Bytes::copy_from_slice),
            };
            c.insert(key.clone(), owned);
        }
    }

    pub fn forget(&self, key: &Key) {
        if let Some(c) = &self.0 {
            c.remove(key);
        }
    }

    pub fn clear(&self) {
        if let Some(c) = &self.0 {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_updates_and_forgets() {
        let cache = ReadCache::new(1 << 20);
        let k = Key::new("k").unwrap();
        assert_eq!(cache.get(&k), None);
        let r = Record {
            version: 1,
            value: Some(Bytes::from_static(b"v")),
        };
        cache.put(&k, &r);
        assert_eq!(cache.get(&k), Some(r));
        let t = Record {
            version: 2,
            value: None,
        };
        cache.put(&k, &t);
        assert_eq!(cache.get(&k), Some(t));
        cache.forget(&k);
        assert_eq!(cache.get(&k), None);
        let off = ReadCache::new(0);
        off.put(
            &k,
            &Record {
                version: 3,
                value: None,
            },
        );
        assert_eq!(off.get(&k), None);
    }
}
