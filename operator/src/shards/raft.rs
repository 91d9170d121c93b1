//! One membership change of a shard's Raft group ([`RaftChange`]): what each `POST
//! /v1/admin/raft/*` route takes, so that [`super::ShardAdmin`] has one call for all of them
//! and the controller one way to send them.

use std::fmt;

use kvproto::raft::Member;

/// A `POST` of the Raft management routes (kvproto `raft_admin`), with its body's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftChange {
    /// `init`, to the copy that forms the group: these voters (that copy among them).
    Init { voters: Vec<Member> },
    /// `join`, to a copy in no group (copy 0 on a replaced volume): it takes the group as
    /// `member` and waits for the leader's `add-learner`.
    Join { member: Member },
    /// `add-learner`, to the leader: `member` starts receiving the log.
    AddLearner { member: Member },
    /// `voters`, to the leader: exactly these vote once committed (learners not named leave).
    SetVoters { voters: Vec<Member> },
    /// `transfer-leader`, to the leader: leadership to `to` (None: the server picks).
    TransferLeader { to: Option<Member> },
}

impl fmt::Display for RaftChange {
    /// For logs: the route and the pods it names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pods = |members: &[Member]| {
            members
                .iter()
                .map(|m| m.pod.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            RaftChange::Init { voters } => write!(f, "init with voters [{}]", pods(voters)),
            RaftChange::Join { member } => write!(f, "join as {member}"),
            RaftChange::AddLearner { member } => write!(f, "add-learner {member}"),
            RaftChange::SetVoters { voters } => write!(f, "voters [{}]", pods(voters)),
            RaftChange::TransferLeader { to: Some(to) } => write!(f, "transfer-leader to {to}"),
            RaftChange::TransferLeader { to: None } => write!(f, "transfer-leader"),
        }
    }
}
