//! Membership and leadership, driven by the operator (docs/replication.md section 7):
//! initialize a group, add a learner, set the voters (joint consensus, waits until committed),
//! hand leadership to another voter. Each is idempotent: asking for what already holds
//! proposes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kvproto::raft::{GroupId, Member};
use openraft::ChangeMembers;
use openraft::error::{ChangeMembershipError, InitializeError};

use super::error::GroupError;
use super::shard_group::ShardGroup;
use super::write::leader_elsewhere;
use crate::apply::ApplyTarget;
use crate::types::{ClientWriteError, LogId, RaftError};

impl<T: ApplyTarget> ShardGroup<T> {
    /// Makes `voters` (this copy among them) the group's first membership. A copy already in a
    /// group answers `Ok` (idempotent). Waits up to `write_timeout` for a leader, then, when
    /// this copy leads a log that was never compacted, seals the records it held before the
    /// group existed (see [`Self::seal_records_before_the_log`]).
    pub async fn initialize(&self, group: GroupId, voters: Vec<Member>) -> Result<(), GroupError> {
        if group != self.inner.identity.group {
            return Err(GroupError::GroupMismatch {
                ours: self.inner.identity.group.to_string(),
                theirs: group.to_string(),
            });
        }
        let raft = &self.inner.raft;
        if raft.is_initialized().await.map_err(fatal)? {
            return self.seal_records_before_the_log().await;
        }
        if !voters.iter().any(|m| m.node_id == self.inner.me.node_id) {
            return Err(GroupError::Refused(format!(
                "the voters must include this copy ({})",
                self.inner.me
            )));
        }
        let nodes: BTreeMap<u64, Member> = voters.into_iter().map(|m| (m.node_id, m)).collect();
        match raft.initialize(nodes).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
                return Err(GroupError::Refused(e.to_string()));
            }
            Err(RaftError::Fatal(f)) => return Err(fatal(f)),
        }
        // An election follows; the first writes need not meet "no leader" if it is quick.
        let _ = raft
            .wait(Some(self.inner.cfg.write_timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader after initialize")
            .await;
        self.seal_records_before_the_log().await
    }

    /// A store converted to a group (factor 1 to 3) holds records no log entry carries, so a
    /// learner replaying the log from its start would never get them. The leader therefore
    /// builds a snapshot and purges the log up to it once, before any learner joins: every
    /// learner then starts from a snapshot, which carries the records. Does nothing on a
    /// follower or once the log was ever purged.
    async fn seal_records_before_the_log(&self) -> Result<(), GroupError> {
        let raft = &self.inner.raft;
        let bound = Some(self.inner.cfg.membership_timeout);
        let m = self.metrics();
        if !self.is_leader() || m.purged.is_some() {
            return Ok(());
        }
        let applied = raft
            .wait(bound)
            .metrics(|m| m.last_applied.is_some(), "the first entry applied")
            .await
            .map_err(|e| GroupError::Timeout(e.to_string()))?
            .last_applied;
        if m.snapshot.is_none() || m.snapshot < applied {
            raft.trigger().snapshot().await.map_err(fatal)?;
        }
        let snapshot = raft
            .wait(bound)
            .metrics(
                |m| m.snapshot.is_some() && m.snapshot >= applied,
                "a snapshot",
            )
            .await
            .map_err(|e| GroupError::Timeout(e.to_string()))?
            .snapshot;
        let Some(upto) = snapshot else {
            return Ok(());
        };
        raft.trigger().purge_log(upto.index).await.map_err(fatal)?;
        raft.wait(bound)
            .metrics(|m| m.purged.is_some(), "the log purged up to the snapshot")
            .await
            .map_err(|e| GroupError::Timeout(e.to_string()))?;
        tracing::info!(
            upto = upto.index,
            "records sealed into a snapshot for learners"
        );
        Ok(())
    }

    /// Adds `m` as a learner through this copy (the leader) and returns once that membership
    /// is committed, without waiting for the learner to catch up (it gets a snapshot, then
    /// the log; [`Self::status`] shows its lag).
    pub async fn add_learner(&self, m: Member) -> Result<(), GroupError> {
        if let Some(known) = self.member(m.node_id) {
            return if known == m {
                Ok(())
            } else {
                Err(GroupError::Refused(format!(
                    "node {} is already a member as {known}",
                    m.node_id
                )))
            };
        }
        let add = self.inner.raft.add_learner(m.node_id, m, false);
        match tokio::time::timeout(self.inner.cfg.membership_timeout, add).await {
            Err(_) => Err(GroupError::Timeout("adding a learner".to_owned())),
            Ok(Ok(resp)) => self.membership_shown(resp.log_id).await,
            Ok(Err(e)) => Err(self.membership_error(e)),
        }
    }

    /// Makes `voters` exactly the members (joint consensus), adding any that are not members
    /// yet as learners first; voters and learners not named are removed from the group (a
    /// learner the operator no longer wants must not keep receiving the log). Returns once the
    /// final membership is committed.
    pub async fn set_voters(&self, voters: Vec<Member>) -> Result<(), GroupError> {
        if voters.is_empty() {
            return Err(GroupError::Refused(
                "a group needs at least one voter".to_owned(),
            ));
        }
        let wanted: BTreeSet<u64> = voters.iter().map(|m| m.node_id).collect();
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let mut missing = BTreeMap::new();
        for m in &voters {
            match membership.get_node(&m.node_id) {
                None => {
                    missing.insert(m.node_id, m.clone());
                }
                Some(known) if known != m => {
                    return Err(GroupError::Refused(format!(
                        "node {} is already a member as {known}",
                        m.node_id
                    )));
                }
                Some(_) => {}
            }
        }
        let current: BTreeSet<u64> = membership.voter_ids().collect();
        // Learners only: the voters left out leave with the joint step (`retain` false), and a
        // voter of the joint config in progress cannot be dropped as a node.
        let in_configs: BTreeSet<u64> = membership
            .get_joint_config()
            .iter()
            .flatten()
            .copied()
            .collect();
        let unnamed: BTreeSet<u64> = membership
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !wanted.contains(id) && !in_configs.contains(id))
            .collect();
        if missing.is_empty()
            && unnamed.is_empty()
            && membership.get_joint_config().len() == 1
            && current == wanted
        {
            return Ok(());
        }
        let mut steps = Vec::new();
        if !missing.is_empty() {
            steps.push(ChangeMembers::AddNodes(missing));
        }
        steps.push(ChangeMembers::ReplaceAllVoters(wanted));
        if !unnamed.is_empty() {
            steps.push(ChangeMembers::RemoveNodes(unnamed));
        }
        let change = match <[_; 1]>::try_from(steps) {
            Ok([one]) => one,
            Err(steps) => ChangeMembers::Batch(steps),
        };
        let change = self.inner.raft.change_membership(change, false);
        match tokio::time::timeout(self.inner.cfg.membership_timeout, change).await {
            Err(_) => Err(GroupError::Timeout("changing the voters".to_owned())),
            Ok(Ok(resp)) => self.membership_shown(resp.log_id).await,
            Ok(Err(e)) => Err(self.membership_error(e)),
        }
    }

    /// Hands leadership from this copy (the leader) to `to`, or to the most caught-up other
    /// voter, and waits until another copy leads. Returns the new leader.
    ///
    /// openraft's leader stops proposing once it asked for a transfer, and never takes that
    /// back; the target ignores the request when its log is not flushed up to the leader's
    /// within `election_timeout_min`, and the request itself may be lost. Either leaves a
    /// leader that refuses every write until it is deposed. So the request is sent again each
    /// `election_timeout_min` while this copy still leads (its log no longer grows, so the
    /// target catches up), until another copy leads or the bound passes.
    pub async fn transfer_leadership(&self, to: Option<Member>) -> Result<Member, GroupError> {
        let me = self.inner.me.node_id;
        if !self.is_leader() {
            return Err(GroupError::NotLeader {
                leader: self.leader(),
            });
        }
        let target = self.transfer_target(to.as_ref())?;
        if target == me {
            return Ok(self.inner.me.clone());
        }
        let deadline = tokio::time::Instant::now() + self.transfer_bound();
        let again = self.inner.cfg.election_timeout_min;
        loop {
            if self.is_leader() {
                self.inner
                    .raft
                    .trigger()
                    .transfer_leader(target)
                    .await
                    .map_err(fatal)?;
            }
            let wait = again.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let moved = self
                .inner
                .raft
                .wait(Some(wait))
                .metrics(
                    |m| m.current_leader.is_some_and(|l| l != me),
                    "another copy leads after a transfer",
                )
                .await;
            if let Ok(m) = moved {
                return m
                    .current_leader
                    .and_then(|id| self.member(id))
                    .ok_or_else(|| {
                        GroupError::Timeout("the new leader is not a member".to_owned())
                    });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(GroupError::Timeout(
                    "leadership did not move in time".to_owned(),
                ));
            }
            tracing::info!(to = target, "leadership has not moved yet: asking again");
        }
    }

    /// The voter a transfer goes to: `to` (this copy: itself), else the most caught-up other.
    fn transfer_target(&self, to: Option<&Member>) -> Result<u64, GroupError> {
        let metrics = self.metrics();
        let me = self.inner.me.node_id;
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        match to {
            Some(m) if m.node_id == me => Ok(me),
            Some(m) if voters.contains(&m.node_id) => Ok(m.node_id),
            Some(m) => Err(GroupError::Refused(format!("{m} is not a voter"))),
            None => {
                let matched = |id: &u64| {
                    metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(id).cloned().flatten())
                        .map(|l| l.index)
                };
                voters
                    .iter()
                    .filter(|id| **id != me)
                    .max_by_key(|id| matched(id))
                    .copied()
                    .ok_or_else(|| GroupError::Refused("no other voter to lead".to_owned()))
            }
        }
    }

    /// Waits until the metrics show the membership of `log_id` (they may trail the answer of a
    /// change), so the status a caller reads next is the changed one, not the one before.
    async fn membership_shown(&self, log_id: LogId) -> Result<(), GroupError> {
        let upto = Some(log_id);
        self.inner
            .raft
            .wait(Some(self.inner.cfg.membership_timeout))
            .metrics(
                |m| *m.membership_config.log_id() >= upto,
                "the changed membership in the metrics",
            )
            .await
            .map(|_| ())
            .map_err(|e| GroupError::Timeout(e.to_string()))
    }

    /// A transfer is an election the target starts at once: a few election timeouts at most.
    fn transfer_bound(&self) -> Duration {
        (self.inner.cfg.election_timeout_max() * 3).max(self.inner.cfg.write_timeout)
    }

    fn membership_error(&self, e: RaftError<ClientWriteError>) -> GroupError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => GroupError::NotLeader {
                leader: leader_elsewhere(&f, self.inner.me.node_id).flatten(),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(p),
            )) => GroupError::InProgress(p.to_string()),
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
                GroupError::Timeout("the membership entry was discarded by a new leader".to_owned())
            }
            RaftError::APIError(other) => GroupError::Refused(other.to_string()),
            RaftError::Fatal(f) => fatal(f),
        }
    }
}

fn fatal(e: impl std::fmt::Display) -> GroupError {
    GroupError::Fatal(e.to_string())
}
