//! How healthy one shard's group is, from the copies' statuses: its leader, voters and
//! learners (as the leader reports them), how many voters are in sync, the quorum and the lag.
//!
//! Only a leader reports `matched`/`lag`, so without a leader no voter counts as in sync; the
//! shard is then below quorum only when too few voters answer at all to elect one (a brief
//! election is not a degradation).

use kvproto::raft::{MemberStatus, RaftStatus, Role, ServerState};

use super::view::ShardView;

/// A voter at most this many entries behind the leader's last index counts as in sync
/// (docs/replication.md section 7).
pub const IN_SYNC_LAG: u64 = 1_000;
/// A learner at most this many entries behind is promoted to voter, and a copy 0 this close
/// gets leadership back.
pub const PROMOTE_LAG: u64 = 100;

/// One shard's group as far as it could be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health<'a> {
    /// The copy that leads (the highest term among those that say they lead) and its status.
    pub leader: Option<(u32, &'a RaftStatus)>,
    /// The latest membership known: the leader's, else that of the copy with the highest term.
    pub members: &'a [MemberStatus],
    /// Voters within [`IN_SYNC_LAG`] of the leader (the leader included); 0 without a leader.
    pub in_sync: u32,
    /// Voters that answered (their node ID is a voter's), leader or not.
    pub answering_voters: u32,
    /// Majority of the voters; 0 before the group exists.
    pub quorum: u32,
    /// The largest lag of a voter or learner, as the leader reports it.
    pub max_lag: Option<u64>,
}

impl Health<'_> {
    /// The group exists as far as any copy knows.
    pub fn formed(&self) -> bool {
        !self.members.is_empty()
    }

    /// The voters of the membership.
    pub fn voters(&self) -> impl Iterator<Item = &MemberStatus> {
        self.members.iter().filter(|m| m.role == Role::Voter)
    }

    /// The learners of the membership.
    pub fn learners(&self) -> impl Iterator<Item = &MemberStatus> {
        self.members.iter().filter(|m| m.role == Role::Learner)
    }

    /// Fewer voters in sync than a quorum (or, without a leader, too few answering to elect
    /// one): writes stop on this shard.
    pub fn below_quorum(&self) -> bool {
        if !self.formed() {
            return false;
        }
        match self.leader {
            Some(_) => self.in_sync < self.quorum,
            None => self.answering_voters < self.quorum,
        }
    }
}

/// True when the leader's report puts `m` within `lag` entries of its last index (the leader's
/// own entry counts as in sync when it reports no lag for itself).
pub fn within(m: &MemberStatus, leader_id: Option<u64>, lag: u64) -> bool {
    match m.lag {
        Some(l) => l <= lag,
        None => Some(m.member.node_id) == leader_id,
    }
}

/// True when copy `copy` answered with a node ID its shard's formed group does not count
/// (a replaced volume not joined and added yet, or an ID that left).
pub fn outside_group(shard: &ShardView, copy: u32) -> bool {
    let h = health(shard);
    h.formed()
        && shard
            .status(copy)
            .is_some_and(|st| !h.members.iter().any(|m| m.member.node_id == st.node_id))
}

/// The health of `shard`'s group.
pub fn health(shard: &ShardView) -> Health<'_> {
    let statuses: Vec<(u32, &RaftStatus)> = shard
        .copies
        .iter()
        .filter_map(|c| c.status().map(|s| (c.copy, s)))
        .collect();
    let leader = statuses
        .iter()
        .filter(|(_, s)| s.state == ServerState::Leader)
        .max_by_key(|(_, s)| s.term)
        .copied();
    let members: &[MemberStatus] = match leader {
        Some((_, s)) => &s.members,
        None => statuses
            .iter()
            .filter(|(_, s)| !s.members.is_empty())
            .max_by_key(|(_, s)| s.term)
            .map_or(&[], |(_, s)| s.members.as_slice()),
    };
    let voters: Vec<&MemberStatus> = members.iter().filter(|m| m.role == Role::Voter).collect();
    let leader_id = leader.map(|(_, s)| s.node_id);
    let in_sync = match leader {
        Some(_) => voters
            .iter()
            .filter(|m| within(m, leader_id, IN_SYNC_LAG))
            .count(),
        None => 0,
    };
    let answering_voters = voters
        .iter()
        .filter(|m| statuses.iter().any(|(_, s)| s.node_id == m.member.node_id))
        .count();
    let max_lag = leader.and_then(|_| members.iter().filter_map(|m| m.lag).max());
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Health {
        leader,
        members,
        in_sync: count(in_sync),
        answering_voters: count(answering_voters),
        quorum: if voters.is_empty() {
            0
        } else {
            count(voters.len() / 2 + 1)
        },
        max_lag,
    }
}
