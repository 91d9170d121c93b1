//! The management routes of a replicated shard's group (`kvproto::raft_admin`), behind the
//! admin token. Before a group runs here, only the status: the copy's node ID (created on the
//! volume at the first call), its group by the flags (none on copy 0), state `learner` and no
//! members, which is how the operator learns a new copy's ID.

use axum::Json;
use axum::extract::State;
use kvproto::raft::RaftStatus;

use crate::error::{Error, Result};
use crate::state::AppState;

/// `GET /v1/admin/raft/status`.
pub async fn status(State(state): State<AppState>) -> Result<Json<RaftStatus>> {
    let node = state.raft.clone();
    // The first call may create the volume's raft state (synced writes).
    let status = tokio::task::spawn_blocking(move || node.status())
        .await
        .map_err(|e| Error::Raft(e.to_string()))??;
    Ok(Json(status))
}
