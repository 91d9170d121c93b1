//! Where a key request is served: here, or forwarded to the owner, per `Topology::route`.
//! Forwarding headers are honoured only on requests that carry the admin token, so a client
//! cannot steer a server into serving keys it does not own.

use axum::http::HeaderMap;
use kvproto::Key;
use kvproto::topology::{ForwardedBy, Route};
use kvproto::wire::header;

use crate::error::Error;
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
    let Some(topology) = state.topology() else {
        // Before any topology: every key is served here, as the book's servers do.
        return Ok(Decision::Local { read_through: None });
    };
    let forwarded = forwarded_by(state, headers);
    match topology.route(state.shard, key.as_bytes(), forwarded) {
        Route::Local { read_through } => Ok(Decision::Local { read_through }),
        Route::Forward { to, read_through } => Ok(Decision::Forward {
            to,
            by: ForwardedBy {
                epoch: topology.epoch,
                hops: forwarded.map_or(1, |f| f.hops.saturating_add(1)),
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

/// The forwarding headers of an authorised forwarded request.
pub fn forwarded_by(state: &AppState, headers: &HeaderMap) -> Option<ForwardedBy> {
    let epoch = header_u64(headers, header::FORWARDED_EPOCH)?;
    if !state.token.authorizes(headers) {
        return None;
    }
    Some(ForwardedBy {
        epoch,
        hops: header_u64(headers, header::HOPS)
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(1),
        read_through: header_u64(headers, header::READ_THROUGH).and_then(|s| u32::try_from(s).ok()),
    })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
