//! JSON bodies and header names of the `/v1` API, and the book's literal strings.

use serde::{Deserialize, Serialize};

use crate::topology::Topology;

/// What `/load/<key>` answers, with status 200, when the key is absent (the book's contract).
pub const BOOK_KEY_NOT_FOUND: &str = "_key_not_found_";
/// What every data route answers, with status 503, while the server drains.
pub const BOOK_SHUTTING_DOWN: &str = "_shutting_down_";

/// The ops port every kvserver listens on unless told otherwise: probes, metrics, drain.
pub const DEFAULT_OPS_PORT: u16 = 8081;

/// Paths of the `/v1` API that more than one crate builds.
pub mod path {
    use crate::key::Key;

    /// Prefix of the local-only read (no routing, no read-through) that read-through and the
    /// operator's checks use; the key follows as one path segment.
    pub const INTERNAL_KEYS_PREFIX: &str = "/v1/internal/keys/";

    /// `/v1/internal/keys/{key}` for `key`.
    pub fn internal_key(key: &Key) -> String {
        format!("{INTERNAL_KEYS_PREFIX}{}", key.to_path_segment())
    }
}

/// The `ETag` / `If-Match` value of a key's version: the version in double quotes (a strong
/// validator). A weak `W/` prefix is accepted on parsing, since proxies may weaken tags.
pub mod etag {
    /// `123` → `"123"`.
    pub fn format(version: u64) -> String {
        format!("\"{version}\"")
    }

    /// `"123"` or `W/"123"` (surrounding blanks allowed) → 123; anything else → `None`.
    pub fn parse(value: &str) -> Option<u64> {
        let value = value.trim();
        let value = value.strip_prefix("W/").unwrap_or(value);
        let digits = value.strip_prefix('"')?.strip_suffix('"')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Header names. Values of `ETag`/`If-Match` are the key's version in double quotes ([`etag`]).
pub mod header {
    /// On every response: the server's topology epoch.
    pub const EPOCH: &str = "x-kv-epoch";
    /// On every response: the shard count clients should route over now.
    pub const ROUTING_SHARDS: &str = "x-kv-routing-shards";
    /// On a forwarded request: the forwarder's epoch.
    pub const FORWARDED_EPOCH: &str = "x-kv-forwarded-epoch";
    /// On a forwarded request: how many forwards it has taken. A lower bound whatever the auth:
    /// a request carrying it is refused (401 without the token) or counted from it, never from
    /// zero; at `topology::MAX_HOPS` it is not forwarded (508 `loop_detected`).
    pub const HOPS: &str = "x-kv-hops";
    /// On a forwarded request: the old owner to read through to on a local miss.
    pub const READ_THROUGH: &str = "x-kv-read-through";
    /// On a response: the shard that served the key.
    pub const SERVED_BY: &str = "x-kv-served-by";
    /// The headers that make a request a forwarded one: any of them without the admin token is
    /// answered 401.
    pub const FORWARDING: [&str; 3] = [FORWARDED_EPOCH, HOPS, READ_THROUGH];

    /// On a response of a replicated shard: the pod name of the shard's leader as this copy knows
    /// it (clients send the shard's next request there).
    pub const LEADER: &str = "x-kv-leader";
    /// On a read request: which copy may serve it; [`READ_FOLLOWER`] lets any copy answer from
    /// its applied state. Absent = linearizable (the leader after a lease or read-index check).
    pub const READ: &str = "x-kv-read";
    /// The value of [`READ`] that opts into follower reads.
    pub const READ_FOLLOWER: &str = "follower";
    /// On every Raft RPC: the group it is meant for, `<store-uid>/<shard>`
    /// ([`crate::raft::GroupId`]); a mismatch is 409 `raft_group_mismatch`.
    pub const RAFT_GROUP: &str = "x-kv-raft-group";
    /// On every Raft RPC: the wire version of its body ([`crate::raft::PROTOCOL_VERSION`]); a
    /// version the receiver does not know is refused with 409.
    pub const RAFT_PROTOCOL: &str = "x-kv-raft-protocol";
    /// On every Raft RPC (since the replaced-volume rejoin): the node ID the sender means to
    /// reach, in decimal. A copy with another node ID refuses it with 409
    /// `raft_group_mismatch`: a pod whose volume was replaced (new node ID, same address) never
    /// answers a vote or an append meant for the ID it lost. Absent (a sender of an earlier
    /// build): not checked.
    pub const RAFT_TARGET: &str = "x-kv-raft-target";
    /// On a follower read: the log index the copy had applied when it answered.
    pub const APPLIED_INDEX: &str = "x-kv-applied-index";
}

/// Machine-readable error codes; every 4xx/5xx carries one in an [`ErrorBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidKey,
    ValueTooLarge,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    BadRequest,
    BadBulkStream,
    TopologyConflict,
    Draining,
    Misdirected,
    PeerUnavailable,
    /// 502: a peer refused this server's admin token (token files differ between servers).
    PeerUnauthorized,
    /// 508: the request reached the forwarding limit (`topology::MAX_HOPS`) and was not sent on.
    LoopDetected,
    StorageFull,
    StorageError,
    RouteNotFound,
    /// 409: an import or cleanup fenced for a move step the server is no longer (or not yet) at.
    Fenced,
    /// 504: the request timed out after it may have been applied; read the key to learn the outcome.
    /// On a replicated shard: the write was proposed but its commit was not observed.
    OutcomeUnknown,
    /// 503: the shard's copies have no leader right now (an election, or no quorum); nothing was
    /// proposed, so any request may be retried.
    NoLeader,
    /// 409: a Raft RPC for another group (`x-kv-raft-group`) or an unknown protocol version
    /// (`x-kv-raft-protocol`): a recycled pod name or a stale volume never joins the wrong group.
    RaftGroupMismatch,
}

/// The JSON body of every error on the `/v1` API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub version: String,
    pub shard: u32,
    pub keys: u64,
    pub bytes: u64,
    pub draining: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
}

/// One page of `GET /v1/keys?prefix=&after=&limit=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// How an import treats keys that already exist at the receiver. In neither mode does a key's
/// version go backwards, and the receiver's clock moves past every imported version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMode {
    /// Replace what is there with a higher version; a record whose version is not above the
    /// stored one (value or tombstone) is skipped.
    Overwrite,
    /// The default (what the rebalance copy uses): skip keys that exist or carry a tombstone, so
    /// a newer write or delete always wins.
    #[default]
    IfAbsent,
}

/// The answer to a bulk import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub applied: u64,
    pub skipped: u64,
}

/// The answer to `GET /v1/admin/export/count?scope=`: how many records (tombstones included) an
/// export of that scope would stream now. The operator reads it before a copy for its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportCount {
    pub records: u64,
}

/// The answer to `POST /v1/admin/cleanup`: keys dropped because this shard no longer owns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub removed_keys: u64,
    pub removed_tombstones: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    #[test]
    fn etag_round_trips_and_accepts_weak_tags() {
        for v in [0, 7, u64::MAX] {
            assert_eq!(etag::parse(&etag::format(v)), Some(v));
        }
        assert_eq!(etag::format(42), "\"42\"");
        assert_eq!(etag::parse("W/\"42\""), Some(42));
        assert_eq!(etag::parse(" \"42\" "), Some(42));
    }

    #[test]
    fn etag_refuses_what_is_not_a_quoted_version() {
        for bad in [
            "42",
            "\"\"",
            "\"4 2\"",
            "\"+4\"",
            "\"-1\"",
            "\"18446744073709551616\"",
            "W/42",
            "*",
        ] {
            assert_eq!(etag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn replication_error_codes_have_their_wire_names() {
        for (code, name) in [
            (ErrorCode::NoLeader, "\"no_leader\""),
            (ErrorCode::OutcomeUnknown, "\"outcome_unknown\""),
            (ErrorCode::RaftGroupMismatch, "\"raft_group_mismatch\""),
        ] {
            assert_eq!(serde_json::to_string(&code).expect("json"), name);
            assert_eq!(
                serde_json::from_str::<ErrorCode>(name).expect("parses"),
                code
            );
        }
    }

    #[test]
    fn internal_key_path_encodes_the_key_as_one_segment() {
        let key = Key::new("a b%c").expect("valid key");
        assert_eq!(
            path::internal_key(&key),
            format!("/v1/internal/keys/{}", key.to_path_segment())
        );
        assert!(path::internal_key(&key).starts_with(path::INTERNAL_KEYS_PREFIX));
    }
}
