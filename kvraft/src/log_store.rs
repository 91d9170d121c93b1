//! The Raft log on fjall (openraft's `RaftLogStorage` and `RaftLogReader`): entries in
//! `raft_log` keyed by index, vote, committed and last-purged ids in `raft_meta`, all in the
//! database the records live in, so one journal orders them (docs/replication.md section 4).
//!
//! Durability: an append is readable when `append` returns and reported flushed (by the
//! flush thread, `flusher.rs`) only after its journal write reached the OS (`--sync batch`)
//! or the disk (`--sync always`); a vote is always synced to disk before `save_vote`
//! returns, whatever the mode, since a forgotten vote can elect two leaders in one term.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use crate::entry_codec;
use crate::error::StorageError;
use crate::flusher::Flusher;
use crate::meta::{LOG_KEYSPACE, Meta, name};
use crate::types::{Entry, LogId, ShardRaft, Vote};

/// When an appended entry counts as durable (kvserver's `--sync`; `never` is refused with
/// replication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Written to the journal and synced to disk before the append is reported.
    Always,
    /// Written to the journal and handed to the OS; the server syncs on an interval.
    #[default]
    Batch,
}

impl Durability {
    fn persist_mode(self) -> PersistMode {
        match self {
            Durability::Always => PersistMode::SyncData,
            Durability::Batch => PersistMode::Buffer,
        }
    }
}

/// The most entry bytes (as framed in an append body) one read for replication returns; the
/// rest waits for the next append. With one entry at the codec's largest on top (it always
/// goes, alone if need be), a body stays well under the receiver's limit
/// (`network::MAX_APPEND_BODY`), whatever `--max-value-bytes` is.
pub(crate) const APPEND_ENTRY_BYTES: usize = 16 << 20;
/// What an append body adds per entry: its index and length.
const APPEND_FRAME_BYTES: usize = 12;

/// The log of one group (cheap to clone: handles into the database).
#[derive(Clone)]
pub struct LogStore {
    db: Database,
    log: Keyspace,
    meta: Meta,
    durability: Durability,
    flusher: Flusher,
}

impl LogStore {
    pub(crate) fn open(db: &Database, durability: Durability) -> Result<LogStore, StorageError> {
        Ok(LogStore {
            db: db.clone(),
            log: db.keyspace(LOG_KEYSPACE, KeyspaceCreateOptions::default)?,
            meta: Meta::open(db)?,
            durability,
            flusher: Flusher::start(db, durability.persist_mode())?,
        })
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last_key_value() {
            None => Ok(None),
            Some(guard) => {
                let (k, v) = guard.into_inner()?;
                let index = entry_codec::index_of(&k)?;
                Ok(Some(entry_codec::decode(index, &v)?.log_id))
            }
        }
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => match s.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) if e < start => return Ok(Vec::new()),
            Bound::Excluded(&e) if e <= start => return Ok(Vec::new()),
            Bound::Included(&e) => Bound::Included(entry_codec::key(e)),
            Bound::Excluded(&e) => Bound::Excluded(entry_codec::key(e)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for guard in self
            .log
            .range((Bound::Included(entry_codec::key(start)), end))
        {
            let (k, v) = guard.into_inner()?;
            out.push(entry_codec::decode(entry_codec::index_of(&k)?, &v)?);
        }
        Ok(out)
    }

    /// The entries from `start` up to `end` (exclusive) that fit [`APPEND_ENTRY_BYTES`]
    /// together, counted before decoding: at least the first, so replication always moves.
    fn entries_for_append(&self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        for guard in self
            .log
            .range(entry_codec::key(start)..entry_codec::key(end))
        {
            let (k, v) = guard.into_inner()?;
            let size = v.len() + APPEND_FRAME_BYTES;
            if !out.is_empty() && bytes + size > APPEND_ENTRY_BYTES {
                break;
            }
            bytes += size;
            out.push(entry_codec::decode(entry_codec::index_of(&k)?, &v)?);
        }
        Ok(out)
    }

    /// Forgets the whole log and the vote, as if purged up to `applied`: what a copy does when
    /// it no longer trusts its log (the boot guard) and rejoins as a new node. The state
    /// machine, a prefix of the committed log, is kept; the leader sends what follows it.
    pub(crate) fn forget(&self, applied: Option<LogId>) -> Result<(), StorageError> {
        let meta = self.meta.clone();
        self.remove_range(Bound::Unbounded, Bound::Unbounded, |batch| {
            meta.remove(batch, name::VOTE);
            meta.remove(batch, name::COMMITTED);
            meta.put_opt(batch, name::LAST_PURGED, applied.as_ref())
        })?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Removes `[from, to)` of the log in one batch, with `extra` meta changes.
    fn remove_range(
        &self,
        from: Bound<u64>,
        to: Bound<u64>,
        extra: impl FnOnce(&mut fjall::OwnedWriteBatch) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        // A batch's durability persists the journal under its lock, before the change is
        // visible, so nothing reads a removal that a crash could undo.
        let mut batch = self
            .db
            .batch()
            .durability(Some(self.durability.persist_mode()));
        let from = from.map(entry_codec::key);
        let to = to.map(entry_codec::key);
        for guard in self.log.range((from, to)) {
            let k = guard.key()?;
            batch.remove(&self.log, k);
        }
        extra(&mut batch)?;
        batch.commit()?;
        Ok(())
    }
}

impl RaftLogReader<ShardRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.entries(range)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.meta.get(name::VOTE)?)
    }

    /// What replication sends in one append: cut by bytes as well as by openraft's count.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.entries_for_append(start, end)?)
    }
}

impl RaftLogStorage<ShardRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ShardRaft>, io::Error> {
        let last_purged: Option<LogId> = self.meta.get(name::LAST_PURGED)?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        self.meta.put(&mut batch, name::VOTE, vote)?;
        batch.commit().map_err(StorageError::from)?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut batch = self.db.batch();
        match &committed {
            Some(c) => self.meta.put(&mut batch, name::COMMITTED, c)?,
            None => self.meta.remove(&mut batch, name::COMMITTED),
        }
        batch.commit().map_err(StorageError::from)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.meta.get(name::COMMITTED)?)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<ShardRaft>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Committed without a sync: readable at once, durable when the flusher reports it.
        let mut batch = self.db.batch();
        for entry in entries {
            batch.insert(
                &self.log,
                entry_codec::key(entry.log_id.index),
                entry_codec::encode(&entry)?,
            );
        }
        let result = batch
            .commit()
            .map_err(|e| io::Error::from(StorageError::from(e)));
        match result {
            Ok(()) => {
                self.flusher.flush(callback);
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match &last_log_id {
            Some(id) => Bound::Excluded(id.index),
            None => Bound::Unbounded,
        };
        Ok(self.remove_range(from, Bound::Unbounded, |_| Ok(()))?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The records applied up to here were written without a sync: make them durable before
        // the entries that could replay them are gone.
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(StorageError::from)?;
        let meta = self.meta.clone();
        let upto = log_id.index;
        Ok(
            self.remove_range(Bound::Unbounded, Bound::Included(upto), |batch| {
                meta.put(batch, name::LAST_PURGED, &log_id)
            })?,
        )
    }
}
