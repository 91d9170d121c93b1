//! The one seam every change to the shard goes through: data writes, imports, cleanups and
//! topology pushes. Today every server writes to its own store directly ([`Via::Local`],
//! exactly the code path of before: no allocation, no extra await). A replicated shard's copy
//! will instead propose a `kvraft::Command` to its group and answer with the applied outcome
//! (phase 4b adds `Via::Group`, from the running group `raft_node.rs` holds); the handlers do
//! not change then.

use bytes::Bytes;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use kvproto::{Key, Topology};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::storage::{DeleteMode, Precondition, StorageError, WriteOutcome};
use crate::topology_file;

use crate::raft_node::Via;

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
    }
}

/// Deletes `key` if `pre` holds, leaving a tombstone in `mode` `Tombstone`.
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
    }
}

/// Applies a decoded import batch.
pub async fn import(
    state: &AppState,
    records: Vec<BulkRecord>,
    mode: ImportMode,
) -> Result<ImportReport> {
    match state.raft.via() {
        Via::Local => Ok(state.store.import(records, mode).await?),
    }
}

/// Drops every tombstone and every key `owned` refuses.
pub async fn cleanup(
    state: &AppState,
    owned: impl Fn(&Key) -> bool + Send + 'static,
) -> Result<CleanupReport> {
    match state.raft.via() {
        Via::Local => Ok(state.store.cleanup(owned).await?),
    }
}

/// Makes `next` the topology served, if it is a valid step from the current one: persisted
/// first, then served. Answers the topology in force.
pub async fn set_topology(state: &AppState, next: Topology) -> Result<Topology> {
    match state.raft.via() {
        Via::Local => set_topology_locally(state, next).await,
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
