//! Where a key request is served: here, or forwarded to the owner, per `Topology::route`.
//!
//! - A request carrying any forwarding header (`header::FORWARDING`) must carry an accepted peer
//!   token (`--peer-token-file`, else the admin token file), else it is answered 401: a client cannot steer a server into serving keys it does not
//!   own, and a peer holding another token gets a clear refusal instead of a fresh start.
//! - The hop count is a lower bound whatever the auth: a request carrying one is either refused
//!   (401) or counted from it, never restarted at zero; each forward raises it by one, and a
//!   request at `MAX_HOPS` is never forwarded (508 `loop_detected`). So servers that disagree, on
//!   their maps or their tokens, can pass a request on at most `MAX_HOPS` times.

use axum::http::HeaderMap;
use kvproto::Key;
use kvproto::topology::{ForwardedBy, MAX_HOPS, Route};
use kvproto::wire::header;

use crate::error::Error;
use crate::header_names;
use crate::state::AppState;

/// The routing decision for one key request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve here; on a local miss, read through to this shard.
    Local { read_through: Option<u32> },
    /// Send the request on, with these forwarding headers.
    Forward { to: u32, by: ForwardedBy },
}

impl Decision {
    pub fn read_through(&self) -> Option<u32> {
        match self {
            Decision::Local { read_through } => *read_through,
            Decision::Forward { .. } => None,
        }
    }
}

pub fn decide(state: &AppState, key: &Key, headers: &HeaderMap) -> Result<Decision, Error> {
    // Checked first, so a forwarded request with a bad token is refused even before a topology.
    let forwarded = forwarded_by(state, headers)?;
    let Some(topology) = state.topology() else {
        // Before any topology: every key is served here, as the book's servers do.
        return Ok(Decision::Local { read_through: None });
    };
    let hops = forwarded.map_or(0, |f| f.hops);
    match topology.route(state.shard, key.as_bytes(), forwarded) {
        Route::Local { read_through } => Ok(Decision::Local { read_through }),
        // `route` answers Misdirected at the limit; either way the loop ends here, said so.
        Route::Forward { .. } | Route::Misdirected if hops >= MAX_HOPS => {
            Err(Error::LoopDetected { hops })
        }
        Route::Forward { to, read_through } => Ok(Decision::Forward {
            to,
            by: ForwardedBy {
                epoch: topology.epoch,
                hops: hops.saturating_add(1),
                read_through,
            },
        }),
        Route::Misdirected => Err(Error::Misdirected),
    }
}

/// Whether deletes of keys served here must leave tombstones: while a migration is in flight,
/// or when a forwarder says there is an old owner to read through to.
pub fn needs_tombstones(state: &AppState, decision: &Decision) -> bool {
    decision.read_through().is_some() || state.topology().is_some_and(|t| t.migration.is_some())
}

/// The forwarding headers: `None` on a client's request; on a forwarded one (any forwarding
/// header), 401 without an accepted token, 400 when a header is not a number.
pub fn forwarded_by(state: &AppState, headers: &HeaderMap) -> Result<Option<ForwardedBy>, Error> {
    // Every request asks this: parsed names, so no name is parsed per lookup.
    if !header_names::FORWARDING
        .iter()
        .any(|h| headers.contains_key(h))
    {
        return Ok(None);
    }
    if !state.credentials.peer.authorizes(headers) {
        return Err(Error::Unauthorized(
            "a forwarded request (x-kv-forwarded-epoch, x-kv-hops or x-kv-read-through) needs \
             `Authorization: Bearer <token>` with a peer token this server accepts",
        ));
    }
    // A forwarded request took at least one hop, even when it does not say how many; a count
    // beyond u32 is clamped, as claiming more hops is always safe.
    let hops = header_u64(headers, header::HOPS)?
        .map_or(1, |h| u32::try_from(h).unwrap_or(u32::MAX).max(1));
    let read_through = match header_u64(headers, header::READ_THROUGH)? {
        None => None,
        Some(s) => Some(u32::try_from(s).map_err(|_| bad_header(header::READ_THROUGH))?),
    };
    Ok(Some(ForwardedBy {
        // Without an epoch the forwarder claims no newer map than ours.
        epoch: header_u64(headers, header::FORWARDED_EPOCH)?.unwrap_or(0),
        hops,
        read_through,
    }))
}

/// A forwarding header as a number: `None` when absent, 400 when present but not a number.
fn header_u64(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, Error> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| bad_header(name))
}

fn bad_header(name: &'static str) -> Error {
    Error::BadRequest(format!("header {name} must be a non-negative integer"))
}
