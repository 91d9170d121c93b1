//! Serving one key, shared by the book routes and `/v1`: the key from the raw request path,
//! the local lookup with read-through, and forwarding to the owner.

use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use bytes::Bytes;
use kvproto::Key;
use kvproto::topology::ForwardedBy;

use crate::error::Error;
use crate::peer::Remote;
use crate::state::AppState;
use crate::storage::Record;

/// The key in the raw (still percent-encoded) path after `prefix`. Taken from the raw URI, not
/// a decoding extractor, so `..%2F..%2Fetc%2Fpasswd` is seen as the single segment it is and
/// refused for its `/`.
pub fn key_after(uri: &Uri, prefix: &str) -> Result<Key, Error> {
    let raw = uri.path().strip_prefix(prefix).unwrap_or_default();
    Ok(Key::from_path_segment(raw)?)
}

/// The key's live record, here or (on a local miss with no tombstone) at the previous owner.
pub async fn lookup(
    state: &AppState,
    key: &Key,
    read_through: Option<u32>,
) -> Result<Option<Record>, Error> {
    match state.store.get(key)? {
        Some(r) if r.is_tombstone() => Ok(None),
        Some(r) => Ok(Some(r)),
        None => match read_through {
            Some(shard) => read_through_to(state, key, shard).await,
            None => Ok(None),
        },
    }
}

/// The version of the previous owner's live value, when nothing at all is stored here; used by
/// conditional writes and deletes during a migration.
pub async fn remote_version(
    state: &AppState,
    key: &Key,
    read_through: Option<u32>,
) -> Result<Option<u64>, Error> {
    let Some(shard) = read_through else {
        return Ok(None);
    };
    if state.store.get(key)?.is_some() {
        return Ok(None);
    }
    Ok(read_through_to(state, key, shard).await?.map(|r| r.version))
}

async fn read_through_to(state: &AppState, key: &Key, shard: u32) -> Result<Option<Record>, Error> {
    let Some(url) = peer_url(state, shard) else {
        return Err(Error::PeerUnavailable { shard });
    };
    let result = state.peers.read_through(&url, shard, key).await;
    let label = match &result {
        Ok(Remote::Value(_)) => "hit",
        Ok(Remote::Absent) => "miss",
        Err(_) => "error",
    };
    state
        .metrics
        .read_throughs
        .get_or_create(&crate::metrics::ResultLabels { result: label })
        .inc();
    match result? {
        Remote::Value(r) => Ok(Some(r)),
        Remote::Absent => Ok(None),
    }
}

fn peer_url(state: &AppState, shard: u32) -> Option<String> {
    state
        .topology()
        .and_then(|t| t.peers.get(shard as usize).cloned())
}

/// Forwards the request to the key's owner and relays its answer.
pub async fn forward(
    state: &AppState,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    to: u32,
    by: ForwardedBy,
) -> Result<Response, Error> {
    let url = peer_url(state, to).ok_or(Error::PeerUnavailable { shard: to })?;
    state
        .metrics
        .forwards
        .get_or_create(&crate::metrics::ShardLabels { shard: to })
        .inc();
    let pq = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    state
        .peers
        .forward((&url, to), method, pq, headers, body, by)
        .await
}
