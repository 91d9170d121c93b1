//! Fake Raft groups behind [`super::shards::FakeShards`]'s `raft_status` and `raft_change`: each
//! copy (by base URL) has a node ID and answers like a kvserver's `/v1/admin/raft/*` routes
//! (docs/replication.md section 7, the contract of "Phase 6 as landed"): a copy outside any group
//! reports its node ID, state `learner` and no members; `init` forms the group led by the copy
//! called; the other changes go to the leader (a follower answers 503 `no_leader`) and apply at
//! once; `voters` leaves exactly the members named, and a copy it removed goes on reporting the
//! membership it last knew; `join` (a copy 0 in no group) gives the copy its group as its flags
//! would, refused for another node ID or keys written outside any group. Every change received
//! is recorded, in order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kvproto::raft::{GroupId, Member, MemberStatus, RaftStatus, Role, ServerState};
use kvproto::wire::ErrorCode;
use operator::shards::{CallResult, RaftChange};

/// The store every test group belongs to: `kvstore(..)`'s name, namespace and uid.
pub const STORE: &str = "demo";
pub const UID: &str = "7a5d1b52-0000-4000-8000-000000000001";
/// The leader's last log index in every group.
pub const LAST_INDEX: u64 = 5_000;
/// How far behind a learner starts (until [`FakeGroups::catch_up`]).
pub const LEARNER_LAG: u64 = 40_000;

/// Copy `copy` of shard `shard` of [`STORE`] as a member with `node_id`.
pub fn member(shard: u32, copy: u32, node_id: u64) -> Member {
    Member {
        node_id,
        pod: kvproto::copy_pod(STORE, copy, shard),
        addr: url(shard, copy),
    }
}

/// The base URL of copy `copy` of shard `shard` (where the operator sends its calls).
pub fn url(shard: u32, copy: u32) -> String {
    kvproto::copy_url_tls(STORE, "default", copy, shard, 80, false)
}

/// The group of `shard`.
pub fn group(shard: u32) -> GroupId {
    GroupId {
        store_uid: UID.to_owned(),
        shard,
    }
}

/// One copy's process.
#[derive(Debug, Clone)]
struct Copy {
    node_id: u64,
    /// The group in its flags (copies k ≥ 1); copy 0 learns it from `init`.
    flags: Option<GroupId>,
    /// The membership it last knew after a `voters` removed it.
    left: Option<(GroupId, Vec<MemberStatus>)>,
    /// Keys written to it outside any group (a replaced copy 0 that served as a factor-1
    /// server before its `join`).
    keys: u64,
}

/// One group: members in order, the leader's node ID, each member's lag.
#[derive(Debug, Clone)]
struct Group {
    members: Vec<(Member, Role)>,
    leader: u64,
    term: u64,
    lag: BTreeMap<u64, u64>,
}

#[derive(Debug, Default)]
struct State {
    copies: BTreeMap<String, Copy>,
    groups: BTreeMap<GroupId, Group>,
    changes: Vec<(String, GroupId, RaftChange)>,
}

#[derive(Debug, Default)]
pub struct FakeGroups {
    state: Mutex<State>,
}

fn refused(url: &str, status: u16, code: ErrorCode, message: &str) -> kvclient::Error {
    kvclient::Error::Status {
        server: url.to_owned(),
        status,
        code: Some(code),
        message: message.to_owned(),
    }
}

impl FakeGroups {
    /// Copy `copy` of `shard` runs with a volume whose node ID is `node_id`, in no group
    /// (replacing whatever process answered there: a new volume).
    pub fn start(&self, shard: u32, copy: u32, node_id: u64) {
        let process = Copy {
            node_id,
            flags: (copy > 0).then(|| group(shard)),
            left: None,
            keys: 0,
        };
        let mut state = self.state.lock().unwrap();
        state.copies.insert(url(shard, copy), process);
    }

    /// Copy `copy` of `shard` took `keys` writes outside any group (its `join` is refused).
    pub fn write_outside(&self, shard: u32, copy: u32, keys: u64) {
        let mut state = self.state.lock().unwrap();
        let c = state
            .copies
            .get_mut(&url(shard, copy))
            .expect("no such copy");
        c.keys += keys;
    }

    /// Copy `copy` of `shard` stops answering.
    pub fn stop(&self, shard: u32, copy: u32) {
        self.state.lock().unwrap().copies.remove(&url(shard, copy));
    }

    /// `shard`'s group exists with `voters` (copy, node ID), every copy running, the first
    /// leading, all caught up.
    pub fn formed(&self, shard: u32, voters: &[(u32, u64)]) {
        for (copy, id) in voters {
            self.start(shard, *copy, *id);
        }
        let members = voters
            .iter()
            .map(|(copy, id)| (member(shard, *copy, *id), Role::Voter))
            .collect();
        let leader = voters.first().map_or(0, |(_, id)| *id);
        let g = Group {
            members,
            leader,
            term: 1,
            lag: BTreeMap::new(),
        };
        self.state.lock().unwrap().groups.insert(group(shard), g);
    }

    /// Every member of `shard`'s group is `lag` entries behind its leader (the leader none).
    pub fn lag_all(&self, shard: u32, lag: u64) {
        let mut state = self.state.lock().unwrap();
        let g = state.groups.get_mut(&group(shard)).expect("no such group");
        let leader = g.leader;
        for (m, _) in &g.members {
            if m.node_id != leader {
                g.lag.insert(m.node_id, lag);
            }
        }
    }

    /// Member `node_id` of `shard`'s group is `lag` entries behind its leader.
    pub fn lag(&self, shard: u32, node_id: u64, lag: u64) {
        let mut state = self.state.lock().unwrap();
        let g = state.groups.get_mut(&group(shard)).expect("no such group");
        g.lag.insert(node_id, lag);
    }

    /// Every member of `shard`'s group caught up.
    pub fn catch_up(&self, shard: u32) {
        self.lag_all(shard, 0);
    }

    /// `shard`'s leadership moves to `node_id` (a failover).
    pub fn elect(&self, shard: u32, node_id: u64) {
        let mut state = self.state.lock().unwrap();
        let g = state.groups.get_mut(&group(shard)).expect("no such group");
        g.leader = node_id;
        g.term += 1;
        g.lag.remove(&node_id);
    }

    /// `shard`'s members as (pod, role), in order.
    pub fn members(&self, shard: u32) -> Vec<(String, Role)> {
        let state = self.state.lock().unwrap();
        state.groups.get(&group(shard)).map_or_else(Vec::new, |g| {
            g.members.iter().map(|(m, r)| (m.pod.clone(), *r)).collect()
        })
    }

    /// The pod leading `shard`'s group.
    pub fn leader(&self, shard: u32) -> Option<String> {
        let state = self.state.lock().unwrap();
        let g = state.groups.get(&group(shard))?;
        g.members
            .iter()
            .find(|(m, _)| m.node_id == g.leader)
            .map(|(m, _)| m.pod.clone())
    }

    /// Every change received, in order: the URL it went to, the group header, the change.
    pub fn changes(&self) -> Vec<(String, GroupId, RaftChange)> {
        self.state.lock().unwrap().changes.clone()
    }

    /// `GET /v1/admin/raft/status` of the copy at `url`.
    pub fn status(&self, url: &str) -> CallResult<RaftStatus> {
        let state = self.state.lock().unwrap();
        let Some(copy) = state.copies.get(url) else {
            return Err(kvclient::Error::BadResponse {
                server: url.to_owned(),
                reason: "connection refused".to_owned(),
            });
        };
        let joined = state
            .groups
            .iter()
            .find(|(_, g)| g.members.iter().any(|(m, _)| m.node_id == copy.node_id));
        if let Some((id, g)) = joined {
            return Ok(report(id, g, copy.node_id));
        }
        if let Some((id, members)) = &copy.left {
            // Removed: it still believes the membership it last knew, and leads nothing.
            return Ok(RaftStatus {
                group: Some(id.clone()),
                node_id: copy.node_id,
                state: ServerState::Follower,
                term: 1,
                leader: None,
                last_log_index: Some(LAST_INDEX),
                committed: Some(LAST_INDEX),
                applied: Some(LAST_INDEX),
                members: members.clone(),
            });
        }
        Ok(RaftStatus {
            group: copy.flags.clone(),
            node_id: copy.node_id,
            state: ServerState::Learner,
            term: 0,
            leader: None,
            last_log_index: None,
            committed: None,
            applied: None,
            members: Vec::new(),
        })
    }

    /// A `POST /v1/admin/raft/*` to the copy at `url`, recorded, then applied as a kvserver
    /// would.
    pub fn change(&self, url: &str, id: &GroupId, change: &RaftChange) -> CallResult<()> {
        let mut guard = self.state.lock().unwrap();
        let state = &mut *guard;
        state
            .changes
            .push((url.to_owned(), id.clone(), change.clone()));
        let Some(copy) = state.copies.get(url).cloned() else {
            return Err(kvclient::Error::BadResponse {
                server: url.to_owned(),
                reason: "connection refused".to_owned(),
            });
        };
        if copy.flags.as_ref().is_some_and(|f| f != id) {
            return Err(refused(
                url,
                409,
                ErrorCode::RaftGroupMismatch,
                "another group",
            ));
        }
        if let RaftChange::Join { member } = change {
            // kvserver's join: the copy's own node ID, no keys of its own; it then runs the
            // group (as its flags would) and waits for the leader's add-learner.
            if member.node_id != copy.node_id {
                return Err(refused(
                    url,
                    409,
                    ErrorCode::RaftGroupMismatch,
                    "another node",
                ));
            }
            if copy.flags.is_none() && copy.keys > 0 {
                let why = format!("this copy holds {} keys of its own and no group", copy.keys);
                return Err(refused(url, 409, ErrorCode::RaftGroupMismatch, &why));
            }
            if let Some(c) = state.copies.get_mut(url) {
                c.flags = Some(id.clone());
            }
            return Ok(());
        }
        if let RaftChange::Init { voters } = change {
            let members: Vec<(Member, Role)> =
                voters.iter().map(|m| (m.clone(), Role::Voter)).collect();
            if let Some(g) = state.groups.get(id) {
                return if g.members == members {
                    Ok(())
                } else {
                    Err(refused(
                        url,
                        409,
                        ErrorCode::RaftGroupMismatch,
                        "formed otherwise",
                    ))
                };
            }
            let g = Group {
                members,
                leader: copy.node_id,
                term: 1,
                lag: BTreeMap::new(),
            };
            state.groups.insert(id.clone(), g);
            return Ok(());
        }
        let Some(g) = state.groups.get_mut(id) else {
            return Err(refused(url, 503, ErrorCode::NoLeader, "no group"));
        };
        if g.leader != copy.node_id {
            return Err(refused(url, 503, ErrorCode::NoLeader, "not the leader"));
        }
        match change {
            RaftChange::Init { .. } | RaftChange::Join { .. } => {}
            RaftChange::AddLearner { member } => {
                if !g.members.iter().any(|(m, _)| m.node_id == member.node_id) {
                    g.members.push((member.clone(), Role::Learner));
                    g.lag.insert(member.node_id, LEARNER_LAG);
                }
            }
            RaftChange::SetVoters { voters } => {
                let before = report(id, g, g.leader).members;
                let removed: Vec<u64> = g
                    .members
                    .iter()
                    .map(|(m, _)| m.node_id)
                    .filter(|n| !voters.iter().any(|v| v.node_id == *n))
                    .collect();
                g.members = voters.iter().map(|m| (m.clone(), Role::Voter)).collect();
                for n in removed {
                    g.lag.remove(&n);
                    let left = state.copies.values_mut().find(|c| c.node_id == n);
                    if let Some(c) = left {
                        c.left = Some((id.clone(), before.clone()));
                    }
                }
            }
            RaftChange::TransferLeader { to } => {
                let to = to.as_ref().expect("the operator names the new leader");
                g.leader = to.node_id;
                g.term += 1;
                g.lag.remove(&to.node_id);
            }
        }
        Ok(())
    }
}

/// The status of member `node_id` of group `id`: the leader reports every member's lag.
fn report(id: &GroupId, g: &Group, node_id: u64) -> RaftStatus {
    let leads = g.leader == node_id;
    let members = g
        .members
        .iter()
        .map(|(m, role)| {
            let lag = leads.then(|| g.lag.get(&m.node_id).copied().unwrap_or(0));
            MemberStatus {
                member: m.clone(),
                role: *role,
                matched: lag.map(|l| LAST_INDEX.saturating_sub(l)),
                lag,
            }
        })
        .collect();
    let leader = g.members.iter().find(|(m, _)| m.node_id == g.leader);
    RaftStatus {
        group: Some(id.clone()),
        node_id,
        state: if leads {
            ServerState::Leader
        } else {
            ServerState::Follower
        },
        term: g.term,
        leader: leader.map(|(m, _)| m.clone()),
        last_log_index: Some(LAST_INDEX),
        committed: Some(LAST_INDEX),
        applied: Some(LAST_INDEX),
        members,
    }
}
