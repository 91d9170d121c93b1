//! How a failed RPC is reported to openraft, which decides from the kind whether to back off:
//! a peer that cannot be reached or refuses us (connection refused, 409 wrong group, 401, a
//! 5xx because its group stopped) is `Unreachable`, so openraft backs off instead of hammering
//! it; a deadline passed is `Timeout` (retried at once, the next heartbeat is due anyway); a
//! connection that broke mid-request or an answer we cannot read is `Network`.

use std::time::Duration;

use openraft::RPCTypes;
use openraft::error::{NetworkError, RPCError, StreamingError, Timeout, Unreachable};

use crate::types::ShardRaft;

/// What went wrong with one RPC, before it is told to openraft.
#[derive(Debug)]
pub(crate) enum Failure {
    Unreachable(String),
    Timeout,
    Network(String),
}

impl Failure {
    pub fn of_reqwest(e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            Failure::Timeout
        } else if e.is_connect() {
            Failure::Unreachable(e.to_string())
        } else {
            Failure::Network(e.to_string())
        }
    }

    /// A peer that answered with an error status: it cannot take the RPC now.
    pub fn refused(status: reqwest::StatusCode, body: &str) -> Failure {
        Failure::Unreachable(format!("peer answered {status}: {body}"))
    }

    pub fn into_rpc(
        self,
        action: RPCTypes,
        from: u64,
        to: u64,
        ttl: Duration,
    ) -> RPCError<ShardRaft> {
        match self {
            Failure::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            Failure::Timeout => RPCError::Timeout(Timeout {
                action,
                id: from,
                target: to,
                timeout: ttl,
            }),
            Failure::Network(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }

    pub fn into_streaming(self, from: u64, to: u64, ttl: Duration) -> StreamingError<ShardRaft> {
        match self {
            Failure::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            Failure::Timeout => StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: from,
                target: to,
                timeout: ttl,
            }),
            Failure::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
        }
    }
}
