//! What the group's operations answer when they cannot do what was asked. Each says whether
//! anything was proposed, because that decides what a client may retry (docs/replication.md
//! section 6, "What the client sees").

use kvproto::raft::Member;
use thiserror::Error;

use crate::error::StorageError;

/// Why a write has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WriteError {
    /// This copy does not lead; `leader` does (forward there). Nothing was proposed.
    #[error("not the leader; the leader is {}", leader.as_ref().map_or("unknown".to_owned(), |m| m.to_string()))]
    NotLeader { leader: Option<Member> },
    /// No copy leads right now (an election, or a leader whose lease lapsed without a
    /// quorum). Nothing was proposed: any write may be retried.
    #[error("the shard has no leader right now")]
    NoLeader,
    /// Proposed, but its commit was not observed (leadership lost, or `write_timeout` passed):
    /// it may or may not be applied. Only idempotent writes may be retried.
    #[error("the write was proposed but its commit was not observed")]
    OutcomeUnknown,
    /// The group stopped on this copy (storage error, shutdown); the write may have been
    /// proposed before it did, so treat it as unknown.
    #[error("the raft group stopped: {0}")]
    Fatal(String),
}

/// Why a read barrier could not be passed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// This copy does not lead; `leader` does.
    #[error("not the leader; the leader is {}", leader.as_ref().map_or("unknown".to_owned(), |m| m.to_string()))]
    NotLeader { leader: Option<Member> },
    /// No copy leads right now.
    #[error("the shard has no leader right now")]
    NoLeader,
    /// The leader could not confirm with a quorum in time that it still leads.
    #[error("leadership could not be confirmed by a quorum")]
    NoQuorum,
    /// A follower read before this copy caught up with the group's commit after a start.
    #[error("this copy has not caught up with the group since it started")]
    NotRecovered,
    #[error("the raft group stopped: {0}")]
    Fatal(String),
}

/// Why a group operation (open, membership, leadership) failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupError {
    /// This copy does not lead; the operation must go to `leader`.
    #[error("not the leader; the leader is {}", leader.as_ref().map_or("unknown".to_owned(), |m| m.to_string()))]
    NotLeader { leader: Option<Member> },
    /// The volume or the request belongs to another group.
    #[error("raft group mismatch: this copy is in {ours}, the request names {theirs}")]
    GroupMismatch { ours: String, theirs: String },
    /// A membership change is still in progress; retry once it committed.
    #[error("a membership change is in progress: {0}")]
    InProgress(String),
    /// The request cannot be done as given (e.g. voters without this copy, unknown member).
    #[error("refused: {0}")]
    Refused(String),
    /// The configuration is not usable.
    #[error("bad raft configuration: {0}")]
    Config(String),
    /// The outcome was not observed in time (`membership_timeout`).
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("the raft group stopped: {0}")]
    Fatal(String),
}

impl From<StorageError> for GroupError {
    fn from(e: StorageError) -> Self {
        GroupError::Storage(e.to_string())
    }
}
