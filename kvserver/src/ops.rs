//! Probes and metrics.
//!
//! `/healthz` is liveness (the process answers). `/readyz` fails while draining, under
//! `--require-topology` until a topology is persisted, or while the storage engine is not open
//! (a full disk does not fail it: reads still work there), and on a copy running a Raft group
//! while it is not in sync (`RaftNode::not_ready`: the leader, or a voter following a known
//! leader that applied what it knows committed, is). Draining starts on SIGTERM (see
//! `server`), never over HTTP: the ops port takes no action.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if state.awaits_topology() {
        (StatusCode::SERVICE_UNAVAILABLE, "no topology yet")
    } else if !state.store.is_open() {
        (StatusCode::SERVICE_UNAVAILABLE, "storage not open")
    } else if let Some(why) = state.raft.not_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, why)
    } else {
        (StatusCode::OK, "ready")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
