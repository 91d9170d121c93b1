//! The check every Raft RPC passes before its body is read: it is for this group
//! (`x-kv-raft-group`) and in a protocol version this build speaks (`x-kv-raft-protocol`).
//! Either failing is 409 `raft_group_mismatch` (docs/replication.md sections 3 and 5): a
//! recycled pod name or a stale volume never joins the wrong group, and a peer of an unknown
//! version is refused rather than misread.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kvproto::raft::PROTOCOL_VERSION;
use kvproto::wire::{ErrorBody, ErrorCode, header};

/// `Err` says why the request is refused (answered 409 by [`refusal`]).
pub(crate) fn check(headers: &HeaderMap, group: &str) -> Result<(), String> {
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
