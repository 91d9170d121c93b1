//! One membership change of a shard's Raft group ([`RaftChange`]): what each `POST
//! /v1/admin/raft/*` route takes, so that [`super::ShardAdmin`] has one call for all of them
//! and the controller one way to send them.

use std::fmt;

use kvproto::raft::Member;
use kvproto::wire::ErrorCode;

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

impl RaftChange {
    /// True when `err` answers this change for good: a `join` refused with 409
    /// `raft_group_mismatch` (the copy holds keys of its own, runs or remembers another group,
    /// or has another node ID). Sending it again changes nothing; the volume must go.
    pub fn refused_for_good(&self, err: &kvclient::Error) -> bool {
        matches!(self, RaftChange::Join { .. })
            && matches!(
                err,
                kvclient::Error::Status {
                    status: 409,
                    code: Some(ErrorCode::RaftGroupMismatch),
                    ..
                }
            )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: Option<ErrorCode>) -> kvclient::Error {
        kvclient::Error::Status {
            server: "http://kv-0.kv.ns.svc:80".to_owned(),
            status,
            code,
            message: "refused".to_owned(),
        }
    }

    #[test]
    fn only_a_join_refused_with_raft_group_mismatch_is_final() {
        let join = RaftChange::Join {
            member: Member::default(),
        };
        let mismatch = answer(409, Some(ErrorCode::RaftGroupMismatch));
        assert!(join.refused_for_good(&mismatch));
        // Another refusal, or a copy that does not answer, is asked again.
        assert!(!join.refused_for_good(&answer(503, Some(ErrorCode::NoLeader))));
        assert!(!join.refused_for_good(&answer(409, None)));
        let gone = kvclient::Error::BadResponse {
            server: "x".to_owned(),
            reason: "connection refused".to_owned(),
        };
        assert!(!join.refused_for_good(&gone));
        // An init refused the same way is not a volume to delete: it waits.
        let init = RaftChange::Init { voters: vec![] };
        assert!(!init.refused_for_good(&mismatch));
    }
}
