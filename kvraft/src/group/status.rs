//! What `GET /v1/admin/raft/status` reports (kvproto::raft::RaftStatus), from openraft's
//! metrics: this copy's state and indexes, every member of the latest membership, and, on the
//! leader, how far each member has matched the log.

use std::collections::BTreeSet;

use kvproto::raft::{MemberStatus, RaftStatus, Role, ServerState};

use super::shard_group::ShardGroup;
use crate::apply::ApplyTarget;

impl<T: ApplyTarget> ShardGroup<T> {
    pub fn status(&self) -> RaftStatus {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let last = m.last_log_index;
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = m.replication.as_ref().map(|r| match r.get(id) {
                    Some(l) => l.as_ref().map(|l| l.index),
                    // The leader does not replicate to itself: it holds its whole log.
                    None if *id == m.id => last,
                    None => None,
                });
                let matched = matched.flatten();
                MemberStatus {
                    member: node.clone(),
                    role: if voters.contains(id) {
                        Role::Voter
                    } else {
                        Role::Learner
                    },
                    matched,
                    lag: m
                        .replication
                        .as_ref()
                        .map(|_| last.unwrap_or(0).saturating_sub(matched.unwrap_or(0))),
                }
            })
            .collect();
        RaftStatus {
            group: Some(self.inner.identity.group.clone()),
            node_id: m.id,
            state: match m.state {
                openraft::ServerState::Leader => ServerState::Leader,
                openraft::ServerState::Follower => ServerState::Follower,
                openraft::ServerState::Candidate => ServerState::Candidate,
                openraft::ServerState::Learner => ServerState::Learner,
                openraft::ServerState::Shutdown => ServerState::Shutdown,
            },
            term: m.current_term,
            leader: m
                .current_leader
                .and_then(|id| membership.get_node(&id).cloned()),
            last_log_index: last,
            committed: m.cluster_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
            members,
        }
    }
}
