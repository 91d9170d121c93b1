//! What a replicated shard's copy says about its Raft group: the group's identity on the wire
//! (`x-kv-raft-group`), the RPC protocol version, and the status the operator reads from
//! `GET /v1/admin/raft/status` (docs/replication.md sections 3, 5 and 7).
//!
//! Node IDs are random `u64`s (born with a volume), so JSON carries them as decimal strings: a
//! JSON number above 2^53 loses digits in most readers (`jq`, JavaScript).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The version of the Raft RPC bodies this build speaks (`x-kv-raft-protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The Raft group of one shard of one store: `<store-uid>/<shard>` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    /// The KVStore's `metadata.uid`: a store recreated under the same name is another group.
    pub store_uid: String,
    pub shard: u32,
}

/// Why a `x-kv-raft-group` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupIdError {
    #[error("raft group {0:?} is not <store-uid>/<shard>")]
    Shape(String),
    #[error("raft group {0:?} has an empty store uid")]
    EmptyUid(String),
    #[error("raft group {0:?} has a shard that is not a number")]
    Shard(String),
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store_uid, self.shard)
    }
}

impl FromStr for GroupId {
    type Err = GroupIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The shard is after the last '/', so a uid is taken whole (Kubernetes uids have none).
        let (uid, shard) = s
            .rsplit_once('/')
            .ok_or_else(|| GroupIdError::Shape(s.to_owned()))?;
        if uid.is_empty() || uid.contains('/') {
            return Err(GroupIdError::EmptyUid(s.to_owned()));
        }
        if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GroupIdError::Shard(s.to_owned()));
        }
        let shard = shard
            .parse()
            .map_err(|_| GroupIdError::Shard(s.to_owned()))?;
        Ok(GroupId {
            store_uid: uid.to_owned(),
            shard,
        })
    }
}

impl Serialize for GroupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A `u64` node ID as a decimal string in JSON (see the module docs).
mod node_id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One copy of a shard as its group knows it (openraft's `Node`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(with = "node_id_string")]
    pub node_id: u64,
    /// The pod name, e.g. `NAME-r1-3`: what `x-kv-leader` carries.
    pub pod: String,
    /// The copy's base URL (`peer_url`'s shape), where its Raft RPCs and forwarded requests go.
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.node_id, self.pod, self.addr)
    }
}

/// What the reporting copy is in its group right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Leader,
    Follower,
    Candidate,
    /// A non-voting member catching up (or not yet a member at all).
    Learner,
    /// The group stopped on this copy (a fatal storage error, or shutdown).
    Shutdown,
}

/// A member's place in the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Voter,
    Learner,
}

/// One member of the group, as the reporting copy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    #[serde(flatten)]
    pub member: Member,
    pub role: Role,
    /// The last log index the leader knows this member holds; only a leader reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<u64>,
    /// The leader's last log index minus `matched`; only a leader reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// `GET /v1/admin/raft/status`: one copy's view of its shard's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaftStatus {
    /// Absent on a copy 0 that has not been given its group yet (`POST .../init` carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    #[serde(with = "node_id_string")]
    pub node_id: u64,
    pub state: ServerState,
    pub term: u64,
    /// The leader this copy follows (itself when leading); absent during an election.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<Member>,
    /// Indexes of the last entry in the log, the last one known committed, the last one applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_log_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
    /// Every member of the latest membership (voters of both configs during a joint change).
    pub members: Vec<MemberStatus>,
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
    fn group_id_round_trips_and_refuses_other_shapes() {
        let g = GroupId {
            store_uid: "0b9c-11".to_owned(),
            shard: 3,
        };
        assert_eq!(g.to_string(), "0b9c-11/3");
        assert_eq!("0b9c-11/3".parse::<GroupId>(), Ok(g.clone()));
        assert_eq!(
            serde_json::to_string(&g).expect("serializes"),
            "\"0b9c-11/3\""
        );
        for bad in [
            "",
            "uid",
            "/3",
            "uid/",
            "uid/x",
            "uid/+3",
            "a/b/3",
            "uid/99999999999",
        ] {
            assert!(bad.parse::<GroupId>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<GroupId>("\"uid/x\"").is_err());
    }

    #[test]
    fn status_round_trips_with_node_ids_as_strings() {
        let status = RaftStatus {
            group: Some(GroupId {
                store_uid: "uid".to_owned(),
                shard: 0,
            }),
            node_id: u64::MAX,
            state: ServerState::Leader,
            term: 4,
            leader: Some(member(u64::MAX, "kv-0")),
            last_log_index: Some(10),
            committed: Some(10),
            applied: Some(9),
            members: vec![
                MemberStatus {
                    member: member(u64::MAX, "kv-0"),
                    role: Role::Voter,
                    matched: Some(10),
                    lag: Some(0),
                },
                MemberStatus {
                    member: member(7, "kv-r1-0"),
                    role: Role::Learner,
                    matched: None,
                    lag: None,
                },
            ],
        };
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(json["nodeId"], "18446744073709551615");
        assert_eq!(json["state"], "leader");
        assert_eq!(json["members"][0]["nodeId"], "18446744073709551615");
        assert_eq!(json["members"][0]["pod"], "kv-0");
        assert_eq!(json["members"][1]["role"], "learner");
        assert!(json["members"][1].get("matched").is_none());
        let back: RaftStatus = serde_json::from_value(json).expect("parses");
        assert_eq!(back, status);
    }

    #[test]
    fn a_node_id_that_is_not_a_u64_string_is_refused() {
        for bad in [
            r#"{"nodeId":"-1","pod":"p","addr":"a"}"#,
            r#"{"nodeId":"18446744073709551616","pod":"p","addr":"a"}"#,
            r#"{"nodeId":7,"pod":"p","addr":"a"}"#,
        ] {
            assert!(serde_json::from_str::<Member>(bad).is_err(), "{bad}");
        }
    }
}
