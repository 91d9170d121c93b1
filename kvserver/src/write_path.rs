//! The one seam every change to the shard goes through: data writes, imports, cleanups and
//! topology pushes. A server with no group writes to its own store directly ([`Via::Local`],
//! exactly the code path of before: no allocation, no extra await). A replicated shard's copy
//! proposes a `kvraft::Command` to its group instead ([`Via::Group`]) and answers with the
//! outcome apply computed once the entry is committed on a quorum: never before.
//!
//! A group's refusals: not the leader (nothing proposed) is [`Error::NotLeader`] (the caller
//! forwards) or [`Error::NoLeader`] (503 `no_leader`); a proposal whose commit was not observed
//! is [`Error::OutcomeUnknown`] (504).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use kvproto::{Fence, Key, Topology};
use kvraft::{Command, FenceCheck, Outcome, Routed, ShardGroup, WriteError};

use crate::error::{Error, Result};
use crate::group_start;
use crate::state::AppState;
use crate::storage::{DeleteMode, Precondition, StorageError, Store, WriteOutcome};
use crate::topology_file;

use crate::raft_node::Via;

/// Records per import entry, and bytes (a larger record goes alone): kvraft cuts appends by
/// bytes, these keep one entry's work and its decode small.
const IMPORT_ENTRY_RECORDS: usize = 1000;
const IMPORT_ENTRY_BYTES: usize = 1 << 20;
/// How often a leader without a confirmed lease is asked again.
const LEASE_POLL: Duration = Duration::from_millis(20);

/// Writes `value` under `key` if `pre` holds (`remote`: the previous owner's live version).
#[inline]
pub async fn put(
    state: &AppState,
    key: &Key,
    value: Bytes,
    pre: Precondition,
    remote: Option<u64>,
) -> Result<WriteOutcome> {
    match state.raft.via() {
        Via::Local => Ok(state.store.put(key, value, pre, remote).await?),
        Via::Group(g) => {
            fits_the_log(value.len())?;
            // The precondition, and `remote`, are judged at apply (on every copy alike).
            let cmd = Command::Put {
                key: key.clone(),
                value,
                precondition: pre,
                at_micros: state.store.version_stamp(),
                routed: routed(state),
                remote,
            };
            written(propose(g, cmd).await?)
        }
    }
}

/// Deletes `key` if `pre` holds, leaving a tombstone in `mode` `Tombstone` (on a group, apply
/// decides the mode from the applied topology).
#[inline]
pub async fn delete(
    state: &AppState,
    key: &Key,
    pre: Precondition,
    mode: DeleteMode,
    remote: Option<u64>,
) -> Result<WriteOutcome> {
    match state.raft.via() {
        Via::Local => Ok(state.store.delete(key, pre, mode, remote).await?),
        Via::Group(g) => {
            let cmd = Command::Delete {
                key: key.clone(),
                precondition: pre,
                at_micros: state.store.version_stamp(),
                routed: routed(state),
                remote,
            };
            written(propose(g, cmd).await?)
        }
    }
}

/// Applies a decoded import batch (on a group: entries of at most [`IMPORT_ENTRY_RECORDS`]
/// records and about [`IMPORT_ENTRY_BYTES`], one after the other, reports summed). `fence` is
/// the move step the request was sent for, which the caller has checked under the topology
/// gate; a group judges it again at apply, on every copy.
pub async fn import(
    state: &AppState,
    records: Vec<BulkRecord>,
    mode: ImportMode,
    fence: Option<Fence>,
) -> Result<ImportReport> {
    match state.raft.via() {
        Via::Local => Ok(state.store.import(records, mode).await?),
        Via::Group(g) => {
            for r in &records {
                fits_the_log(r.value.as_ref().map_or(0, Bytes::len))?;
            }
            let mut total = ImportReport::default();
            let fence = FenceCheck::AtApply(fence);
            for records in import_entries(records) {
                let cmd = Command::Import {
                    mode,
                    records,
                    fence,
                };
                match propose(g, cmd).await? {
                    Outcome::Imported(r) => {
                        total.applied += r.applied;
                        total.skipped += r.skipped;
                    }
                    // Fenced between two entries (the move went on): the entries before it
                    // stay, as a batch cut short on the direct path would be sent again.
                    Outcome::Fenced { message } => return Err(Error::Fenced(message)),
                    other => return Err(unexpected(&other)),
                }
            }
            Ok(total)
        }
    }
}

/// Drops every tombstone and every key `owned` refuses (on a group: every key the applied
/// topology does not give this shard, decided at apply, with `fence` judged there too;
/// refused during a migration).
pub async fn cleanup(
    state: &AppState,
    owned: impl Fn(&Key) -> bool + Send + 'static,
    fence: Option<Fence>,
) -> Result<CleanupReport> {
    match state.raft.via() {
        Via::Local => Ok(state.store.cleanup(owned).await?),
        Via::Group(g) => {
            let cmd = Command::Cleanup {
                fence: FenceCheck::AtApply(fence),
            };
            match propose(g, cmd).await? {
                Outcome::Cleaned(report) => Ok(report),
                Outcome::Fenced { message } => Err(Error::Fenced(message)),
                Outcome::TopologyConflict { message } => Err(Error::TopologyConflict(message)),
                other => Err(unexpected(&other)),
            }
        }
    }
}

/// Makes `next` the topology served, if it is a valid step from the current one: persisted
/// first, then served. Answers the topology in force.
pub async fn set_topology(state: &AppState, next: Topology) -> Result<Topology> {
    match state.raft.via() {
        Via::Local => set_topology_locally(state, next).await,
        Via::Group(g) => set_topology_through(state, g, next).await,
    }
}

async fn set_topology_locally(state: &AppState, next: Topology) -> Result<Topology> {
    let _one_at_a_time = state.topology_gate.write().await;
    match state.topology() {
        Some(current) => current
            .check_transition(&next)
            .map_err(|e| Error::TopologyConflict(e.to_string()))?,
        None => next
            .validate()
            .map_err(|e| Error::BadRequest(e.to_string()))?,
    }
    if state.topology().is_some_and(|t| *t == next) {
        return Ok(next);
    }
    let path = state.topology_path.clone();
    let to_save = next.clone();
    tokio::task::spawn_blocking(move || topology_file::save(&path, &to_save))
        .await
        .map_err(|e| StorageError::Engine(e.to_string()))??;
    tracing::info!(
        epoch = next.epoch,
        phase = next.phase_name(),
        shards = next.shards,
        "topology accepted"
    );
    state.set_topology(next.clone());
    Ok(next)
}

/// A `SetTopology` entry: apply checks the transition against the applied topology on every
/// copy; once it answers, this copy serves it (the others when they apply it).
async fn set_topology_through(
    state: &AppState,
    g: &ShardGroup<Store>,
    next: Topology,
) -> Result<Topology> {
    let _one_at_a_time = state.topology_gate.write().await;
    if state.topology().is_none() {
        // A first map that is not valid is the request's fault, as on the direct path.
        next.validate()
            .map_err(|e| Error::BadRequest(e.to_string()))?;
    }
    match propose(g, Command::SetTopology(next.clone())).await? {
        Outcome::TopologySet => {
            group_start::adopt_applied_topology(state).await?;
            tracing::info!(
                epoch = next.epoch,
                phase = next.phase_name(),
                shards = next.shards,
                "topology committed"
            );
            Ok(next)
        }
        Outcome::TopologyConflict { message } => Err(Error::TopologyConflict(message)),
        other => Err(unexpected(&other)),
    }
}

/// Proposes `cmd` and waits for its applied outcome. A leader whose lease no quorum has
/// confirmed yet (just elected, before its first heartbeat round) proposes nothing and names
/// no leader: it is asked again until the lease holds or it stops leading, two election
/// timeouts at most.
async fn propose(g: &ShardGroup<Store>, cmd: Command) -> Result<Outcome> {
    let until = Instant::now() + g.election_timeout_max() * 2;
    loop {
        match g.write(cmd.clone()).await {
            Err(WriteError::NoLeader | WriteError::NotLeader { leader: None })
                if g.is_leader() && Instant::now() < until =>
            {
                tokio::time::sleep(LEASE_POLL).await;
            }
            answer => return answer.map_err(refusal),
        }
    }
}

/// A write's refusal as an answer.
fn refusal(e: WriteError) -> Error {
    match e {
        WriteError::NotLeader {
            leader: Some(leader),
        } => Error::NotLeader(leader),
        WriteError::NotLeader { leader: None } | WriteError::NoLeader => Error::NoLeader,
        // Proposed, commit not observed: never answered as a success.
        WriteError::OutcomeUnknown => Error::OutcomeUnknown,
        WriteError::Fatal(why) => {
            tracing::warn!(error = %why, "the raft group stopped under a write");
            Error::OutcomeUnknown
        }
    }
}

/// A key write's outcome as the handlers know it.
fn written(outcome: Outcome) -> Result<WriteOutcome> {
    match outcome {
        Outcome::Written { version } | Outcome::Deleted { version } => {
            Ok(WriteOutcome::Written(version))
        }
        Outcome::NotFound => Ok(WriteOutcome::NotFound),
        Outcome::PreconditionFailed { current } => Ok(WriteOutcome::PreconditionFailed(current)),
        Outcome::Misdirected => Err(Error::Misdirected),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(outcome: &Outcome) -> Error {
    Error::Raft(format!("unexpected outcome {outcome:?}"))
}

/// The stamp of the topology this leader routed by.
fn routed(state: &AppState) -> Routed {
    state.topology().map(|t| Routed::of(&t)).unwrap_or_default()
}

/// A value a group's log can hold (copy 0 joins a group whatever its `--max-value-bytes`; the
/// copies with flags refuse a larger one at start): 413 before anything is proposed.
fn fits_the_log(len: usize) -> Result<()> {
    let limit = kvraft::codec::MAX_VALUE_BYTES;
    if len > limit {
        return Err(Error::ValueTooLarge { len, limit });
    }
    Ok(())
}

/// Splits an import into entries small enough for one append.
fn import_entries(records: Vec<BulkRecord>) -> Vec<Vec<BulkRecord>> {
    let mut entries = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0usize);
    for record in records {
        let size = record.key.as_bytes().len() + record.value.as_ref().map_or(0, Bytes::len) + 16;
        if !current.is_empty()
            && (current.len() == IMPORT_ENTRY_RECORDS || bytes + size > IMPORT_ENTRY_BYTES)
        {
            entries.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(record);
    }
    if !current.is_empty() {
        entries.push(current);
    }
    entries
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(i: usize, value_bytes: usize) -> BulkRecord {
        BulkRecord {
            key: Key::new(format!("k{i}")).unwrap(),
            version: 1,
            value: Some(Bytes::from(vec![0u8; value_bytes])),
        }
    }

    #[test]
    fn imports_are_split_by_records_and_by_bytes_in_order() {
        let many: Vec<BulkRecord> = (0..2500).map(|i| record(i, 1)).collect();
        let sizes: Vec<usize> = import_entries(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);

        let big: Vec<BulkRecord> = (0..5).map(|i| record(i, 600 << 10)).collect();
        let entries = import_entries(big);
        assert_eq!(entries.len(), 5, "two 600 KiB values exceed an entry");
        let keys: Vec<String> = entries
            .iter()
            .flatten()
            .map(|r| r.key.as_str().to_owned())
            .collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
        assert!(import_entries(Vec::new()).is_empty());
    }
}
