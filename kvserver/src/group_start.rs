//! Bringing this copy's Raft group up inside the server: at boot (by the flags, or a persisted
//! init on copy 0) and at `POST /v1/admin/raft/init`; and from then on the topology served
//! follows the one the group applied (topology pushes are `SetTopology` entries), so every copy
//! of the shard routes by the same map, and a restart serves it from `topology.json` at once.

use std::sync::Arc;

use kvproto::Topology;
use kvraft::{Command, Outcome, ShardGroup};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::raft_node::PeerNet;
use crate::state::AppState;
use crate::storage::{StorageError, Store};
use crate::topology_file;

/// How the group reaches its peers: through the server's peer client, so a rotated peer token
/// or CA reaches the group's RPCs too.
pub fn peer_net(state: &AppState) -> PeerNet {
    Arc::new(state.peers.clone())
}

/// Starts the group this copy belongs to, if any, before the server listens.
pub async fn at_boot(state: &AppState, stop: &CancellationToken) -> anyhow::Result<()> {
    if state
        .raft
        .start_at_boot(peer_net(state))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the raft group: {e}"))?
    {
        follow_applied_topology(state.clone(), stop.clone());
    }
    Ok(())
}

/// Keeps the served topology on the applied one until `stop`.
pub fn follow_applied_topology(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut applied = state.store.applied_topology();
        loop {
            // What is applied now, then each change (adoption reads the latest itself).
            applied.borrow_and_update();
            if let Err(e) = adopt_applied_topology(&state).await {
                tracing::warn!(error = %e, "cannot serve the topology the group applied");
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                () = stop.cancelled() => return,
            }
        }
    });
}

/// Serves the topology the group applied last, if it is not the one served: saved to
/// `topology.json` first, as a push on the direct path. Adoptions run one at a time, each
/// reading the latest, so an older map never replaces a newer one.
pub async fn adopt_applied_topology(state: &AppState) -> Result<()> {
    let _one = state.topology_adoption.lock().await;
    let Some(applied) = state.store.applied_topology().borrow().clone() else {
        return Ok(());
    };
    if state.topology().as_deref() == Some(&*applied) {
        return Ok(());
    }
    let path = state.topology_path.clone();
    let to_save: Arc<Topology> = applied.clone();
    tokio::task::spawn_blocking(move || topology_file::save(&path, &to_save))
        .await
        .map_err(|e| StorageError::Engine(e.to_string()))??;
    tracing::info!(
        epoch = applied.epoch,
        phase = applied.phase_name(),
        "serving the topology the raft group applied"
    );
    state.set_topology((*applied).clone());
    Ok(())
}

/// After an init on a store that already serves a topology (factor 1 converted): its group's
/// log carries that topology too, so the copies that join learn it and apply routes by it.
pub async fn seed_topology(state: &AppState, g: &ShardGroup<Store>) -> Result<()> {
    let Some(served) = state.topology() else {
        return Ok(());
    };
    if !g.is_leader() || state.store.applied_topology().borrow().is_some() {
        return Ok(());
    }
    match g.write(Command::SetTopology((*served).clone())).await {
        Ok(Outcome::TopologySet) => Ok(()),
        Ok(other) => Err(Error::Raft(format!(
            "the served topology was refused by the group: {other:?}"
        ))),
        Err(e) => Err(Error::Raft(format!(
            "the served topology did not reach the group: {e}"
        ))),
    }
}
