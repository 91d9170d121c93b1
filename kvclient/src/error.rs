//! The one error type of the crate, and how each error maps to an exit code.

use kvproto::KeyError;
use kvproto::bulk::BulkError;
use kvproto::wire::ErrorCode;
use thiserror::Error;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to kvservers.
#[derive(Debug, Error)]
pub enum Error {
    /// The HTTP client could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A server address could not be understood.
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    /// The CA file given to trust could not be used.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    /// The TLS handshake failed (an untrusted certificate, or a plain-HTTP server): nothing was
    /// sent.
    #[error(
        "TLS handshake with {server} failed: {reason} (is the server's CA trusted with \
         --ca-file / KVCLIENT_CA_FILE, and does the server speak HTTPS?)"
    )]
    Tls { server: String, reason: String },
    /// The key was refused before anything was sent.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),
    /// The connection could not be opened: nothing was sent.
    #[error("cannot reach {server}: {source}")]
    Unreachable {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the timeout; the request may or may not have been applied.
    #[error("{server} did not answer in time")]
    Timeout { server: String },
    /// The connection broke mid-exchange; the request may or may not have been applied.
    #[error("transport error talking to {server}: {source}")]
    Transport {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    /// A conditional write or delete lost: the key exists (if-absent) or its version moved.
    #[error("precondition failed on {server}: {message}")]
    PreconditionFailed { server: String, message: String },
    /// The server refused a topology as stale or conflicting.
    #[error("topology refused by {server}: {message}")]
    TopologyConflict { server: String, message: String },
    /// The server refused a request body as larger than it accepts (413): a limit to raise or
    /// smaller batches to send, never a failure that passes if the same request is sent again.
    #[error("{server} refused a body of {bytes} bytes as too large: {message}")]
    TooLarge {
        server: String,
        bytes: usize,
        message: String,
    },
    /// Any other non-success answer.
    #[error("{server} answered {status}{}: {message}", code.map(|c| format!(" ({c:?})")).unwrap_or_default())]
    Status {
        server: String,
        status: u16,
        /// The `/v1` error code, absent on book routes (plain-text bodies).
        code: Option<ErrorCode>,
        message: String,
    },
    /// The server answered something that does not follow docs/api.md.
    #[error("unexpected answer from {server}: {reason}")]
    BadResponse { server: String, reason: String },
    /// An export stream was malformed or cut short.
    #[error("bulk stream from {server}: {source}")]
    Bulk {
        server: String,
        #[source]
        source: BulkError,
    },
    /// A sharded operation needs a server the client does not know.
    #[error("no server known for shard {0}")]
    NoServerForShard(u32),
}

impl Error {
    /// The HTTP status, when the server answered one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::PreconditionFailed { .. } => Some(412),
            Error::TopologyConflict { .. } => Some(409),
            Error::TooLarge { .. } => Some(413),
            _ => None,
        }
    }

    /// True when the server could not be reached or did not answer: the book's `.`.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::Transport { .. }
                | Error::Tls { .. }
        )
    }

    /// True when the request may or may not have been applied: no answer in time, a broken
    /// connection, or the server's 504 `outcome_unknown`. Never a clean failure: read the key.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Status { status, code, .. } => {
                *status == 504 || *code == Some(ErrorCode::OutcomeUnknown)
            }
            _ => false,
        }
    }

    /// True when the server said it applied nothing and the same request may succeed later:
    /// draining, misdirected during a topology change, or the connection was never opened.
    pub fn refused_unapplied(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Status {
                status: 503, code, ..
            } => matches!(
                code,
                Some(ErrorCode::Draining | ErrorCode::Misdirected | ErrorCode::NoLeader) | None
            ),
            _ => false,
        }
    }
}
