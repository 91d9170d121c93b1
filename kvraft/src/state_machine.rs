//! The state machine on fjall (openraft's `RaftStateMachine`): applies committed entries
//! through the [`ApplyTarget`], one batch per entry holding the record changes and
//! `applied`, the membership, the version floor and the topology (docs/replication.md
//! section 4). The batch needs no sync: the journal is ordered, so an applied batch on disk
//! implies its log entry on disk, and a lost apply is applied again from the log; an entry at
//! or below `applied` is skipped, so a replay is harmless.
//!
//! Versions are decided here, deterministically: `max(version_floor + 1, at_micros)` with the
//! proposer's clock in the entry, so every copy gives a write the same version (and ETag).

use std::io;
use std::sync::Arc;

use fjall::{Database, Keyspace, PersistMode};
use futures::{Stream, StreamExt};
use kvproto::topology::Route;
use kvproto::{Fence, Key, Topology};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use crate::apply::{ApplyTarget, Tx};
use crate::command::{Command, DeleteMode, FenceCheck, Outcome, Routed, WriteOutcome};
use crate::error::StorageError;
use crate::meta::{Meta, name};
use crate::records;
use crate::snapshot::{SnapshotBuilder, SnapshotData, Source, Trailer};
use crate::types::{Entry, LogId, ShardRaft, Snapshot, SnapshotMeta, StoredMembership};

/// Records copied per batch while a snapshot is installed into a fresh generation.
const INSTALL_BATCH: usize = 1000;

/// The applied state besides the records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Applied {
    log_id: Option<LogId>,
    membership: StoredMembership,
    version_floor: u64,
    topology: Option<Topology>,
}

/// One group's state machine over `T`'s records.
pub struct StateMachine<T: ApplyTarget> {
    db: Database,
    meta: Meta,
    generation: u64,
    records: Keyspace,
    /// The shard this copy serves: the misdirection fence and cleanups need it.
    shard: u32,
    applied: Applied,
    target: Arc<T>,
}

impl<T: ApplyTarget> StateMachine<T> {
    pub(crate) fn open(db: &Database, shard: u32, target: Arc<T>) -> Result<Self, StorageError> {
        let meta = Meta::open(db)?;
        let (generation, records) = records::open_current(db, &meta)?;
        let version_floor = match meta.get(name::VERSION_FLOOR)? {
            Some(floor) => floor,
            None => {
                let floor = target.version_floor(&records)?;
                meta.put_synced(name::VERSION_FLOOR, &floor)?;
                floor
            }
        };
        let applied = Applied {
            log_id: meta.get(name::APPLIED)?,
            membership: meta.get(name::MEMBERSHIP)?.unwrap_or_default(),
            version_floor,
            topology: meta.get(name::TOPOLOGY)?,
        };
        target.reset(&records);
        target.topology_applied(applied.topology.as_ref());
        Ok(StateMachine {
            db: db.clone(),
            meta,
            generation,
            records,
            shard,
            applied,
            target,
        })
    }

    /// The keyspace the records are served from now.
    pub fn records(&self) -> &Keyspace {
        &self.records
    }

    pub(crate) fn applied_log_id(&self) -> Option<LogId> {
        self.applied.log_id
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> Option<u64> {
        self.applied.log_id.as_ref().map(|l| l.index)
    }

    /// The version floor: every version applied so far is at or below it.
    pub fn version_floor(&self) -> u64 {
        self.applied.version_floor
    }

    /// The applied topology.
    pub fn topology(&self) -> Option<&Topology> {
        self.applied.topology.as_ref()
    }

    pub(crate) fn apply_entry(&mut self, entry: &Entry) -> Result<Outcome, StorageError> {
        if self
            .applied
            .log_id
            .as_ref()
            .is_some_and(|a| a.index >= entry.log_id.index)
        {
            // Applied before a crash whose log replay brings it again.
            return Ok(Outcome::Noop);
        }
        let mut next = self.applied.clone();
        next.log_id = Some(entry.log_id);
        let mut batch = self.db.batch();
        let (outcome, effects) = match &entry.payload {
            EntryPayload::Blank => (Outcome::Noop, None),
            EntryPayload::Membership(m) => {
                next.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                self.meta
                    .put(&mut batch, name::MEMBERSHIP, &next.membership)?;
                (Outcome::Noop, None)
            }
            EntryPayload::Normal(cmd) => {
                let mut tx = Tx {
                    batch: &mut batch,
                    records: &self.records,
                };
                self.apply_command(cmd, &mut tx, &mut next)?
            }
        };
        self.meta
            .put_opt(&mut batch, name::APPLIED, next.log_id.as_ref())?;
        if next.version_floor != self.applied.version_floor {
            self.meta
                .put(&mut batch, name::VERSION_FLOOR, &next.version_floor)?;
        }
        if next.topology != self.applied.topology {
            self.meta
                .put_opt(&mut batch, name::TOPOLOGY, next.topology.as_ref())?;
        }
        batch.commit()?;
        let topology_changed = next.topology != self.applied.topology;
        self.applied = next;
        if let Some(effects) = effects {
            self.target.committed(effects);
        }
        if topology_changed {
            self.target.topology_applied(self.applied.topology.as_ref());
        }
        Ok(outcome)
    }

    fn apply_command(
        &self,
        cmd: &Command,
        tx: &mut Tx<'_>,
        next: &mut Applied,
    ) -> Result<(Outcome, Option<T::Effects>), StorageError> {
        let target = &self.target;
        Ok(match cmd {
            Command::Put {
                key,
                value,
                precondition,
                at_micros,
                routed,
                remote,
            } => {
                if self.misdirected(key, *routed) {
                    return Ok((Outcome::Misdirected, None));
                }
                let version = next_version(next.version_floor, *at_micros, *remote);
                let (outcome, effects) =
                    target.put(tx, key, value, *precondition, *remote, version)?;
                let outcome = match outcome {
                    WriteOutcome::Written(v) => {
                        next.version_floor = next.version_floor.max(v);
                        Outcome::Written { version: v }
                    }
                    WriteOutcome::NotFound => Outcome::NotFound,
                    WriteOutcome::PreconditionFailed(current) => {
                        Outcome::PreconditionFailed { current }
                    }
                };
                (outcome, Some(effects))
            }
            Command::Delete {
                key,
                precondition,
                at_micros,
                routed,
                remote,
            } => {
                if self.misdirected(key, *routed) {
                    return Ok((Outcome::Misdirected, None));
                }
                let version = next_version(next.version_floor, *at_micros, *remote);
                let mode = match next.topology.as_ref().and_then(|t| t.migration) {
                    Some(_) => DeleteMode::Tombstone,
                    None => DeleteMode::Remove,
                };
                let (outcome, effects) =
                    target.delete(tx, key, *precondition, *remote, version, mode)?;
                let outcome = match outcome {
                    WriteOutcome::Written(v) => {
                        next.version_floor = next.version_floor.max(v);
                        Outcome::Deleted { version: v }
                    }
                    WriteOutcome::NotFound => Outcome::NotFound,
                    WriteOutcome::PreconditionFailed(current) => {
                        Outcome::PreconditionFailed { current }
                    }
                };
                (outcome, Some(effects))
            }
            Command::SetTopology(t) => {
                let checked = match &next.topology {
                    Some(current) => current.check_transition(t),
                    None => t.validate(),
                };
                match checked {
                    Ok(()) => {
                        next.topology = Some(t.clone());
                        (Outcome::TopologySet, None)
                    }
                    Err(e) => (
                        Outcome::TopologyConflict {
                            message: e.to_string(),
                        },
                        None,
                    ),
                }
            }
            Command::Import {
                mode,
                records,
                fence,
            } => {
                if let Some(refused) = fence_refusal(*fence, next.topology.as_ref()) {
                    return Ok((refused, None));
                }
                let (report, effects) = target.import(tx, *mode, records)?;
                // The clock moves past every imported version, applied or skipped.
                let highest = records.iter().map(|r| r.version).max().unwrap_or(0);
                next.version_floor = next.version_floor.max(highest);
                (Outcome::Imported(report), Some(effects))
            }
            Command::Cleanup { fence } => {
                if let Some(refused) = fence_refusal(*fence, next.topology.as_ref()) {
                    return Ok((refused, None));
                }
                self.cleanup(tx, next.topology.as_ref())?
            }
        })
    }

    /// A cleanup whose fence passed: refused while a move runs, else drops what the applied
    /// topology does not give this shard.
    fn cleanup(
        &self,
        tx: &mut Tx<'_>,
        topology: Option<&Topology>,
    ) -> Result<(Outcome, Option<T::Effects>), StorageError> {
        let target = &self.target;
        Ok(match topology {
            None => (Outcome::Cleaned(Default::default()), None),
            // The old owner's keys are still read through during a move: dropping them
            // now would lose them (kvserver's direct path refuses the same).
            Some(t) if t.migration.is_some() => (
                Outcome::TopologyConflict {
                    message: format!(
                        "cleanup refused while migrating (epoch {} is in {})",
                        t.epoch,
                        t.phase_name()
                    ),
                },
                None,
            ),
            Some(t) => {
                let shard = self.shard;
                let owned = |k: &Key| t.owner(k.as_bytes()) == shard;
                let (report, effects) = target.cleanup(tx, &owned)?;
                (Outcome::Cleaned(report), Some(effects))
            }
        })
    }

    /// A write routed under another topology than the applied one, for a key the applied one
    /// does not serve here: applying it could give a moving key two writers.
    fn misdirected(&self, key: &Key, routed: Routed) -> bool {
        match &self.applied.topology {
            None => false,
            Some(t) => {
                Routed::of(t) != routed
                    && !matches!(
                        t.route(self.shard, key.as_bytes(), None),
                        Route::Local { .. }
                    )
            }
        }
    }

    fn trailer(&self) -> Trailer {
        Trailer {
            version_floor: self.applied.version_floor,
            topology: self.applied.topology.clone(),
        }
    }

    fn view(&self) -> (SnapshotMeta, SnapshotData) {
        let meta = SnapshotMeta {
            last_log_id: self.applied.log_id,
            last_membership: self.applied.membership.clone(),
        };
        let data = SnapshotData::view(self.db.snapshot(), self.records.clone(), self.trailer());
        (meta, data)
    }

    /// Flips to `data`'s records in one synced batch: a received snapshot is already in its own
    /// generation; a view is first copied into a fresh one.
    pub(crate) fn install(
        &mut self,
        meta: &SnapshotMeta,
        mut data: SnapshotData,
    ) -> Result<(), StorageError> {
        let staged = match &mut data.source {
            Source::Staged(staged) => staged.take(),
            Source::View { .. } => None,
        };
        let (generation, fresh) = match staged {
            Some((generation, ks)) if generation != self.generation => (generation, ks),
            _ => self.copy_into_fresh_generation(&data)?,
        };
        let next = Applied {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
            version_floor: data.trailer.version_floor,
            topology: data.trailer.topology.clone(),
        };
        let mut flip = self.db.batch();
        self.meta.put(&mut flip, name::RECORDS_GEN, &generation)?;
        self.meta
            .put_opt(&mut flip, name::APPLIED, next.log_id.as_ref())?;
        self.meta
            .put(&mut flip, name::MEMBERSHIP, &next.membership)?;
        self.meta
            .put(&mut flip, name::VERSION_FLOOR, &next.version_floor)?;
        self.meta
            .put_opt(&mut flip, name::TOPOLOGY, next.topology.as_ref())?;
        self.meta.put(&mut flip, name::SNAPSHOT, meta)?;
        flip.commit()?;
        self.db.persist(PersistMode::SyncAll)?;
        let old = std::mem::replace(&mut self.records, fresh);
        self.generation = generation;
        self.applied = next;
        self.db.delete_keyspace(old)?;
        self.target.reset(&self.records);
        self.target.topology_applied(self.applied.topology.as_ref());
        Ok(())
    }

    fn copy_into_fresh_generation(
        &self,
        data: &SnapshotData,
    ) -> Result<(u64, Keyspace), StorageError> {
        let generation = records::highest(&self.db).max(self.generation) + 1;
        let fresh = records::open_keyspace(&self.db, generation)?;
        let mut batch = self.db.batch();
        for (i, record) in data.records().enumerate() {
            let (k, v) = record?;
            batch.insert(&fresh, k, v);
            if (i + 1) % INSTALL_BATCH == 0 {
                std::mem::replace(&mut batch, self.db.batch()).commit()?;
            }
        }
        batch.commit()?;
        Ok((generation, fresh))
    }
}

/// The version a write gets: above the floor and the proposer's clock, and above the previous
/// owner's version of the key, so a key's version never goes back across a move.
fn next_version(floor: u64, at_micros: u64, remote: Option<u64>) -> u64 {
    let above_remote = remote.map_or(0, |r| r.saturating_add(1));
    floor.saturating_add(1).max(at_micros).max(above_remote)
}

/// The answer to an import or cleanup whose fence the applied topology does not admit (the
/// same rule the leader checked before proposing: every copy now decides alike).
fn fence_refusal(fence: FenceCheck, applied: Option<&Topology>) -> Option<Outcome> {
    match fence {
        FenceCheck::OnLeaderOnly => None,
        FenceCheck::AtApply(fence) => {
            Fence::admits(fence.as_ref(), applied)
                .err()
                .map(|e| Outcome::Fenced {
                    message: e.to_string(),
                })
        }
    }
}

impl<T: ApplyTarget> RaftStateMachine<ShardRaft> for StateMachine<T> {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied.log_id, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<ShardRaft>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let outcome = self.apply_entry(&entry)?;
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            meta_store: self.meta.clone(),
            snapshot: Some(self.view()),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        Ok(self.install(meta, snapshot)?)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<SnapshotData>>, io::Error> {
        let built: Option<SnapshotMeta> = self.meta.get(name::SNAPSHOT)?;
        if built.is_none() {
            return Ok(None);
        }
        let (meta, snapshot) = self.view();
        Ok(Some(openraft::Snapshot { meta, snapshot }))
    }
}
