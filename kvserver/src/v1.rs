//! The `/v1` data API: keys with raw-byte values, versions as ETags, conditional writes, a
//! paginated listing, `/v1/info` and `/v1/topology`. Errors are JSON `ErrorBody`s.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kvproto::wire::{Info, KeyPage, header as kvh};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::etag_header;
use crate::keys;
use crate::replica::{self, Forwardable, Need};
use crate::routing::{Decision, decide, needs_tombstones};
use crate::state::AppState;
use crate::storage::{DeleteMode, Precondition, WriteOutcome};
use crate::write_path;

pub const KEY_PREFIX: &str = "/v1/keys/";
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

pub async fn get_key(State(state): State<AppState>, req: Request) -> Result<Response> {
    let (uri, headers) = (req.uri(), req.headers());
    let key = keys::key_after(uri, KEY_PREFIX)?;
    match decide(&state, &key, headers)? {
        Decision::Forward { to, by } => {
            keys::forward(&state, Method::GET, uri, headers, Bytes::new(), to, by).await
        }
        Decision::Local { read_through } => {
            let req = Forwardable::get(uri, headers, read_through);
            let (state, key) = (&state, &key);
            replica::serve(state, req, Need::read(headers), move |_| async move {
                match keys::lookup(state, key, read_through).await? {
                    Some(record) => Ok((
                        StatusCode::OK,
                        [
                            (
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("application/octet-stream"),
                            ),
                            (header::ETAG, etag_header::of_version(record.version)),
                            (served_by(), HeaderValue::from(state.shard)),
                        ],
                        record.value.unwrap_or_default(),
                    )
                        .into_response()),
                    None => Err(Error::NotFound(format!("key {key:?} not found"))),
                }
            })
            .await
        }
    }
}

pub async fn put_key(State(state): State<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let (uri, headers) = (&parts.uri, &parts.headers);
    let key = keys::key_after(uri, KEY_PREFIX)?;
    let pre = precondition(headers)?;
    let value = read_limited(body, headers, state.max_value_bytes).await?;
    match decide(&state, &key, headers)? {
        Decision::Forward { to, by } => {
            keys::forward(&state, Method::PUT, uri, headers, value, to, by).await
        }
        Decision::Local { read_through } => {
            let req = Forwardable::data(Method::PUT, uri, headers, value.clone(), read_through);
            let (state, key) = (&state, &key);
            replica::serve(state, req, Need::Write, move |_| async move {
                let remote = if pre == Precondition::None {
                    None
                } else {
                    keys::remote_version(state, key, read_through).await?
                };
                let outcome = write_path::put(state, key, value, pre, remote).await?;
                written(state, outcome, key)
            })
            .await
        }
    }
}

pub async fn delete_key(State(state): State<AppState>, req: Request) -> Result<Response> {
    let (uri, headers) = (req.uri(), req.headers());
    let key = keys::key_after(uri, KEY_PREFIX)?;
    let pre = precondition(headers)?;
    let decision = decide(&state, &key, headers)?;
    match decision {
        Decision::Forward { to, by } => {
            keys::forward(&state, Method::DELETE, uri, headers, Bytes::new(), to, by).await
        }
        Decision::Local { read_through } => {
            let req = Forwardable::data(Method::DELETE, uri, headers, Bytes::new(), read_through);
            let (state, key, decision) = (&state, &key, &decision);
            replica::serve(state, req, Need::Write, move |_| async move {
                let mode = if needs_tombstones(state, decision) {
                    DeleteMode::Tombstone
                } else {
                    DeleteMode::Remove
                };
                let remote = keys::remote_version(state, key, read_through).await?;
                let outcome = write_path::delete(state, key, pre, mode, remote).await?;
                written(state, outcome, key)
            })
            .await
        }
    }
}

fn written(state: &AppState, outcome: WriteOutcome, key: &kvproto::Key) -> Result<Response> {
    match outcome {
        WriteOutcome::Written(version) => Ok((
            StatusCode::NO_CONTENT,
            [
                (header::ETAG, etag_header::of_version(version)),
                (served_by(), HeaderValue::from(state.shard)),
            ],
        )
            .into_response()),
        WriteOutcome::NotFound => Err(Error::NotFound(format!("key {key:?} not found"))),
        WriteOutcome::PreconditionFailed(current) => {
            Err(Error::PreconditionFailed(match current {
                Some(v) => format!("key {key:?} is at version {v}"),
                None => format!("key {key:?} does not exist"),
            }))
        }
    }
}

fn served_by() -> header::HeaderName {
    header::HeaderName::from_static(kvh::SERVED_BY)
}

/// `If-None-Match: *` → if absent; `If-Match: "<v>"` → if at version v.
fn precondition(headers: &HeaderMap) -> Result<Precondition> {
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        return if v.as_bytes().trim_ascii() == b"*" {
            Ok(Precondition::IfAbsent)
        } else {
            Err(Error::BadRequest("If-None-Match supports only `*`".into()))
        };
    }
    if let Some(v) = headers.get(header::IF_MATCH) {
        return etag_header::version(v)
            .map(Precondition::IfVersion)
            .ok_or_else(|| {
                Error::BadRequest("If-Match must be a version in double quotes, e.g. \"42\"".into())
            });
    }
    Ok(Precondition::None)
}

/// Reads a request body of at most `limit` bytes; 413 beyond.
pub async fn read_limited(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let declared = crate::body::declared_length(headers);
    if let Some(len) = declared
        && len > limit
    {
        return Err(Error::ValueTooLarge { len, limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::ValueTooLarge {
            len: limit.saturating_add(1),
            limit,
        }),
        Err(e) => Err(Error::BadRequest(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn list_keys(State(state): State<AppState>, req: Request) -> Result<Response> {
    let Query(q) = Query::<ListQuery>::try_from_uri(req.uri())
        .map_err(|e| Error::BadRequest(e.body_text()))?;
    let fwd = Forwardable::get(req.uri(), req.headers(), None);
    let state = &state;
    replica::serve(state, fwd, Need::read(req.headers()), move |_| async move {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let (keys, more) = state.store.list(&q.prefix, q.after.as_deref(), limit)?;
        let next_after = if more {
            keys.last().map(|k| k.as_str().to_owned())
        } else {
            None
        };
        Ok(Json(KeyPage {
            keys: keys.into_iter().map(|k| k.into_string()).collect(),
            next_after,
        })
        .into_response())
    })
    .await
}

pub async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        shard: state.shard,
        keys: state.store.key_count(),
        bytes: state.store.value_bytes(),
        draining: state.is_draining(),
        topology: state.topology().map(|t| (*t).clone()),
    })
}

pub async fn topology(State(state): State<AppState>) -> Result<Json<kvproto::Topology>> {
    state
        .topology()
        .map(|t| Json((*t).clone()))
        .ok_or_else(|| Error::NotFound("no topology has been set on this server".into()))
}
