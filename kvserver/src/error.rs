//! The one error type of the server, and how it becomes an HTTP answer.
//!
//! `/v1` routes answer a JSON [`ErrorBody`]; book routes answer plain text, as the chapter's
//! Flask server did. Internal details (engine errors, peer addresses) are logged, not sent.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvproto::KeyError;
use kvproto::bulk::BulkError;
use kvproto::wire::{BOOK_SHUTTING_DOWN, ErrorBody, ErrorCode};
use thiserror::Error;

use crate::raft_node::RaftNodeError;
use crate::storage::StorageError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    InvalidKey(#[from] KeyError),
    #[error("value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge { len: usize, limit: usize },
    #[error(
        "import body of {len} bytes exceeds {flag} ({limit} bytes): send smaller batches or raise {flag}"
    )]
    ImportTooLarge {
        len: usize,
        limit: usize,
        flag: &'static str,
    },
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadBulkStream(#[from] BulkError),
    #[error("{0}")]
    TopologyConflict(String),
    /// A fenced import or cleanup for a move step this server is no longer (or not yet) at.
    #[error("{0}")]
    Fenced(String),
    #[error("the server is draining; retry on another server")]
    Draining,
    #[error("the servers' shard maps disagree for now; retry")]
    Misdirected,
    /// `--require-topology` and no topology yet: nothing is served, nothing was applied.
    #[error("this server has no shard map yet (the operator has not pushed one); retry")]
    NoTopologyYet,
    #[error("peer shard {shard} is unavailable")]
    PeerUnavailable { shard: u32 },
    #[error(
        "peer shard {shard} refused this server's admin token (the servers' token files \
         differ: finish the token rotation, docs/security-token-rotation.md)"
    )]
    PeerUnauthorized { shard: u32 },
    #[error("the request was already forwarded {hops} times; refusing to forward it again")]
    LoopDetected { hops: u32 },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("request timed out")]
    Timeout,
    /// A write that timed out: it may have been applied, so it must not read as "retry".
    #[error("the write timed out and may have been applied; read the key to learn the outcome")]
    OutcomeUnknown,
    #[error("server overloaded; retry")]
    Overloaded,
    /// The request (or this volume) names another raft group than this copy's.
    #[error("{0}")]
    RaftGroupMismatch(String),
    /// A replicated shard without a leader this copy can hand the request to: nothing was
    /// proposed, so any request may be retried.
    #[error("the shard has no leader right now; retry")]
    NoLeader,
    /// This copy does not lead, `0` does, and nothing was proposed: the request goes there
    /// (`replica.rs`); answered like [`Error::NoLeader`] if it ever reaches a client.
    #[error("this copy does not lead the shard; {} does", .0.pod)]
    NotLeader(kvproto::raft::Member),
    /// A membership change of the group is still in progress: retry once it committed.
    #[error("{0}")]
    MembershipInProgress(String),
    /// A group operation whose outcome was not observed in time (it may still happen).
    #[error("{0}")]
    NotObserved(String),
    /// The group's storage failed (logged, summarised to the client).
    #[error("raft: {0}")]
    Raft(String),
}

impl From<RaftNodeError> for Error {
    fn from(e: RaftNodeError) -> Self {
        match e {
            RaftNodeError::GroupMismatch(m) => Error::RaftGroupMismatch(m),
            RaftNodeError::Store(s) => Error::Storage(s),
            RaftNodeError::Group(g) => Error::from(g),
            other => Error::Raft(other.to_string()),
        }
    }
}

/// A group operation's refusal (membership, leadership) as an answer: not the leader 503
/// `no_leader`, a change in progress 503 `peer_unavailable`, another group 409, input openraft
/// refuses 400, a timeout 504 `outcome_unknown`, storage 500.
impl From<kvraft::GroupError> for Error {
    fn from(e: kvraft::GroupError) -> Self {
        use kvraft::GroupError as G;
        match e {
            G::NotLeader { .. } => Error::NoLeader,
            G::GroupMismatch { .. } => Error::RaftGroupMismatch(e.to_string()),
            G::InProgress(_) => Error::MembershipInProgress(e.to_string()),
            G::Refused(_) => Error::BadRequest(e.to_string()),
            G::Timeout(_) => Error::NotObserved(e.to_string()),
            G::Config(_) | G::Storage(_) | G::Fatal(_) => Error::Raft(e.to_string()),
        }
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidKey(_) | Error::BadRequest(_) | Error::BadBulkStream(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::ValueTooLarge { .. } | Error::ImportTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::NotFound(_) | Error::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::TopologyConflict(_) | Error::Fenced(_) | Error::RaftGroupMismatch(_) => {
                StatusCode::CONFLICT
            }
            Error::NoLeader | Error::NotLeader(_) | Error::MembershipInProgress(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::NotObserved(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::PeerUnauthorized { .. } => StatusCode::BAD_GATEWAY,
            Error::LoopDetected { .. } => StatusCode::LOOP_DETECTED,
            Error::Draining
            | Error::Misdirected
            | Error::NoTopologyYet
            | Error::PeerUnavailable { .. }
            | Error::Timeout
            | Error::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Error::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
            Error::Storage(StorageError::Full) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Storage(_) | Error::Raft(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidKey(_) => ErrorCode::InvalidKey,
            Error::ValueTooLarge { .. } | Error::ImportTooLarge { .. } => ErrorCode::ValueTooLarge,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::PreconditionFailed(_) => ErrorCode::PreconditionFailed,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::BadRequest(_) | Error::BodyTimeout(_) => ErrorCode::BadRequest,
            // kvproto has no code of its own for these: both mean "this server cannot answer
            // now, retry", which is what clients do on `peer_unavailable`.
            Error::Timeout | Error::Overloaded => ErrorCode::PeerUnavailable,
            Error::BadBulkStream(_) => ErrorCode::BadBulkStream,
            Error::TopologyConflict(_) => ErrorCode::TopologyConflict,
            Error::Fenced(_) => ErrorCode::Fenced,
            Error::OutcomeUnknown | Error::NotObserved(_) => ErrorCode::OutcomeUnknown,
            Error::NoLeader | Error::NotLeader(_) => ErrorCode::NoLeader,
            Error::MembershipInProgress(_) => ErrorCode::PeerUnavailable,
            Error::Draining => ErrorCode::Draining,
            Error::Misdirected | Error::NoTopologyYet => ErrorCode::Misdirected,
            Error::PeerUnavailable { .. } => ErrorCode::PeerUnavailable,
            Error::PeerUnauthorized { .. } => ErrorCode::PeerUnauthorized,
            Error::LoopDetected { .. } => ErrorCode::LoopDetected,
            Error::Storage(StorageError::Full) => ErrorCode::StorageFull,
            Error::Storage(_) | Error::Raft(_) => ErrorCode::StorageError,
            Error::RouteNotFound(_) => ErrorCode::RouteNotFound,
            Error::RaftGroupMismatch(_) => ErrorCode::RaftGroupMismatch,
        }
    }

    /// The message sent to the client: internal errors are summarised, not leaked.
    fn public_message(&self) -> String {
        match self {
            Error::Storage(StorageError::Full) => self.to_string(),
            Error::Storage(_) | Error::Raft(_) => "storage error; see the server log".to_owned(),
            other => other.to_string(),
        }
    }

    fn log(&self) {
        // Draining and shedding are expected states, not failures worth a warning each.
        let expected = matches!(
            self,
            Error::Draining
                | Error::Overloaded
                | Error::Misdirected
                | Error::NoTopologyYet
                | Error::NoLeader
                | Error::NotLeader(_)
        );
        if self.status().is_server_error() && !expected {
            tracing::warn!(error = %self, "request failed");
        }
    }

    /// The book routes' rendering: plain text, and the book's literal body while draining.
    pub fn into_book_response(self) -> Response {
        self.log();
        let body = match &self {
            Error::Draining => BOOK_SHUTTING_DOWN.to_owned(),
            other => other.public_message(),
        };
        (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            error: self.code(),
            message: self.public_message(),
        };
        (self.status(), Json(body)).into_response()
    }
}

/// How a route family words its errors: the book's plain text, or `/v1`'s JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Book,
    Json,
}

impl Dialect {
    pub fn render(self, error: Error) -> Response {
        match self {
            Dialect::Book => error.into_book_response(),
            Dialect::Json => error.into_response(),
        }
    }
}

/// A book route's error: the same [`Error`], rendered as plain text.
#[derive(Debug)]
pub struct BookError(pub Error);

impl<E: Into<Error>> From<E> for BookError {
    fn from(e: E) -> Self {
        BookError(e.into())
    }
}

impl IntoResponse for BookError {
    fn into_response(self) -> Response {
        self.0.into_book_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvraft::GroupError as G;

    #[test]
    fn group_refusals_answer_the_management_contract() {
        let answer = |e: G| {
            let e = Error::from(e);
            (e.status().as_u16(), e.code())
        };
        assert_eq!(
            answer(G::NotLeader { leader: None }),
            (503, ErrorCode::NoLeader)
        );
        assert_eq!(
            answer(G::InProgress("joint".into())),
            (503, ErrorCode::PeerUnavailable)
        );
        assert_eq!(
            answer(G::Timeout("voters".into())),
            (504, ErrorCode::OutcomeUnknown)
        );
        assert_eq!(
            answer(G::Refused("not a voter".into())),
            (400, ErrorCode::BadRequest)
        );
        assert_eq!(
            answer(G::GroupMismatch {
                ours: "a/0".into(),
                theirs: "b/0".into()
            }),
            (409, ErrorCode::RaftGroupMismatch)
        );
        for stopped in [G::Storage("disk".into()), G::Fatal("gone".into())] {
            assert_eq!(answer(stopped), (500, ErrorCode::StorageError));
        }
        let leader = kvproto::raft::Member::default();
        assert_eq!(
            (
                Error::NotLeader(leader).status().as_u16(),
                Error::NoLeader.code()
            ),
            (503, ErrorCode::NoLeader)
        );
    }
}
