//! Writes: propose the command through the leader and answer once it is committed **and
//! applied**, with the outcome apply computed (docs/replication.md section 6). A write whose
//! commit is not observed within `write_timeout` is `OutcomeUnknown`: it may still commit.

use kvproto::raft::Member;

#[cfg(feature = "unsafe-fault-modes")]
use super::config::UnsafeMode;
use super::error::WriteError;
use super::shard_group::ShardGroup;
use crate::apply::ApplyTarget;
use crate::command::{Command, Outcome};
use crate::types::{ClientWriteError, ForwardToLeader, RaftError};

impl<T: ApplyTarget> ShardGroup<T> {
    /// Proposes `cmd` and returns its applied outcome.
    pub async fn write(&self, cmd: Command) -> Result<Outcome, WriteError> {
        #[cfg(feature = "unsafe-fault-modes")]
        if self.inner.cfg.unsafe_mode == UnsafeMode::AckLocal
            && self.is_leader()
            && let Some(guess) = guessed_outcome(&cmd)
        {
            return self.write_ack_local(cmd, guess).await;
        }
        let proposal = self.inner.raft.client_write(cmd);
        match tokio::time::timeout(self.inner.cfg.write_timeout, proposal).await {
            Err(_) => Err(WriteError::OutcomeUnknown),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(self.write_error(e)),
        }
    }

    fn write_error(&self, e: RaftError<ClientWriteError>) -> WriteError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self.not_leader(f),
            // Proposed, then truncated or purged under a new leader: another copy may have
            // committed it.
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
                WriteError::OutcomeUnknown
            }
            RaftError::APIError(other) => WriteError::Fatal(other.to_string()),
            RaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
        }
    }

    /// Nothing was proposed: say where the leader is, if another copy leads.
    fn not_leader(&self, f: ForwardToLeader) -> WriteError {
        match leader_elsewhere(&f, self.inner.me.node_id) {
            Some(leader) => WriteError::NotLeader { leader },
            None => WriteError::NoLeader,
        }
    }

    /// `UnsafeMode::AckLocal` on a copy that believes it leads: answer as soon as the entry
    /// is in this copy's log (or its real outcome arrives first), before a quorum has it.
    #[cfg(feature = "unsafe-fault-modes")]
    async fn write_ack_local(&self, cmd: Command, guess: Outcome) -> Result<Outcome, WriteError> {
        let raft = self.inner.raft.clone();
        let timeout = self.inner.cfg.write_timeout;
        let before = self.metrics().last_log_index;
        // The proposal goes on after the answer (bounded, so the task ends).
        let mut proposal =
            tokio::spawn(
                async move { tokio::time::timeout(timeout, raft.client_write(cmd)).await },
            );
        let wait = self.inner.raft.wait(Some(timeout));
        let appended = wait.metrics(
            |m| m.last_log_index > before,
            "unsafe ack-local: the entry is in the local log",
        );
        tokio::select! {
            biased;
            done = &mut proposal => match done {
                Err(join) => Err(WriteError::Fatal(join.to_string())),
                Ok(Err(_)) => Err(WriteError::OutcomeUnknown),
                Ok(Ok(Ok(resp))) => Ok(resp.data),
                Ok(Ok(Err(e))) => Err(self.write_error(e)),
            },
            local = appended => match local {
                Ok(_) => Ok(guess),
                Err(_) => Err(WriteError::OutcomeUnknown),
            },
        }
    }
}

/// The leader a forward names, when it is another copy: `Some(None)` if its address is unknown.
pub(super) fn leader_elsewhere(f: &ForwardToLeader, me: u64) -> Option<Option<Member>> {
    match (&f.leader_id, &f.leader_node) {
        (Some(id), node) if *id != me => Some(node.clone()),
        _ => None,
    }
}

/// What `AckLocal` answers without applying: only plain puts and deletes are guessed.
#[cfg(feature = "unsafe-fault-modes")]
fn guessed_outcome(cmd: &Command) -> Option<Outcome> {
    match cmd {
        Command::Put { at_micros, .. } => Some(Outcome::Written {
            version: *at_micros,
        }),
        Command::Delete { at_micros, .. } => Some(Outcome::Deleted {
            version: *at_micros,
        }),
        _ => None,
    }
}
