//! The chapter's three routes, byte for byte: `GET /save/<key>/<value>`, `GET /load/<key>`
//! (200 `_key_not_found_` on a miss) and `GET /allKeys`. Errors are plain text.

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kvproto::Key;
use kvproto::wire::BOOK_KEY_NOT_FOUND;
use percent_encoding::percent_decode_str;
use tokio::sync::mpsc;

use crate::error::{BookError, Error};
use crate::keys;
use crate::replica::{self, Forwardable, Need};
use crate::routing::{Decision, decide};
use crate::state::AppState;
use crate::storage::{Precondition, StorageError};
use crate::write_path;

/// Flask's default content type, which the book's server answered with.
const FLASK_CONTENT_TYPE: &str = "text/html; charset=utf-8";

fn ok(body: Bytes) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, FLASK_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

pub async fn save(State(state): State<AppState>, req: Request) -> Result<Response, BookError> {
    // The request by value: extracting `HeaderMap` would clone every header.
    let (uri, headers) = (req.uri(), req.headers());
    let rest = uri.path().strip_prefix("/save/").unwrap_or_default();
    let (key_seg, value_seg) = rest
        .split_once('/')
        .ok_or_else(|| Error::BadRequest("expected /save/<key>/<value>".into()))?;
    if value_seg.contains('/') {
        return Err(Error::BadRequest(
            "the value must be one path segment (send '/' as %2F)".into(),
        )
        .into());
    }
    let key = Key::from_path_segment(key_seg)?;
    let value: Vec<u8> = percent_decode_str(value_seg).collect();
    if value.len() > state.max_value_bytes {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            limit: state.max_value_bytes,
        }
        .into());
    }
    if value.is_empty() {
        return Err(Error::BadRequest("the value is empty".into()).into());
    }
    match decide(&state, &key, headers)? {
        Decision::Forward { to, by } => {
            Ok(keys::forward(&state, Method::GET, uri, headers, Bytes::new(), to, by).await?)
        }
        Decision::Local { read_through } => {
            let value = Bytes::from(value);
            let req = Forwardable::get(uri, headers, read_through);
            let (state, key) = (&state, &key);
            Ok(
                replica::serve(state, req, Need::Write, move |_| async move {
                    write_path::put(state, key, value.clone(), Precondition::None, None).await?;
                    Ok(ok(value))
                })
                .await?,
            )
        }
    }
}

pub async fn load(State(state): State<AppState>, req: Request) -> Result<Response, BookError> {
    // The request by value: extracting `HeaderMap` would clone every header.
    let (uri, headers) = (req.uri(), req.headers());
    let key = keys::key_after(uri, "/load/")?;
    match decide(&state, &key, headers)? {
        Decision::Forward { to, by } => {
            Ok(keys::forward(&state, Method::GET, uri, headers, Bytes::new(), to, by).await?)
        }
        Decision::Local { read_through } => {
            let req = Forwardable::get(uri, headers, read_through);
            let (state, key) = (&state, &key);
            // The book's routes never read from a follower.
            Ok(replica::serve(state, req, Need::Read, move |_| async move {
                Ok(match keys::lookup(state, key, read_through).await? {
                    Some(record) => ok(record.value.unwrap_or_default()),
                    None => ok(Bytes::from_static(BOOK_KEY_NOT_FOUND.as_bytes())),
                })
            })
            .await?)
        }
    }
}

/// Streamed from a blocking thread through a small bounded channel: memory stays bounded and the
/// request runtime free (`/healthz` keeps answering) however large the shard. A replicated
/// copy that does not lead passes the leader's answer back as it comes.
pub async fn all_keys(State(state): State<AppState>, req: Request) -> Result<Response, BookError> {
    let fwd = Forwardable {
        streamed: true,
        ..Forwardable::get(req.uri(), req.headers(), None)
    };
    let state = &state;
    Ok(replica::serve(state, fwd, Need::Read, move |_| stream_all_keys(state)).await?)
}

async fn stream_all_keys(state: &AppState) -> Result<Response, Error> {
    // An engine that is not open is refused before any byte is sent, as before.
    state.store.check_open().map_err(Error::from)?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, StorageError>>(4);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.stream_all_keys(&tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, FLASK_CONTENT_TYPE)],
        Body::from_stream(stream),
    )
        .into_response())
}
