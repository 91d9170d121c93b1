//! The store: versioned records with tombstones on an embedded LSM engine (fjall).
//!
//! # Guarantees
//! - Every write is appended to fjall's checksummed journal and handed to the OS before it is
//!   acknowledged, in every `--sync` mode: a process crash (kill -9) never loses an acknowledged
//!   write, and journal recovery drops a torn tail, so no value is ever half-written.
//! - `--sync always` syncs before acknowledging (group commit); `batch` syncs every interval
//!   from a background task; `never` leaves it to the OS.
//! - A failed write (e.g. disk full) changes nothing that was acknowledged; reads keep working;
//!   writes resume once the disk has room (the engine is reopened, see `engine.rs`).
//!
//! # Concurrency
//! A write holds its key's stripe lock while it reads the current record (preconditions,
//! counters) and appends the new one, so versions of one key are written in order. Imports and
//! cleanups take the gate exclusively, so they apply atomically with respect to single writes.

mod cache;
mod clock;
mod commit;
mod engine;
mod record;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use fjall::PersistMode;
use kvproto::Key;
use kvproto::bulk::{BulkCodec, BulkRecord};
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::sync::mpsc;

pub use clock::Clock;
pub use record::Record;

use crate::config::SyncMode;
use cache::ReadCache;
use commit::GroupCommit;
use engine::{Engine, Slot};

const STRIPES: usize = 256;
/// Free space the disk must have again before a poisoned engine is reopened.
const MIN_FREE_BYTES_TO_RECOVER: u64 = 8 << 20;
/// Key in the meta keyspace: a version floor that survives purging every record.
const META_CLOCK_FLOOR: &[u8] = b"clock_floor";
/// Export chunk size.
const EXPORT_CHUNK: usize = 64 << 10;

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
}

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        if is_disk_full(&e) {
            return StorageError::Full;
        }
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

/// What a conditional write expects of the key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    None,
    /// `If-None-Match: *`: only if no live value exists.
    IfAbsent,
    /// `If-Match: "<v>"`: only if the live value has this version.
    IfVersion(u64),
}

/// The result of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written with this version.
    Written(u64),
    /// A delete of a key with no live value.
    NotFound,
    /// The precondition did not hold; the key's live version, if any.
    PreconditionFailed(Option<u64>),
}

/// How a delete is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Remove the key outright (stable topology).
    Remove,
    /// Keep a tombstone, so read-through and if-absent imports do not resurrect the key.
    Tombstone,
}

pub struct Store {
    slot: Slot,
    dir: std::path::PathBuf,
    poisoned: AtomicBool,
    recover: tokio::sync::Mutex<()>,
    clock: Clock,
    stripes: Box<[Mutex<()>]>,
    gate: RwLock<()>,
    keys: AtomicU64,
    bytes: AtomicU64,
    sync: SyncMode,
    group: GroupCommit,
    cache: ReadCache,
    /// Set by every write, cleared by `sync_if_dirty`: an idle server does not fsync.
    dirty: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

/// Totals over the live records of a scan.
#[derive(Debug, Default)]
struct Totals {
    keys: u64,
    bytes: u64,
    max_version: u64,
}

impl Store {
    /// Opens (or creates) the store under `dir`. Blocking: scans the store once to count keys.
    /// `cache_bytes` sizes the read cache (0 disables it).
    pub fn open(dir: &Path, sync: SyncMode, cache_bytes: u64) -> Result<Store, StorageError> {
        std::fs::create_dir_all(dir)?;
        let slot = Slot::open(dir.to_path_buf())?;
        let engine = slot.get()?;
        let totals = scan(&engine)?;
        let floor = read_floor(&engine)?;
        drop(engine);
        Ok(Store {
            slot,
            dir: dir.to_path_buf(),
            poisoned: AtomicBool::new(false),
            recover: tokio::sync::Mutex::new(()),
            clock: Clock::starting_after(totals.max_version.max(floor)),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            gate: RwLock::new(()),
            keys: AtomicU64::new(totals.keys),
            bytes: AtomicU64::new(totals.bytes),
            sync,
            group: GroupCommit::default(),
            cache: ReadCache::new(cache_bytes),
            dirty: AtomicBool::new(false),
        })
    }

    /// Live keys held.
    pub fn key_count(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }

    /// Bytes of live values held.
    pub fn value_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
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
        let record = decode_stored(key, engine.kv.get(key.as_bytes())?)?;
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
            let _gate = self.shared_gate().await;
            let _stripe = self.stripe(key).lock();
            let current = self.current_locked(&engine, key)?;
            let live = live_version(current.as_ref(), remote);
            if let Some(fail) = check(pre, live) {
                return Ok(fail);
            }
            if value.is_none() && live.is_none() {
                return Ok(WriteOutcome::NotFound);
            }
            let record = Record {
                version: self.clock.next(),
                value,
            };
            self.guard_write(engine.kv.insert(key.as_bytes(), record.encode()))?;
            self.cache.put(key, &record);
            self.account(current.as_ref(), Some(&record));
            WriteOutcome::Written(record.version)
        };
        self.durable(engine).await?;
        Ok(outcome)
    }

    async fn remove(&self, key: &Key, pre: Precondition) -> Result<WriteOutcome, StorageError> {
        let engine = self.writable().await?;
        let outcome = {
            let _gate = self.shared_gate().await;
            let _stripe = self.stripe(key).lock();
            let current = self.current_locked(&engine, key)?;
            let live = live_version(current.as_ref(), None);
            if let Some(fail) = check(pre, live) {
                return Ok(fail);
            }
            let Some(version) = live else {
                return Ok(WriteOutcome::NotFound);
            };
            self.guard_write(engine.kv.remove(key.as_bytes()))?;
            self.cache.forget(key);
            self.account(current.as_ref(), None);
            WriteOutcome::Written(version)
        };
        self.durable(engine).await?;
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
        for guard in engine.kv.range(start..) {
            let (k, v) = guard.into_inner()?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            if after.is_some_and(|a| &*k == a.as_bytes()) {
                continue;
            }
            let Some(key) = decode_key(&k) else { continue };
            if decode_stored(&key, Some(v))?.is_some_and(|r| r.is_tombstone()) {
                continue;
            }
            if keys.len() == limit {
                return Ok((keys, true));
            }
            keys.push(key);
        }
        Ok((keys, false))
    }

    /// Every live key, in order (the book's `/allKeys`).
    pub fn all_keys(&self) -> Result<Vec<Key>, StorageError> {
        Ok(self.list("", None, usize::MAX)?.0)
    }

    /// Visits every stored record (tombstones included) whose key passes `keep`, in key order,
    /// until `visit` breaks. Blocking. The one scan behind [`Self::export`] and [`Self::count`],
    /// so a count always matches what an export sends.
    fn scan_records(
        &self,
        keep: impl Fn(&Key) -> bool,
        mut visit: impl FnMut(BulkRecord) -> Result<ControlFlow<()>, StorageError>,
    ) -> Result<(), StorageError> {
        let engine = self.slot.get()?;
        for guard in engine.kv.iter() {
            let (k, v) = guard.into_inner()?;
            let Some(key) = decode_key(&k) else { continue };
            if !keep(&key) {
                continue;
            }
            let Some(record) = decode_stored(&key, Some(v))? else {
                continue;
            };
            let bulk = BulkRecord {
                key,
                version: record.version,
                value: record.value,
            };
            if visit(bulk)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Streams every record (tombstones included) whose key passes `keep`, as a bulk stream,
    /// into `tx`. Blocking: run on a blocking thread. A failure mid-way ends the stream without a
    /// trailer, which every decoder reports as truncated.
    pub fn export(
        &self,
        keep: impl Fn(&Key) -> bool,
        tx: &mpsc::Sender<Result<Bytes, StorageError>>,
    ) -> Result<u64, StorageError> {
        let mut buf = BytesMut::with_capacity(EXPORT_CHUNK * 2);
        BulkCodec::encode_start(&mut buf);
        let mut count = 0u64;
        let mut codec = BulkCodec::new(usize::MAX);
        let mut hung_up = false;
        self.scan_records(keep, |bulk| {
            tokio_util::codec::Encoder::encode(&mut codec, &bulk, &mut buf)
                .map_err(|e| StorageError::Engine(e.to_string()))?;
            count += 1;
            if buf.len() >= EXPORT_CHUNK && tx.blocking_send(Ok(buf.split().freeze())).is_err() {
                // The receiver hung up; nothing more to do.
                hung_up = true;
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if !hung_up {
            BulkCodec::encode_end(count, &mut buf);
            let _ = tx.blocking_send(Ok(buf.freeze()));
        }
        Ok(count)
    }

    /// How many records (tombstones included) [`Self::export`] would stream for `keep`. Blocking.
    pub fn count(&self, keep: impl Fn(&Key) -> bool) -> Result<u64, StorageError> {
        let mut count = 0u64;
        self.scan_records(keep, |_| {
            count += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(count)
    }

    /// Applies every record at once (one atomic engine batch), keeping each record's version.
    /// `IfAbsent` skips keys that hold a value or a tombstone here.
    pub async fn import(
        self: &Arc<Self>,
        records: Vec<BulkRecord>,
        mode: ImportMode,
    ) -> Result<ImportReport, StorageError> {
        let engine = self.writable().await?;
        let (this, on) = (self.clone(), engine.clone());
        // Off the async workers: a large import reads and writes for a while.
        let report = tokio::task::spawn_blocking(move || {
            let _exclusive = this.gate.write();
            this.import_blocking(&on, records, mode)
        })
        .await
        .map_err(|e| StorageError::Engine(e.to_string()))??;
        self.durable(engine).await?;
        Ok(report)
    }

    fn import_blocking(
        &self,
        engine: &Engine,
        records: Vec<BulkRecord>,
        mode: ImportMode,
    ) -> Result<ImportReport, StorageError> {
        let mut report = ImportReport::default();
        let mut batch = engine.db.batch();
        // Per key: the state before the batch and the record it ends with; later records for
        // the same key win, as if applied one by one. One hash map: imports run on the copy's
        // hot path.
        let mut touched: HashMap<Key, (Option<Record>, Option<Record>)> =
            HashMap::with_capacity(records.len());
        for rec in records {
            let (before, after) = match touched.entry(rec.key) {
                Entry::Occupied(slot) => slot.into_mut(),
                Entry::Vacant(slot) => {
                    let stored = decode_stored(slot.key(), engine.kv.get(slot.key().as_bytes())?)?;
                    slot.insert((stored, None))
                }
            };
            if mode == ImportMode::IfAbsent && (before.is_some() || after.is_some()) {
                report.skipped += 1;
                continue;
            }
            let record = Record {
                version: rec.version,
                value: rec.value,
            };
            *after = Some(record);
            report.applied += 1;
        }
        for (key, (_, after)) in &touched {
            if let Some(record) = after {
                batch.insert(&engine.kv, key.as_bytes(), record.encode());
            }
        }
        self.guard_write(batch.commit())?;
        for (key, (before, after)) in &touched {
            let Some(record) = after else { continue };
            // An if-absent import only writes keys with no record here, which the cache (it
            // holds stored records only) cannot hold; an overwrite replaces a cached one.
            if mode == ImportMode::Overwrite {
                self.cache.put(key, record);
            }
            self.clock.observe(record.version);
            self.account(before.as_ref(), Some(record));
        }
        Ok(report)
    }

    /// Removes every tombstone and every live key for which `owned` is false, atomically.
    pub async fn cleanup(
        self: &Arc<Self>,
        owned: impl Fn(&Key) -> bool + Send + 'static,
    ) -> Result<CleanupReport, StorageError> {
        let engine = self.writable().await?;
        let (this, on) = (self.clone(), engine.clone());
        let report = tokio::task::spawn_blocking(move || {
            let _exclusive = this.gate.write();
            this.cleanup_blocking(&on, owned)
        })
        .await
        .map_err(|e| StorageError::Engine(e.to_string()))??;
        self.durable(engine).await?;
        Ok(report)
    }

    fn cleanup_blocking(
        &self,
        engine: &Engine,
        owned: impl Fn(&Key) -> bool,
    ) -> Result<CleanupReport, StorageError> {
        let mut report = CleanupReport::default();
        let mut batch = engine.db.batch();
        let mut dropped = Vec::new();
        for guard in engine.kv.iter() {
            let (k, v) = guard.into_inner()?;
            let Some(key) = decode_key(&k) else { continue };
            let Some(record) = decode_stored(&key, Some(v))? else {
                continue;
            };
            if record.is_tombstone() {
                report.removed_tombstones += 1;
            } else if !owned(&key) {
                report.removed_keys += 1;
            } else {
                continue;
            }
            batch.remove(&engine.kv, k);
            dropped.push((key, record));
        }
        // Purged records take their versions with them; keep the clock's floor.
        batch.insert(
            &engine.meta,
            META_CLOCK_FLOOR,
            self.clock.last().to_be_bytes().to_vec(),
        );
        self.guard_write(batch.commit())?;
        for (key, record) in &dropped {
            self.cache.forget(key);
            self.account(Some(record), None);
        }
        Ok(report)
    }

    /// `--sync batch`'s tick: fsync if anything was written since the last one.
    pub async fn sync_if_dirty(&self) -> Result<(), StorageError> {
        if self.poisoned.load(Ordering::Acquire) || !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let engine = self.slot.get()?;
        self.sync_to_disk(engine)
            .await
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
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
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || sync_journals(&dir))
            .await
            .map_err(|e| StorageError::Engine(e.to_string()))?
            .map_err(StorageError::Io)
    }

    /// Forces everything written so far to stable storage.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let engine = self.slot.get()?;
        fsync(engine, PersistMode::SyncAll).await
    }

    /// The key's record; the caller holds its stripe lock.
    fn current_locked(&self, engine: &Engine, key: &Key) -> Result<Option<Record>, StorageError> {
        match self.cache.get(key) {
            Some(hit) => Ok(Some(hit)),
            None => decode_stored(key, engine.kv.get(key.as_bytes())?),
        }
    }

    /// The gate, shared. Imports and cleanups hold it exclusively on a blocking thread; a writer
    /// that finds it taken waits asynchronously rather than parking a runtime worker.
    async fn shared_gate(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        loop {
            if let Some(guard) = self.gate.try_read() {
                return guard;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    fn stripe(&self, key: &Key) -> &Mutex<()> {
        let h = kvproto::shard::fnv1a64(key.as_bytes());
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    /// Adjusts the key and byte counters for a change of one key from `before` to `after`.
    fn account(&self, before: Option<&Record>, after: Option<&Record>) {
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

    /// Maps a write error, remembering that the engine now needs reopening.
    fn guard_write<T>(&self, result: fjall::Result<T>) -> Result<T, StorageError> {
        self.dirty.store(true, Ordering::Release);
        result.map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            let err = StorageError::from(e);
            tracing::warn!(error = %err, "write failed; the engine will be reopened once the disk has room");
            if matches!(err, StorageError::Engine(_)) && disk_low(&self.dir) {
                StorageError::Full
            } else {
                err
            }
        })
    }

    /// The engine, reopened first if an earlier write failed and the disk has room again.
    async fn writable(&self) -> Result<Arc<Engine>, StorageError> {
        if self.poisoned.load(Ordering::Acquire) {
            let _one = self.recover.lock().await;
            if self.poisoned.load(Ordering::Acquire) {
                if disk_low(&self.dir) {
                    return Err(StorageError::Full);
                }
                self.reopen().await?;
            }
        }
        let engine = self.slot.get()?;
        backpressure(&engine).await;
        Ok(engine)
    }

    async fn reopen(&self) -> Result<(), StorageError> {
        // Exclude every writer while the engine is swapped.
        let _gate = self.gate.write();
        // Blocking, but rare (once per disk-full episode) and every writer is parked anyway.
        self.slot.reopen()?;
        // A write that failed may or may not be in the recovered journal: start cold.
        self.cache.clear();
        let engine = self.slot.get()?;
        let totals = scan(&engine)?;
        self.keys.store(totals.keys, Ordering::Relaxed);
        self.bytes.store(totals.bytes, Ordering::Relaxed);
        self.clock.observe(totals.max_version);
        self.poisoned.store(false, Ordering::Release);
        tracing::info!("storage engine reopened; writes accepted again");
        Ok(())
    }

    /// Makes a write as durable as `--sync` asks before it is acknowledged: handed to the OS in
    /// every mode (a process crash cannot lose it), and fsynced with `always`, where concurrent
    /// writers share one fsync (group commit).
    async fn durable(&self, engine: Arc<Engine>) -> Result<(), StorageError> {
        let result = if self.sync == SyncMode::Always {
            let ticket = self.group.ticket();
            self.group.wait(ticket, || self.sync_to_disk(engine)).await
        } else {
            // A write(2) of the journal's buffered tail, done inline. When several writers have
            // appended before one flushes, that flush covers them all and the later ones find
            // the buffer empty (no syscall). A failed flush poisons the engine, so no writer is
            // acknowledged for a record that did not reach the OS.
            engine
                .db
                .persist(PersistMode::Buffer)
                .map_err(StorageError::from)
        };
        result.map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            // The write is in the engine's memory but not in the journal: start the cache cold.
            self.cache.clear();
            tracing::warn!(error = %e, "journal flush failed; the engine will be reopened once the disk has room");
            if matches!(e, StorageError::Engine(_)) && disk_low(&self.dir) {
                StorageError::Full
            } else {
                e
            }
        })
    }
}

async fn fsync(engine: Arc<Engine>, mode: PersistMode) -> Result<(), StorageError> {
    tokio::task::spawn_blocking(move || engine.db.persist(mode))
        .await
        .map_err(|e| StorageError::Engine(e.to_string()))?
        .map_err(StorageError::from)
}

/// Waits, without blocking a runtime thread, while the engine's flushes and compactions are
/// behind. fjall throttles a writer that finds 4 sealed memtables or 20 level-0 runs queued by
/// sleeping in the inserting thread (up to 100 ms at a time), which would stall every request on
/// that runtime worker; waiting here first, asynchronously, keeps reads flowing. Bounded: after
/// ~10 s the write goes ahead and fjall throttles it itself.
async fn backpressure(engine: &Engine) {
    for _ in 0..2000 {
        if engine.kv.sealed_memtable_count() < 3 && engine.kv.l0_table_count() < 16 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// `fdatasync` of every fjall journal (`*.jnl`) in the store directory: the active one holds the
/// newest records; a sealed one still listed may hold records not yet flushed to tables (tables
/// are synced by fjall itself, and a journal is deleted only after that).
fn sync_journals(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jnl") {
            match std::fs::File::open(&path) {
                Ok(file) => file.sync_data()?,
                // Deleted since the listing: its records are in synced tables.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn check(pre: Precondition, live: Option<u64>) -> Option<WriteOutcome> {
    let holds = match pre {
        Precondition::None => true,
        Precondition::IfAbsent => live.is_none(),
        Precondition::IfVersion(v) => live == Some(v),
    };
    (!holds).then_some(WriteOutcome::PreconditionFailed(live))
}

/// The version of the key's live value: local if anything is stored here (a tombstone means
/// none), else what the previous owner holds.
fn live_version(local: Option<&Record>, remote: Option<u64>) -> Option<u64> {
    match local {
        Some(r) if r.is_tombstone() => None,
        Some(r) => Some(r.version),
        None => remote,
    }
}

fn decode_key(raw: &[u8]) -> Option<Key> {
    match Key::from_bytes(raw) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(error = %e, "skipping a stored key that is not valid");
            None
        }
    }
}

fn decode_stored(key: &Key, raw: Option<fjall::Slice>) -> Result<Option<Record>, StorageError> {
    match raw {
        None => Ok(None),
        Some(raw) => Record::decode(Bytes::from(raw))
            .map(Some)
            .ok_or_else(|| StorageError::Corrupt(key.to_string())),
    }
}

fn scan(engine: &Engine) -> Result<Totals, StorageError> {
    let mut totals = Totals::default();
    for guard in engine.kv.iter() {
        let (k, v) = guard.into_inner()?;
        let Some(key) = decode_key(&k) else { continue };
        let Some(record) = decode_stored(&key, Some(v))? else {
            continue;
        };
        totals.max_version = totals.max_version.max(record.version);
        if !record.is_tombstone() {
            totals.keys += 1;
            totals.bytes += record.value_len();
        }
    }
    Ok(totals)
}

fn read_floor(engine: &Engine) -> Result<u64, StorageError> {
    Ok(engine
        .meta
        .get(META_CLOCK_FLOOR)?
        .and_then(|v| <[u8; 8]>::try_from(&*v).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Whether the data dir's filesystem is too full to try writing again.
fn disk_low(dir: &Path) -> bool {
    match rustix::fs::statvfs(dir) {
        Ok(s) => s.f_bavail.saturating_mul(s.f_frsize) < MIN_FREE_BYTES_TO_RECOVER,
        Err(_) => false,
    }
}
