//! The check every Raft RPC passes before its body is read: it is for this group
//! (`x-kv-raft-group`), in a protocol version this build speaks (`x-kv-raft-protocol`), and for
//! this copy's node ID (`x-kv-raft-target`, when sent). Any failing is 409
//! `raft_group_mismatch` (docs/replication.md sections 3 and 5): a recycled pod name or a stale
//! volume never joins the wrong group, a peer of an unknown version is refused rather than
//! misread, and a replaced volume (a new node ID at the old address) never answers for the ID
//! it lost: its vote and log are gone, so answering as that voter could elect two leaders.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kvproto::raft::PROTOCOL_VERSION;
use kvproto::wire::{ErrorBody, ErrorCode, header};

/// `Err` says why the request is refused (answered 409 by [`refusal`]).
pub(crate) fn check(headers: &HeaderMap, group: &str, me: u64) -> Result<(), String> {
    let sent_group = headers
        .get(header::RAFT_GROUP)
        .and_then(|v| v.to_str().ok());
    if sent_group != Some(group) {
        return Err(format!(
            "this copy is in raft group {group}, the request is for {}",
            sent_group.unwrap_or("no group")
        ));
    }
    let protocol = headers
        .get(header::RAFT_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if protocol != Some(PROTOCOL_VERSION.to_string().as_str()) {
        return Err(format!(
            "raft protocol {} is not known here (this copy speaks {PROTOCOL_VERSION})",
            protocol.unwrap_or("(none)")
        ));
    }
    if let Some(target) = headers.get(header::RAFT_TARGET) {
        let target = target
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        if target != Some(me) {
            return Err(format!(
                "this copy is node {me}, the request is for node {} (a volume replaced under \
                 the same address answers for its own node ID only)",
                target.map_or_else(|| "(unreadable)".to_owned(), |t| t.to_string())
            ));
        }
    }
    Ok(())
}

/// The 409 of a request [`check`] refused.
pub(crate) fn refusal(why: String) -> Response {
    refuse(StatusCode::CONFLICT, ErrorCode::RaftGroupMismatch, why)
}

/// An error answer in the `/v1` shape.
pub(crate) fn refuse(status: StatusCode, error: ErrorCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error,
            message: message.into(),
        }),
    )
        .into_response()
}
