//! The read barrier (docs/replication.md section 6, "Reads"): after it passes, reading this
//! copy's applied state is linearizable (`Linearizable`) or at least as fresh as the state it
//! had before it started (`Follower`).
//!
//! `Linearizable` with the lease policy confirms leadership from the leader lease without a
//! round trip, and falls back to ReadIndex (one quorum heartbeat) when the lease is stale;
//! with the ReadIndex policy it always takes the heartbeat. Either way it then waits until
//! this copy applied up to the read point. `Follower` waits once, after the start, until this
//! copy applied the group's commit (openraft's `wait_for_recovery`), then never again.

use std::sync::atomic::Ordering;

use openraft::error::LinearizableReadError;
use openraft::raft::ReadPolicy as OpenraftReadPolicy;

use super::config::ReadPolicy;
#[cfg(feature = "unsafe-fault-modes")]
use super::config::UnsafeMode;
use super::error::ReadError;
use super::shard_group::ShardGroup;
use super::write::leader_elsewhere;
use crate::apply::ApplyTarget;
use crate::types::RaftError;

/// What a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The default: only the leader passes, and what it then reads is current.
    Linearizable,
    /// Opt-in follower reads (`x-kv-read: follower`): any copy, staleness bounded by its lag.
    Follower,
}

/// What the barrier established; read the local state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadToken {
    /// The log index the read linearizes at (linearizable reads only).
    pub read_index: Option<u64>,
    /// The index this copy had applied when the barrier passed (`x-kv-applied-index`).
    pub applied_index: Option<u64>,
}

type ReadResult = Result<
    openraft::raft::linearizable_read::ReadLogId<crate::types::ShardRaft>,
    RaftError<LinearizableReadError<crate::types::ShardRaft>>,
>;

impl<T: ApplyTarget> ShardGroup<T> {
    pub async fn read_barrier(&self, mode: ReadMode) -> Result<ReadToken, ReadError> {
        #[cfg(feature = "unsafe-fault-modes")]
        if self.inner.cfg.unsafe_mode == UnsafeMode::ReadLocal {
            return Ok(self.token(None));
        }
        match mode {
            ReadMode::Follower => {
                self.recover().await?;
                Ok(self.token(None))
            }
            ReadMode::Linearizable => {
                let read = match self.inner.cfg.read_policy {
                    ReadPolicy::Lease => {
                        let lease = self
                            .inner
                            .raft
                            .ensure_linearizable(OpenraftReadPolicy::LeaseRead)
                            .await;
                        match lease {
                            // The lease is stale: confirm with a quorum instead.
                            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {
                                self.read_index().await?
                            }
                            other => self.read_answer(other)?,
                        }
                    }
                    ReadPolicy::ReadIndex => self.read_index().await?,
                };
                Ok(self.token(Some(read)))
            }
        }
    }

    async fn read_index(&self) -> Result<u64, ReadError> {
        let confirm = self
            .inner
            .raft
            .ensure_linearizable(OpenraftReadPolicy::ReadIndex);
        match tokio::time::timeout(self.inner.cfg.write_timeout, confirm).await {
            Err(_) => Err(ReadError::NoQuorum),
            Ok(answer) => self.read_answer(answer),
        }
    }

    fn read_answer(&self, answer: ReadResult) -> Result<u64, ReadError> {
        match answer {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(match leader_elsewhere(&f, self.inner.me.node_id) {
                    Some(leader) => ReadError::NotLeader { leader },
                    None => ReadError::NoLeader,
                })
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {
                Err(ReadError::NoQuorum)
            }
            Err(RaftError::Fatal(f)) => Err(ReadError::Fatal(f.to_string())),
        }
    }

    /// Once per start: wait until this copy applied the group's commit.
    async fn recover(&self) -> Result<(), ReadError> {
        if self.inner.recovered.load(Ordering::Acquire) {
            return Ok(());
        }
        self.inner
            .raft
            .wait_for_recovery(Some(self.inner.cfg.write_timeout))
            .await
            .map_err(|_| ReadError::NotRecovered)?;
        self.inner.recovered.store(true, Ordering::Release);
        Ok(())
    }

    fn token(&self, read_index: Option<u64>) -> ReadToken {
        ReadToken {
            read_index,
            applied_index: self.metrics().last_applied.map(|l| l.index),
        }
    }
}
