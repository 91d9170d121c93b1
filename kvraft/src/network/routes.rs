//! The receiving side: `POST /v1/raft/{append,vote,pre-vote,snapshot,transfer-leader}`, each
//! behind the group, protocol and target check (`guard.rs`) and a body limit (docs/replication.md
//! section 5): appends up to [`MAX_APPEND_BODY`], the small JSON RPCs up to
//! [`MAX_SMALL_BODY`], snapshots unbounded but decoded frame by frame. Authentication is the
//! server's: kvserver mounts these routes behind its peer-token layer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fjall::Database;
use kvproto::wire::ErrorCode;
use openraft::Raft;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::guard::{check, refusal, refuse};
use super::snapshot_stream::{self, SnapshotStreamError};
use super::{
    APPEND_PATH, MAX_APPEND_BODY, MAX_SMALL_BODY, PRE_VOTE_PATH, SNAPSHOT_PATH,
    TRANSFER_LEADER_PATH, VOTE_PATH, append_codec,
};
use crate::apply::ApplyTarget;
use crate::records;
use crate::state_machine::StateMachine;
use crate::types::ShardRaft;

/// What the routes need of the group.
pub(crate) struct RpcState<T: ApplyTarget> {
    pub raft: Raft<ShardRaft, StateMachine<T>>,
    /// `x-kv-raft-group` as this copy expects it.
    pub group: Arc<str>,
    /// This copy's node ID (`x-kv-raft-target`).
    pub node_id: u64,
    pub db: Database,
    /// One snapshot is received at a time; holds the last records generation handed out.
    pub staging: tokio::sync::Mutex<u64>,
    /// A snapshot stream that delivers nothing for this long is refused.
    pub snapshot_idle: Duration,
}

pub(crate) fn router<T: ApplyTarget>(state: Arc<RpcState<T>>) -> Router {
    let guard = (state.group.clone(), state.node_id);
    Router::new()
        .route(
            APPEND_PATH,
            post(append::<T>).layer(DefaultBodyLimit::max(MAX_APPEND_BODY)),
        )
        .route(
            VOTE_PATH,
            post(vote::<T>).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)),
        )
        .route(
            PRE_VOTE_PATH,
            post(pre_vote::<T>).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)),
        )
        .route(
            TRANSFER_LEADER_PATH,
            post(transfer_leader::<T>).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)),
        )
        .route(
            SNAPSHOT_PATH,
            post(snapshot::<T>).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(middleware::from_fn_with_state(guard, guarded))
        .with_state(state)
}

/// The header check, before any body is read.
async fn guarded(State((group, me)): State<(Arc<str>, u64)>, req: Request, next: Next) -> Response {
    match check(req.headers(), &group, me) {
        Ok(()) => next.run(req).await,
        Err(why) => refusal(why),
    }
}

async fn append<T: ApplyTarget>(State(s): State<Arc<RpcState<T>>>, body: Bytes) -> Response {
    let req = match append_codec::decode(body) {
        Ok(req) => req,
        Err(e) => return bad_request(e),
    };
    answer(s.raft.append_entries(req).await)
}

async fn vote<T: ApplyTarget>(State(s): State<Arc<RpcState<T>>>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(req) => answer(s.raft.vote(req).await),
        Err(e) => bad_request(e),
    }
}

async fn pre_vote<T: ApplyTarget>(State(s): State<Arc<RpcState<T>>>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(req) => answer(s.raft.pre_vote(req).await),
        Err(e) => bad_request(e),
    }
}

async fn transfer_leader<T: ApplyTarget>(
    State(s): State<Arc<RpcState<T>>>,
    body: Bytes,
) -> Response {
    match parse(&body) {
        Ok(req) => answer(s.raft.handle_transfer_leader(req).await),
        Err(e) => bad_request(e),
    }
}

async fn snapshot<T: ApplyTarget>(State(s): State<Arc<RpcState<T>>>, body: Body) -> Response {
    let mut last = s.staging.lock().await;
    let generation = records::next_generation(&s.db, &mut last);
    let received =
        match snapshot_stream::receive(&s.db, generation, body.into_data_stream(), s.snapshot_idle)
            .await
        {
            Ok(r) => r,
            Err(SnapshotStreamError::Storage(e)) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::StorageError,
                    e.to_string(),
                );
            }
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadBulkStream,
                    e.to_string(),
                );
            }
        };
    tracing::info!(
        generation,
        last_log_id = ?received.meta.last_log_id,
        "received a snapshot, installing it"
    );
    let snapshot = openraft::Snapshot {
        meta: received.meta,
        snapshot: received.data,
    };
    answer(s.raft.install_full_snapshot(received.vote, snapshot).await)
}

fn parse<R: DeserializeOwned>(body: &[u8]) -> Result<R, serde_json::Error> {
    serde_json::from_slice(body)
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        e.to_string(),
    )
}

/// openraft's answer as JSON; its error (the group stopped on this copy) as a 500.
fn answer<R: Serialize, E: std::fmt::Display>(result: Result<R, E>) -> Response {
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::StorageError,
            format!("the raft group stopped on this copy: {e}"),
        ),
    }
}
