//! The operator's management routes for a replicated shard's group (docs/replication.md
//! sections 5 and 7): their paths and request bodies. Every POST carries `x-kv-raft-group`
//! (`header::RAFT_GROUP`); a copy of another group answers 409 `raft_group_mismatch`. Each
//! route is idempotent, so the operator may resend it after a restart.
//!
//! Members travel as whole [`Member`]s (node IDs as decimal strings), never as bare numbers.

use serde::{Deserialize, Serialize};

use crate::raft::{GroupId, Member};

/// `GET`: the copy's [`crate::raft::RaftStatus`] (every kvserver answers it; the node ID is
/// created on the volume at first need). A copy that is no member yet reports its node ID,
/// state `learner` and no members, which is how the operator learns a new copy's ID.
pub const STATUS_PATH: &str = "/v1/admin/raft/status";
/// `POST` [`InitRequest`]: form the group. 200 when this copy already belongs to exactly that
/// group; 409 `raft_group_mismatch` when it belongs to another membership or is not among
/// the voters.
pub const INIT_PATH: &str = "/v1/admin/raft/init";
/// `POST` [`AddLearnerRequest`] to the leader: the member starts receiving the log (or a
/// snapshot) without a vote. Answers at once; the operator polls `matched`/`lag` in the status.
pub const ADD_LEARNER_PATH: &str = "/v1/admin/raft/add-learner";
/// `POST` [`SetVotersRequest`] to the leader: joint change to exactly these voters (each must
/// already be a learner or voter). Answers once the final configuration is committed. Members
/// no longer voters are removed from the group.
pub const VOTERS_PATH: &str = "/v1/admin/raft/voters";
/// `POST` [`TransferLeaderRequest`] to the leader: hand leadership over; answers with the new
/// leader's [`Member`] once it leads.
pub const TRANSFER_LEADER_PATH: &str = "/v1/admin/raft/transfer-leader";
/// `POST` [`JoinRequest`] to a copy in no group (copy 0 on a replaced, empty volume: it has
/// no raft flags): it takes the group for good and waits, a non-member, until the leader adds
/// it (`add-learner`). 200 with its status; again, or on a copy already running that group:
/// 200. 409 `raft_group_mismatch` when it runs or remembers another group, when the member is
/// not this copy's node ID, or when it holds keys of its own (a live store is `init`ed, not
/// joined: joining would replace its keys with the group's).
pub const JOIN_PATH: &str = "/v1/admin/raft/join";

/// Form a shard's group on its first copy (1 → R: only copy 0, the others join as learners;
/// a new store at factor R: every copy at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitRequest {
    /// The group the copy joins for good: copy 0 of a store has no `--raft-store-uid` flag
    /// (factor 1's objects stay as they are), so it learns its group here.
    pub group: GroupId,
    /// The initial voters; the receiving copy must be one of them (by node ID), and takes its
    /// own advertised address from its entry.
    pub voters: Vec<Member>,
}

/// Rejoin a shard's group on a copy that lost its volume and has no flags to name the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub group: GroupId,
    /// The receiving copy as the group will list it: the node ID its status reports, its pod
    /// and advertised address (the entry the operator then sends to `add-learner`).
    pub member: Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddLearnerRequest {
    pub member: Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVotersRequest {
    pub voters: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferLeaderRequest {
    /// The copy to lead; absent: the most up-to-date other voter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Member>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, pod: &str) -> Member {
        Member {
            node_id: id,
            pod: pod.to_owned(),
            addr: format!("http://{pod}.kv.ns.svc:8080"),
        }
    }

    #[test]
    fn requests_round_trip_with_node_ids_as_strings() {
        let init = InitRequest {
            group: GroupId {
                store_uid: "uid".to_owned(),
                shard: 2,
            },
            voters: vec![member(u64::MAX, "kv-0"), member(7, "kv-r1-0")],
        };
        let json = serde_json::to_value(&init).expect("serializes");
        assert_eq!(json["voters"][0]["nodeId"], "18446744073709551615");
        assert_eq!(json["group"], "uid/2");
        assert_eq!(
            serde_json::from_value::<InitRequest>(json).expect("parses"),
            init
        );

        let join = JoinRequest {
            group: init.group.clone(),
            member: member(3, "kv-2"),
        };
        let json = serde_json::to_value(&join).expect("serializes");
        assert_eq!(json["member"]["nodeId"], "3");
        assert_eq!(
            serde_json::from_value::<JoinRequest>(json).expect("parses"),
            join
        );

        let none = TransferLeaderRequest { to: None };
        assert_eq!(serde_json::to_string(&none).expect("serializes"), "{}");
        assert_eq!(
            serde_json::from_str::<TransferLeaderRequest>("{}").expect("parses"),
            none
        );
        let to = TransferLeaderRequest {
            to: Some(member(9, "kv-r2-1")),
        };
        let back: TransferLeaderRequest =
            serde_json::from_str(&serde_json::to_string(&to).expect("serializes")).expect("parses");
        assert_eq!(back, to);
    }

    #[test]
    fn a_request_missing_its_members_is_refused() {
        assert!(serde_json::from_str::<InitRequest>("{}").is_err());
        assert!(serde_json::from_str::<AddLearnerRequest>("{}").is_err());
        assert!(serde_json::from_str::<JoinRequest>(r#"{"group":"uid/0"}"#).is_err());
        assert!(serde_json::from_str::<SetVotersRequest>(r#"{"voters":[{"nodeId":1}]}"#).is_err());
    }
}
