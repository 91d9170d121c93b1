//! The Raft RPCs between copies (`POST /v1/raft/*`, kvraft's routes with their body limits and
//! group/protocol check) on the data port, behind the peer token (as peer forwarding). A server
//! that runs no group (factor 1, or copy 0 before its init) answers 409 `raft_group_mismatch`:
//! the sender's group is not here, and openraft backs off from a peer that refuses.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::error::Error;
use crate::state::AppState;

/// The path the RPC routes are mounted under.
pub const RPC_ROUTES: &str = "/v1/raft/{*rest}";

pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    match state.raft.rpc_routes() {
        Some(routes) => match routes.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        None => Error::RaftGroupMismatch(
            "this server runs no raft group (a shard with one copy, or a copy not formed yet)"
                .to_owned(),
        )
        .into_response(),
    }
}
