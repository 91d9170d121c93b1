//! The management routes of a replicated shard's group (`kvproto::raft_admin`), behind the
//! admin token; the operator drives membership with them (docs/replication.md section 7).
//!
//! - `GET status`: the running group's status (state, term, leader, indexes, members, and on a
//!   leader `matched`/`lag`), else the copy's node ID (created at the first call), its group by
//!   the flags (none on copy 0), state `learner` and no members.
//! - Every `POST` carries `x-kv-raft-group`: missing or unparsable 400 `bad_request`, another
//!   group than this copy's 409 `raft_group_mismatch`.
//! - `init`: 200 with the copy's status; idempotent (already in exactly that group with those
//!   voters: 200); this copy not among the voters, or already in another membership: 409
//!   `raft_group_mismatch`.
//! - `join`: a copy in no group (copy 0 on a replaced, empty volume) takes the group and waits
//!   as a non-member for the leader's `add-learner`; 200 with its status, idempotent; 409
//!   `raft_group_mismatch` for another group, another node ID, or a copy holding keys.
//! - `add-learner`, `voters`: 200 with the leader's status after the change (`voters` once the
//!   final configuration is committed; the members are then exactly the voters named, a learner
//!   left out is removed too). `transfer-leader`: 200 with the new leader's member.
//! - Refusals of the three: not the leader 503 `no_leader` (`x-kv-leader` names it when known),
//!   a membership change in progress 503 `peer_unavailable`, not observed in time 504
//!   `outcome_unknown`, input openraft refuses 400 `bad_request`, storage 500.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use kvproto::raft::{GroupId, Member, RaftStatus, Role};
use kvproto::raft_admin::{
    AddLearnerRequest, InitRequest, JoinRequest, SetVotersRequest, TransferLeaderRequest,
};
use kvproto::wire::header;
use kvraft::ShardGroup;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::group_start;
use crate::state::AppState;
use crate::storage::Store;

/// `GET /v1/admin/raft/status`.
pub async fn status(State(state): State<AppState>) -> Result<Json<RaftStatus>> {
    if let Some(g) = state.raft.running() {
        return Ok(Json(g.status()));
    }
    let _settled = state.raft.settled().await;
    if let Some(g) = state.raft.running() {
        return Ok(Json(g.status()));
    }
    let node = state.raft.clone();
    // The first call may create the volume's raft state (synced writes).
    let status = tokio::task::spawn_blocking(move || node.status())
        .await
        .map_err(|e| Error::Raft(e.to_string()))??;
    Ok(Json(status))
}

/// `POST /v1/admin/raft/init`.
pub async fn init(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RaftStatus>> {
    let (sent, req) = naming_its_group(&state, &headers, &body, |r: &InitRequest| &r.group)?;
    let wanted: BTreeSet<u64> = req.voters.iter().map(|m| m.node_id).collect();
    let g = started_group(&state, &sent, |my_id| own_entry(&req.voters, my_id)).await?;
    let current = g.status();
    if !current.members.is_empty() {
        let voters: BTreeSet<u64> = current
            .members
            .iter()
            .filter(|m| m.role == Role::Voter)
            .map(|m| m.member.node_id)
            .collect();
        return if voters == wanted {
            Ok(Json(current))
        } else {
            Err(Error::RaftGroupMismatch(format!(
                "this copy is already in a membership of {sent} with voters {voters:?}, not \
                 {wanted:?}"
            )))
        };
    }
    own_entry(&req.voters, g.me().node_id)?;
    g.initialize(sent, req.voters).await.map_err(|e| match e {
        // Not among the voters, by openraft's own check.
        kvraft::GroupError::Refused(m) => Error::RaftGroupMismatch(m),
        other => Error::from(other),
    })?;
    if let Err(e) = group_start::seed_topology(&state, g).await {
        tracing::warn!(error = %e, "the group does not carry the served topology yet");
    }
    tracing::info!(group = %g.group_id(), voters = wanted.len(), "raft group initialized");
    Ok(Json(g.status()))
}

/// `POST /v1/admin/raft/join`: a copy in no group (copy 0 on a replaced, empty volume) takes
/// the group and waits for the leader to add it. Refused on a copy that holds keys of its own
/// (the group's snapshot would replace them), for another copy's node ID, or another group.
pub async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RaftStatus>> {
    let (sent, req) = naming_its_group(&state, &headers, &body, |r: &JoinRequest| &r.group)?;
    let wanted = req.member.node_id;
    let g = started_group(&state, &sent, |my_id| {
        if wanted != my_id {
            return Err(Error::RaftGroupMismatch(format!(
                "this copy is node {my_id}, the request names node {wanted}"
            )));
        }
        let keys = state.store.key_count();
        if keys > 0 {
            return Err(Error::RaftGroupMismatch(format!(
                "this copy holds {keys} keys of its own and no group: a live store is formed \
                 with init; a replaced copy joins on an empty volume"
            )));
        }
        Ok(req.member.clone())
    })
    .await?;
    if g.me().node_id != wanted {
        return Err(Error::RaftGroupMismatch(format!(
            "this copy is node {}, the request names node {wanted}",
            g.me().node_id
        )));
    }
    tracing::info!(group = %g.group_id(), node_id = wanted, "joined a raft group, waiting to be added");
    Ok(Json(g.status()))
}

/// The group running here, else `group` started with this copy's entry as `entry` picks it
/// from the node ID (refusing the start with its error). Copy 0's ID from before its group is
/// adopted, so the ID the operator learned stays valid.
async fn started_group<'a>(
    state: &'a AppState,
    group: &GroupId,
    entry: impl FnOnce(u64) -> Result<Member>,
) -> Result<&'a ShardGroup<Store>> {
    if let Some(g) = state.raft.running() {
        return Ok(g);
    }
    let settled = state.raft.settled().await;
    if let Some(g) = state.raft.running() {
        return Ok(g);
    }
    let node = state.raft.clone();
    let my_id = tokio::task::spawn_blocking(move || node.node_id())
        .await
        .map_err(|e| Error::Raft(e.to_string()))??;
    let me = entry(my_id)?;
    drop(settled);
    let adopt = state.raft.flags_group().is_none().then_some(my_id);
    let (g, started) = state
        .raft
        .join(group.clone(), me, adopt, group_start::peer_net(state))
        .await?;
    if started {
        group_start::follow_applied_topology(state.clone(), state.group_tasks.clone());
    }
    Ok(g)
}

/// `POST /v1/admin/raft/add-learner`.
pub async fn add_learner(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RaftStatus>> {
    let g = our_leading_group(&state, &headers)?;
    let req: AddLearnerRequest = parse(&body)?;
    g.add_learner(req.member).await?;
    Ok(Json(g.status()))
}

/// `POST /v1/admin/raft/voters`.
pub async fn voters(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RaftStatus>> {
    let g = our_leading_group(&state, &headers)?;
    let req: SetVotersRequest = parse(&body)?;
    g.set_voters(req.voters).await?;
    Ok(Json(g.status()))
}

/// `POST /v1/admin/raft/transfer-leader`.
pub async fn transfer_leader(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Member>> {
    let g = our_group(&state, &headers)?;
    let req: TransferLeaderRequest = parse(&body)?;
    Ok(Json(g.transfer_leadership(req.to).await?))
}

/// The group a POST names and its body, whose own group must be the header's (400); 409 when
/// this copy belongs to another group.
fn naming_its_group<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    group_of: fn(&T) -> &GroupId,
) -> Result<(GroupId, T)> {
    let sent = group_header(headers)?;
    let req: T = parse(body)?;
    if *group_of(&req) != sent {
        return Err(Error::BadRequest(format!(
            "{} names {sent}, the body {}",
            header::RAFT_GROUP,
            group_of(&req)
        )));
    }
    if let Some(ours) = state.raft.group()
        && *ours != sent
    {
        return Err(mismatch(ours, &sent));
    }
    Ok((sent, req))
}

/// `x-kv-raft-group` of a POST: 400 when missing or not `<uid>/<shard>`.
fn group_header(headers: &HeaderMap) -> Result<GroupId> {
    let raw = headers
        .get(header::RAFT_GROUP)
        .ok_or_else(|| Error::BadRequest(format!("{} is missing", header::RAFT_GROUP)))?;
    raw.to_str()
        .map_err(|_| Error::BadRequest(format!("{} is not text", header::RAFT_GROUP)))?
        .parse()
        .map_err(|e| Error::BadRequest(format!("{}: {e}", header::RAFT_GROUP)))
}

/// The running group the request names: 409 for another group or none here.
fn our_group<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a ShardGroup<Store>> {
    let sent = group_header(headers)?;
    match (state.raft.running(), state.raft.group()) {
        (Some(g), _) if *g.group_id() == sent => Ok(g),
        (_, Some(ours)) if *ours != sent => Err(mismatch(ours, &sent)),
        // By its flags in this group, but the group does not run here (no server loop).
        (None, Some(_)) => Err(Error::NoLeader),
        (_, _) => Err(Error::RaftGroupMismatch(format!(
            "this copy is in no raft group yet, the request names {sent} (POST init first)"
        ))),
    }
}

/// [`our_group`] on its leader: a membership change asked of a follower is refused (503
/// `no_leader`) even when it already holds, so a 200 always carries the leader's status.
fn our_leading_group<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
) -> Result<&'a ShardGroup<Store>> {
    let g = our_group(state, headers)?;
    if g.is_leader() {
        Ok(g)
    } else {
        Err(Error::NoLeader)
    }
}

fn mismatch(ours: &GroupId, theirs: &GroupId) -> Error {
    Error::RaftGroupMismatch(format!(
        "this copy is in raft group {ours}, the request names {theirs}"
    ))
}

/// This copy's entry among `voters`: 409 when it is not one of them.
fn own_entry(voters: &[Member], node_id: u64) -> Result<Member> {
    voters
        .iter()
        .find(|m| m.node_id == node_id)
        .cloned()
        .ok_or_else(|| {
            Error::RaftGroupMismatch(format!(
                "this copy (node {node_id}) is not among the voters"
            ))
        })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("bad request body: {e}")))
}
