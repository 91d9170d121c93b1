//! The store: versioned records with tombstones on an embedded LSM engine (fjall). This file
//! is its interface (reads, writes, scans, bulk import/export, cleanup, syncs) and the write
//! path; each concern behind it has its own file:
//! - `engine.rs`: the fjall database and the slot it is swapped through on a reopen;
//! - `record.rs`: how a key's state is encoded; `scan.rs`: the one record iterator;
//! - `write.rs`: preconditions and outcomes; `gate.rs`: single writes vs. bulk operations;
//! - `durability.rs` (+ `commit.rs`, group commit): what `--sync` does before an answer;
//! - `journal_check.rs` (+ `journal_frame.rs`, `journal_ledger.rs`): the journals verified
//!   before the engine opens them (a torn tail dropped and logged, any other damage refused);
//! - `poison.rs`: a failed write, and the reopen once the disk has room;
//! - `export.rs`, `import.rs`, `cleanup.rs`: the bulk operations; `all_keys.rs`: `/allKeys` streamed;
//! - `cache.rs`, `clock.rs`, `counters.rs`: read cache, versions, key/byte counters;
//! - `node_id.rs`: a copy's raft node ID before its group exists; `raft_home.rs`: the group an
//!   init gave a copy without raft flags, and the topology its running group applied;
//! - `raft_target.rs`: the store as a replicated shard's state machine (`kvraft::ApplyTarget`),
//!   applying committed entries by the rules of `write.rs`, `import.rs` and `cleanup.rs`.
//!
//! # Guarantees
//! - Every write is appended to fjall's checksummed journal and handed to the OS before it is
//!   acknowledged, in every `--sync` mode: a process crash (kill -9) never loses an acknowledged
//!   write, and only a torn tail is ever dropped (logged), so no value is ever half-written.
//! - Damage anywhere else in a journal, or a missing journal, refuses to open the store and
//!   changes nothing (`journal_check.rs`).
//! - `--sync always` syncs before acknowledging (group commit); `batch` syncs every interval
//!   from a background task; `never` leaves it to the OS.
//! - A failed write (e.g. disk full) changes nothing that was acknowledged; reads keep working;
//!   writes resume once the disk has room (the engine is reopened, see `poison.rs`).
//!
//! # Concurrency
//! A write holds its key's stripe lock while it reads the current record (preconditions,
//! counters) and appends the new one, so versions of one key are written in order. Imports,
//! cleanups and reopens take the gate exclusively, so they apply atomically with respect to
//! single writes.

mod all_keys;
mod cache;
mod cleanup;
mod clock;
mod commit;
mod counters;
mod durability;
mod engine;
mod error;
mod export;
mod gate;
mod import;
mod journal_check;
mod journal_frame;
mod journal_ledger;
mod node_id;
mod poison;
pub mod raft_home;
mod raft_target;
mod record;
mod scan;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kvproto::Key;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use clock::Clock;
pub use error::StorageError;
// `verify` is public for the fuzz target `journal_verify` (fuzz/src/journal.rs).
pub use journal_check::{
    JournalError, Report as JournalReport, TORN_TAILS_DIR, verify as verify_journals,
};
pub use record::Record;
pub use write::{DeleteMode, Precondition, WriteOutcome};

use crate::config::SyncMode;
use cache::ReadCache;
use cleanup::Purge;
use counters::{Counters, Totals};
use durability::Durability;
use engine::{Engine, Slot};
use gate::Gate;
use import::Plan;
use journal_ledger::Ledger;
use poison::Poison;
use scan::records;

const STRIPES: usize = 256;

pub struct Store {
    slot: Slot,
    dir: PathBuf,
    poison: Poison,
    clock: Clock,
    stripes: Box<[Mutex<()>]>,
    gate: Gate,
    counters: Counters,
    durability: Durability,
    cache: ReadCache,
    /// What a running group applied last (`raft_home.rs`).
    applied_topology: tokio::sync::watch::Sender<Option<Arc<kvproto::Topology>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("sync", &self.durability.mode())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store under `dir`. Blocking: scans the store once to count keys.
    /// `cache_bytes` sizes the read cache (0 disables it).
    pub fn open(dir: &Path, sync: SyncMode, cache_bytes: u64) -> Result<Store, StorageError> {
        std::fs::create_dir_all(dir)?;
        let slot = Slot::open(dir.to_path_buf())?;
        // Written on the first open: from then on a store without its journals refuses to open.
        let ledger = Ledger::open(dir, journal_check::journal_ids(dir)?.last().copied())?;
        let engine = slot.get()?;
        let totals = Totals::scan(&engine.kv)?;
        let floor = engine.clock_floor()?;
        drop(engine);
        Ok(Store {
            slot,
            dir: dir.to_path_buf(),
            poison: Poison::new(dir.to_path_buf()),
            clock: Clock::starting_after(totals.max_version.max(floor)),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            gate: Gate::default(),
            counters: Counters::new(&totals),
            durability: Durability::new(sync, dir.to_path_buf(), ledger),
            cache: ReadCache::new(cache_bytes),
            applied_topology: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Live keys held.
    pub fn key_count(&self) -> u64 {
        self.counters.keys()
    }

    /// Bytes of live values held.
    pub fn value_bytes(&self) -> u64 {
        self.counters.bytes()
    }

    /// Whether the engine is open (reads work; writes may still fail on a full disk).
    pub fn is_open(&self) -> bool {
        self.slot.get().is_ok()
    }

    /// The key's record, tombstones included.
    pub fn get(&self, key: &Key) -> Result<Option<Record>, StorageError> {
        if let Some(hit) = self.cache.get(key) {
            return Ok(Some(hit));
        }
        let engine = self.slot.get()?;
        // Under the stripe lock, so a concurrent write cannot be overtaken by this older read.
        let _stripe = self.stripe(key).lock();
        let record = engine.record(key)?;
        if let Some(r) = &record {
            self.cache.put(key, r);
        }
        Ok(record)
    }

    /// Writes `value` under `key` if `pre` holds. `remote` is the version of the live value the
    /// previous owner holds (read-through), used when nothing is stored locally.
    pub async fn put(
        &self,
        key: &Key,
        value: Bytes,
        pre: Precondition,
        remote: Option<u64>,
    ) -> Result<WriteOutcome, StorageError> {
        self.write(key, Some(value), pre, remote).await
    }

    /// Deletes `key` if `pre` holds; `NotFound` if it has no live value here (nor at `remote`).
    pub async fn delete(
        &self,
        key: &Key,
        pre: Precondition,
        mode: DeleteMode,
        remote: Option<u64>,
    ) -> Result<WriteOutcome, StorageError> {
        match mode {
            DeleteMode::Tombstone => self.write(key, None, pre, remote).await,
            DeleteMode::Remove => self.remove(key, pre).await,
        }
    }

    async fn write(
        &self,
        key: &Key,
        value: Option<Bytes>,
        pre: Precondition,
        remote: Option<u64>,
    ) -> Result<WriteOutcome, StorageError> {
        let engine = self.writable().await?;
        let outcome = {
            let _gate = self.gate.shared().await;
            let _stripe = self.stripe(key).lock();
            let current = self.current_locked(&engine, key)?;
            let next_version = || {
                // Above the previous owner's version too: the key's version never goes backwards.
                if let Some(r) = remote {
                    self.clock.observe(r);
                }
                self.clock.next()
            };
            let record =
                match write::record_to_store(current.as_ref(), value, pre, remote, next_version) {
                    Ok(record) => record,
                    Err(answer) => return Ok(answer),
                };
            self.guard_write(engine.kv.insert(key.as_bytes(), record.encode()))?;
            self.hand_to_os(&engine)?;
            self.cache.put(key, &record);
            self.counters.account(current.as_ref(), Some(&record));
            WriteOutcome::Written(record.version)
        };
        self.acknowledge(engine).await?;
        Ok(outcome)
    }

    async fn remove(&self, key: &Key, pre: Precondition) -> Result<WriteOutcome, StorageError> {
        let engine = self.writable().await?;
        let outcome = {
            let _gate = self.gate.shared().await;
            let _stripe = self.stripe(key).lock();
            let current = self.current_locked(&engine, key)?;
            let version = match write::version_to_remove(current.as_ref(), pre) {
                Ok(version) => version,
                Err(answer) => return Ok(answer),
            };
            self.guard_write(engine.kv.remove(key.as_bytes()))?;
            self.hand_to_os(&engine)?;
            self.cache.forget(key);
            self.counters.account(current.as_ref(), None);
            WriteOutcome::Written(version)
        };
        self.acknowledge(engine).await?;
        Ok(outcome)
    }

    /// Live keys in order: those starting with `prefix`, after `after`, at most `limit`.
    /// Returns the page and whether more follow.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Key>, bool), StorageError> {
        let engine = self.slot.get()?;
        let start: Vec<u8> = match after {
            Some(a) if a.as_bytes() >= prefix.as_bytes() => a.as_bytes().to_vec(),
            _ => prefix.as_bytes().to_vec(),
        };
        let mut keys = Vec::new();
        for stored in records(engine.kv.range(start..)) {
            let stored = stored?;
            if !stored.key.as_bytes().starts_with(prefix.as_bytes()) {
                break;
            }
            if after.is_some_and(|a| stored.key.as_str() == a) || stored.record()?.is_tombstone() {
                continue;
            }
            if keys.len() == limit {
                return Ok((keys, true));
            }
            keys.push(stored.key);
        }
        Ok((keys, false))
    }

    /// Every live key, in order (tests; the route streams them with [`Self::stream_all_keys`]).
    pub fn all_keys(&self) -> Result<Vec<Key>, StorageError> {
        Ok(self.list("", None, usize::MAX)?.0)
    }

    /// Whether the engine is open, as the error a read would get.
    pub fn check_open(&self) -> Result<(), StorageError> {
        self.slot.get().map(|_| ())
    }

    /// Streams every live key, in order, comma-separated, into `tx` (the book's `/allKeys`).
    /// Blocking: run it on a blocking thread.
    pub fn stream_all_keys(
        &self,
        tx: &mpsc::Sender<Result<Bytes, StorageError>>,
    ) -> Result<(), StorageError> {
        let engine = self.slot.get()?;
        all_keys::stream(records(engine.kv.iter()), tx);
        Ok(())
    }

    /// Every stored record (tombstones included) whose key passes `keep`, in key order: the one
    /// stream behind [`Self::export`] and [`Self::count`], so a count always matches an export.
    fn bulk_records(
        engine: &Engine,
        keep: impl Fn(&Key) -> bool,
    ) -> impl Iterator<Item = Result<BulkRecord, StorageError>> {
        records(engine.kv.iter())
            .filter(move |stored| match stored {
                Ok(s) => keep(&s.key),
                // Passed on, to end the stream.
                Err(_) => true,
            })
            .map(|stored| {
                let (key, record) = stored?.into_parts()?;
                Ok(BulkRecord {
                    key,
                    version: record.version,
                    value: record.value,
                })
            })
    }

    /// Streams every record (tombstones included) whose key passes `keep`, as a bulk stream,
    /// into `tx`. Blocking: run on a blocking thread. A failure mid-way ends the stream without a
    /// trailer, which every decoder reports as truncated.
    pub fn export(
        &self,
        keep: impl Fn(&Key) -> bool,
        tx: &mpsc::Sender<Result<Bytes, StorageError>>,
    ) -> Result<u64, StorageError> {
        let engine = self.slot.get()?;
        export::stream(Self::bulk_records(&engine, keep), tx)
    }

    /// How many records (tombstones included) [`Self::export`] would stream for `keep`. Blocking.
    pub fn count(&self, keep: impl Fn(&Key) -> bool) -> Result<u64, StorageError> {
        let engine = self.slot.get()?;
        export::count(Self::bulk_records(&engine, keep))
    }

    /// Applies every record at once (one atomic engine batch), keeping each record's version.
    /// `IfAbsent` skips keys that hold a value or a tombstone here; `Overwrite` replaces a record
    /// only with a higher version. Either way the clock moves past every imported version, so a
    /// later local write is newer than anything the import carried.
    pub async fn import(
        self: &Arc<Self>,
        records: Vec<BulkRecord>,
        mode: ImportMode,
    ) -> Result<ImportReport, StorageError> {
        self.exclusively(move |store, engine| {
            let plan = Plan::new(records.into_iter(), mode, |key| engine.record(key))?;
            store.guard_write(plan.batch(engine).commit())?;
            store.hand_to_os(engine)?;
            for (key, before, after) in plan.written() {
                // An if-absent import only writes keys with no record here, which the cache (it
                // holds stored records only) cannot hold; an overwrite replaces a cached one.
                if mode == ImportMode::Overwrite {
                    store.cache.put(key, after);
                }
                store.counters.account(before, Some(after));
            }
            store.clock.observe(plan.max_version);
            Ok(plan.report)
        })
        .await
    }

    /// Removes every tombstone and every live key for which `owned` is false, atomically.
    pub async fn cleanup(
        self: &Arc<Self>,
        owned: impl Fn(&Key) -> bool + Send + 'static,
    ) -> Result<CleanupReport, StorageError> {
        self.exclusively(move |store, engine| {
            let purge = Purge::new(&engine.kv, owned)?;
            store.guard_write(purge.batch(engine, store.clock.last()).commit())?;
            store.hand_to_os(engine)?;
            for dropped in &purge.dropped {
                store.cache.forget(&dropped.key);
                store.counters.removed(dropped.live, dropped.value_len);
            }
            Ok(purge.report)
        })
        .await
    }

    /// Runs a bulk operation with the gate held exclusively, off the async workers (it reads
    /// and writes for a while), then makes it durable like a single write.
    async fn exclusively<T: Send + 'static>(
        self: &Arc<Self>,
        apply: impl FnOnce(&Store, &Engine) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let engine = self.writable().await?;
        let (store, on) = (self.clone(), engine.clone());
        let out = tokio::task::spawn_blocking(move || store.gate.exclusive(|| apply(&store, &on)))
            .await
            .map_err(StorageError::task)??;
        self.acknowledge(engine).await?;
        Ok(out)
    }

    /// `--sync batch`'s tick: fsync if anything was written since the last one.
    pub async fn sync_if_dirty(&self) -> Result<(), StorageError> {
        if self.poison.is_set() {
            return Ok(());
        }
        self.durability.sync_if_dirty(|| self.slot.get()).await
    }

    /// Forces everything written so far to stable storage.
    pub async fn flush(&self) -> Result<(), StorageError> {
        durability::flush(self.slot.get()?).await?;
        self.durability.note_newest_journal().await
    }

    /// The key's record; the caller holds its stripe lock.
    fn current_locked(&self, engine: &Engine, key: &Key) -> Result<Option<Record>, StorageError> {
        match self.cache.get(key) {
            Some(hit) => Ok(Some(hit)),
            None => engine.record(key),
        }
    }

    fn stripe(&self, key: &Key) -> &Mutex<()> {
        let h = kvproto::shard::fnv1a64(key.as_bytes());
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    /// An engine write's result: a failure poisons the engine.
    fn guard_write<T>(&self, result: fjall::Result<T>) -> Result<T, StorageError> {
        self.durability.mark_dirty();
        result.map_err(|e| self.failed(StorageError::from(e), "write failed"))
    }

    /// Hands the journal's buffered tail to the OS (one `write(2)`), before the stripe lock that
    /// covers a write is released: a reader can see a record only once a process crash cannot
    /// lose it. Otherwise a read could return a value that a kill -9 then takes back (caught by
    /// the Porcupine check in kvclient/tests/history.rs), since fjall's memtable shows an insert
    /// before its journal is written (`manual_journal_persist`). A failure poisons the engine.
    fn hand_to_os(&self, engine: &Engine) -> Result<(), StorageError> {
        engine
            .db
            .persist(fjall::PersistMode::Buffer)
            .map_err(|e| self.failed(StorageError::from(e), "journal flush failed"))
    }

    /// Makes an applied write as durable as `--sync` asks; a failure poisons the engine.
    async fn acknowledge(&self, engine: Arc<Engine>) -> Result<(), StorageError> {
        self.durability
            .acknowledge(engine)
            .await
            .map_err(|e| self.failed(e, "journal flush failed"))
    }

    /// The one poisoning block: after a failed write or journal flush, the engine's memory may
    /// hold what its journal does not, so the cache starts cold and the engine is reopened at
    /// the next write once the disk has room.
    fn failed(&self, error: StorageError, what: &str) -> StorageError {
        self.cache.clear();
        self.poison.record(error, what)
    }

    /// The engine, reopened first if an earlier write failed and the disk has room again; then
    /// waits for the engine's flushes if they are behind.
    async fn writable(&self) -> Result<Arc<Engine>, StorageError> {
        self.poison.recover(|| self.reopen()).await?;
        let engine = self.slot.get()?;
        engine.wait_for_flushes().await;
        Ok(engine)
    }

    /// Swaps in a freshly opened engine with every writer excluded. Blocking, but rare (once per
    /// disk-full episode) and every writer is waiting anyway.
    fn reopen(&self) -> Result<(), StorageError> {
        self.gate.exclusive(|| -> Result<(), StorageError> {
            self.slot.reopen()?;
            // A write that failed may or may not be in the recovered journal: start cold.
            self.cache.clear();
            let engine = self.slot.get()?;
            let totals = Totals::scan(&engine.kv)?;
            self.counters.reset(&totals);
            self.clock.observe(totals.max_version);
            Ok(())
        })
    }
}
