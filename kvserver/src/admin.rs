//! Admin routes, all behind the bearer token (the router's `access::require_admin` layer): topology pushes (persisted before the answer),
//! bulk export and import for migrations, cleanup after one, and the local-only read that
//! read-through uses. On a replicated copy the writes go to the leader and the reads used by a
//! move (export, its count, the read-through) are the leader's, after a read barrier.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kvproto::bulk::{BulkCodec, CONTENT_TYPE as BULK_CONTENT_TYPE};
use kvproto::wire::path::INTERNAL_KEYS_PREFIX;
use kvproto::wire::{ErrorBody, ErrorCode, ExportCount, ImportMode};
use kvproto::{Fence, FencedPhase, Topology};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::etag_header;
use crate::keys;
use crate::replica::{self, Forwardable, Need};
use crate::state::AppState;
use crate::storage::StorageError;
use crate::v1::read_limited;
use crate::write_path;

pub async fn put_topology(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let next: Topology = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("body is not a Topology: {e}")))?;
    let req = admin_request(Method::PUT, &uri, &headers, body);
    let state = &state;
    replica::serve(state, req, Need::Write, move |_| async move {
        Ok(Json(write_path::set_topology(state, next).await?).into_response())
    })
    .await
}

/// An admin write as a replicated copy that does not lead sends it on (with the caller's token).
fn admin_request<'a>(
    method: Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: Bytes,
) -> Forwardable<'a> {
    Forwardable {
        method,
        uri,
        headers,
        body,
        read_through: None,
        admin: true,
        streamed: false,
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    All,
    /// Only keys another shard owns under the current topology.
    Moving,
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    scope: Scope,
}

/// Which keys an export of `scope` sends from this shard under its current topology.
fn export_filter(
    scope: Scope,
    topology: Option<std::sync::Arc<Topology>>,
    me: u32,
) -> impl Fn(&kvproto::Key) -> bool {
    move |key| match (scope, &topology) {
        (Scope::All, _) => true,
        (Scope::Moving, Some(t)) => t.owner(key.as_bytes()) != me,
        (Scope::Moving, None) => false,
    }
}

/// How many records an export of the query's scope would stream. On a replicated copy, the
/// leader's count after a read barrier (a follower forwards): never a stale copy's.
pub async fn export_count(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let req = admin_request(Method::GET, &uri, &headers, Bytes::new());
    let state = &state;
    replica::serve(state, req, Need::Read, move |_| async move {
        let keep = export_filter(q.scope, state.topology(), state.shard);
        let store = state.store.clone();
        let records = tokio::task::spawn_blocking(move || store.count(keep))
            .await
            .map_err(|e| StorageError::Engine(e.to_string()))??;
        Ok(Json(ExportCount { records }).into_response())
    })
    .await
}

/// The records of the query's scope as a bulk stream. On a replicated copy, the leader's
/// records after a read barrier (the engine's view is taken after it), passed back as they
/// come by a follower: never a stale copy's.
pub async fn export(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let req = Forwardable {
        streamed: true,
        ..admin_request(Method::GET, &uri, &headers, Bytes::new())
    };
    let state = &state;
    replica::serve(state, req, Need::Read, move |_| async move {
        Ok(export_here(state, q.scope))
    })
    .await
}

fn export_here(state: &AppState, scope: Scope) -> Response {
    let keep = export_filter(scope, state.topology(), state.shard);
    let store = state.store.clone();
    let (tx, rx) = mpsc::channel::<std::result::Result<Bytes, StorageError>>(8);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.export(keep, &tx) {
            tracing::warn!(error = %e, "export failed; the stream ends without a trailer");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, BULK_CONTENT_TYPE)],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    mode: ImportMode,
    #[serde(flatten)]
    fence: FenceQuery,
}

/// A move's fence in a query string: `epoch` and `phase` together, or neither.
#[derive(Debug, Deserialize, Default)]
pub struct FenceQuery {
    epoch: Option<String>,
    phase: Option<FencedPhase>,
}

impl FenceQuery {
    fn fence(&self) -> Result<Option<Fence>> {
        match (&self.epoch, self.phase) {
            (None, None) => Ok(None),
            (Some(epoch), Some(phase)) => {
                let epoch = epoch
                    .parse()
                    .map_err(|_| Error::BadRequest(format!("epoch {epoch:?} is not a number")))?;
                Ok(Some(Fence { epoch, phase }))
            }
            _ => Err(Error::BadRequest(
                "a fence needs both `epoch` and `phase`".to_owned(),
            )),
        }
    }
}

/// Holds the topology gate for reading and checks `fence` against the topology: the request
/// may write until the guard drops, and no topology push lands meanwhile.
async fn admit(
    state: &AppState,
    fence: Option<Fence>,
) -> Result<tokio::sync::RwLockReadGuard<'_, ()>> {
    let gate = state.topology_gate.read().await;
    Fence::admits(fence.as_ref(), state.topology().as_deref())
        .map_err(|e| Error::Fenced(e.to_string()))?;
    Ok(gate)
}

pub async fn import(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response> {
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let fence = q.fence.fence()?;
    // Refused before the body is read when the move is already over.
    Fence::admits(fence.as_ref(), state.topology().as_deref())
        .map_err(|e| Error::Fenced(e.to_string()))?;
    // Held until the records are applied: bodies waiting for the store count too.
    let budget = state.import_budget.reserve(&headers).await?;
    let bytes = read_limited(body, &headers, budget.limit)
        .await
        .map_err(|e| match e {
            Error::ValueTooLarge { len, limit } => Error::ImportTooLarge {
                len,
                limit,
                flag: if limit < state.max_import_bytes {
                    "--import-budget-bytes"
                } else {
                    "--max-import-bytes"
                },
            },
            other => other,
        })?;
    // Decoded and validated whole before anything is applied; the values are views into the
    // body, which is held once.
    let records = BulkCodec::decode_bytes(&bytes, state.max_value_bytes)?;
    let req = admin_request(Method::POST, &uri, &headers, bytes);
    let (state, mode) = (&state, q.mode);
    replica::serve(state, req, Need::Write, move |_| async move {
        let _admitted = admit(state, fence).await?;
        let report = write_path::import(state, records, mode, fence).await?;
        tracing::info!(
            applied = report.applied,
            skipped = report.skipped,
            ?mode,
            "import applied"
        );
        Ok(Json(report).into_response())
    })
    .await
}

pub async fn cleanup(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<FenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let fence = q.fence()?;
    let req = admin_request(Method::POST, &uri, &headers, Bytes::new());
    let state = &state;
    replica::serve(state, req, Need::Write, move |_| cleanup_here(state, fence)).await
}

async fn cleanup_here(state: &AppState, fence: Option<Fence>) -> Result<Response> {
    let _admitted = admit(state, fence).await?;
    let topology = state.topology();
    if let Some(t) = &topology
        && t.migration.is_some()
    {
        return Err(Error::TopologyConflict(format!(
            "cleanup refused while migrating (epoch {} is in {})",
            t.epoch,
            t.phase_name()
        )));
    }
    let me = state.shard;
    let owned = move |key: &kvproto::Key| {
        topology
            .as_ref()
            .is_none_or(|t| t.owner(key.as_bytes()) == me)
    };
    let report = write_path::cleanup(state, owned, fence).await?;
    tracing::info!(
        removed_keys = report.removed_keys,
        removed_tombstones = report.removed_tombstones,
        "cleanup done"
    );
    Ok(Json(report).into_response())
}

/// The read-through of a new owner: this shard's own record, no routing, no read-through.
/// 410 marks a tombstone. On a replicated copy, the leader's record after a read barrier (a
/// follower forwards), so a move never reads a copy that has not applied the latest writes.
pub async fn internal_get(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    let key = keys::key_after(&uri, INTERNAL_KEYS_PREFIX)?;
    // Sent on with the peer token, as the read-through itself was.
    let req = Forwardable::get(&uri, &headers, None);
    let (state, key) = (&state, &key);
    replica::serve(state, req, Need::Read, move |_| async move {
        local_record(state, key)
    })
    .await
}

fn local_record(state: &AppState, key: &kvproto::Key) -> Result<Response> {
    match state.store.get(key)? {
        Some(record) => match record.value {
            Some(value) => Ok((
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    ),
                    (header::ETAG, etag_header::of_version(record.version)),
                ],
                value,
            )
                .into_response()),
            None => Ok((
                StatusCode::GONE,
                [(header::ETAG, etag_header::of_version(record.version))],
                Json(ErrorBody {
                    error: ErrorCode::NotFound,
                    message: format!("key {key:?} was deleted (tombstone)"),
                }),
            )
                .into_response()),
        },
        None => Err(Error::NotFound(format!("key {key:?} not found"))),
    }
}
