//! Serving a request on a replicated shard's copy (docs/replication.md sections 5 and 6): here
//! when this copy leads (a read once the read barrier passed), from this copy's applied state
//! for an opted-in follower read (`x-kv-read: follower`), otherwise forwarded to the leader,
//! whose answer is passed back. A server with no group serves everything here, as before.
//!
//! A request sent to the leader is marked with its sender (`to_leader.rs`). A copy that
//! receives a marked request it cannot serve waits (bounded) to lead, or, for a data request,
//! sends it on to a leader other than its sender (the hops bound the chain): a drained leader
//! that stepped down passes on what followers that have not heard of the new leader still send
//! it. A copy that knows no leader waits, two election timeouts at most, for the election to
//! end; still none is 503 `no_leader` (nothing was proposed: any request may be retried).

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use bytes::Bytes;
use kvproto::raft::Member;
use kvproto::topology::{ForwardedBy, MAX_HOPS};
use kvproto::wire::header;
use kvraft::{ReadError, ReadMode, ReadToken, ShardGroup};

use crate::error::{Error, Result};
use crate::peer::ToLeader;
use crate::raft_node::Via;
use crate::routing::forwarded_by;
use crate::state::AppState;
use crate::storage::Store;
use crate::to_leader::Marker;

/// What a request needs of the copy that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A change: only the leader proposes.
    Write,
    /// A linearizable read: the leader, after its read barrier.
    Read,
    /// An opted-in follower read: any copy, from its applied state.
    FollowerRead,
}

impl Need {
    /// A read, or a follower read when the request opts into one (`x-kv-read: follower`).
    pub fn read(headers: &HeaderMap) -> Need {
        let follower = headers
            .get(header::READ)
            .is_some_and(|v| v.as_bytes().trim_ascii() == header::READ_FOLLOWER.as_bytes());
        if follower {
            Need::FollowerRead
        } else {
            Need::Read
        }
    }
}

/// The request, as far as forwarding it needs.
pub struct Forwardable<'a> {
    pub method: Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The route's read-through shard, passed on as cross-shard forwards do.
    pub read_through: Option<u32>,
    /// An admin request goes on with the caller's own token, a data request with the peer
    /// token and the forwarding headers.
    pub admin: bool,
    /// The answer is a stream (an export, `/allKeys`): a forward passes it back as it comes
    /// instead of reading it whole first.
    pub streamed: bool,
}

impl<'a> Forwardable<'a> {
    /// A data request (sent on with the peer token and the forwarding headers), answered whole.
    pub fn data(
        method: Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        body: Bytes,
        read_through: Option<u32>,
    ) -> Self {
        Forwardable {
            method,
            uri,
            headers,
            body,
            read_through,
            admin: false,
            streamed: false,
        }
    }

    /// A data `GET` (no body).
    pub fn get(uri: &'a Uri, headers: &'a HeaderMap, read_through: Option<u32>) -> Self {
        Self::data(Method::GET, uri, headers, Bytes::new(), read_through)
    }
}

/// Runs `here` on this copy if it may serve the request (no group, the leader, or any copy for
/// a follower read), with what the read barrier established; else forwards the request to the
/// leader. A `here` that finds leadership gone before proposing anything
/// ([`Error::NotLeader`]) is forwarded too.
#[inline]
pub async fn serve<F, Fut>(
    state: &AppState,
    req: Forwardable<'_>,
    need: Need,
    here: F,
) -> Result<Response>
where
    F: FnOnce(Option<ReadToken>) -> Fut,
    Fut: Future<Output = Result<Response>>,
{
    match state.raft.via() {
        Via::Local => here(None).await,
        Via::Group(g) => on_group(state, g, req, need, here).await,
    }
}

async fn on_group<F, Fut>(
    state: &AppState,
    g: &ShardGroup<Store>,
    req: Forwardable<'_>,
    need: Need,
    here: F,
) -> Result<Response>
where
    F: FnOnce(Option<ReadToken>) -> Fut,
    Fut: Future<Output = Result<Response>>,
{
    let marked = Marker::of(req.headers);
    if need == Need::FollowerRead {
        let token = g
            .read_barrier(ReadMode::Follower)
            .await
            .map_err(read_error)?;
        let mut resp = here(Some(token)).await?;
        if let Some(applied) = token.applied_index {
            resp.headers_mut()
                .insert(header::APPLIED_INDEX, HeaderValue::from(applied));
        }
        return Ok(resp);
    }
    if let Some(leader) = leader_elsewhere(g, marked, req.admin).await? {
        return forward(state, g, &req, &leader, need).await;
    }
    let token = match need {
        Need::Read => match g.read_barrier(ReadMode::Linearizable).await {
            Ok(token) => Some(token),
            Err(ReadError::NotLeader {
                leader: Some(leader),
            }) if may_go(marked, req.admin) => {
                return forward(state, g, &req, &leader, need).await;
            }
            Err(e) => return after_refusal(state, g, &req, need, marked, read_error(e)).await,
        },
        _ => None,
    };
    match here(token).await {
        Err(Error::NotLeader(leader)) if may_go(marked, req.admin) => {
            forward(state, g, &req, &leader, need).await
        }
        Err(Error::NotLeader(_)) => Err(Error::NoLeader),
        Err(e @ Error::NoLeader) => after_refusal(state, g, &req, need, marked, e).await,
        other => other,
    }
}

/// Whether a request may go to a leader: any request this copy received from a client; one
/// sent here as to the leader only when [`Marker::may_pass_on`] allows it.
fn may_go(marked: Option<Marker>, admin: bool) -> bool {
    marked.is_none_or(|m| m.may_pass_on(admin))
}

/// Leadership left this copy between the check and the proposal (or the barrier), nothing
/// proposed: once the election ends, the request goes to the new leader (a marked one too, as
/// [`may_go`] allows, even to its sender: it leads now, which it did not when it sent it).
async fn after_refusal(
    state: &AppState,
    g: &ShardGroup<Store>,
    req: &Forwardable<'_>,
    need: Need,
    marked: Option<Marker>,
    refusal: Error,
) -> Result<Response> {
    if !matches!(refusal, Error::NoLeader) {
        return Err(refusal);
    }
    let me = g.me().node_id;
    match g.await_leader(g.election_timeout_max() * 2, None).await {
        Some(leader) if leader.node_id != me && may_go(marked, req.admin) => {
            forward(state, g, req, &leader, need).await
        }
        _ => Err(refusal),
    }
}

/// The leader to forward to, or `None` when this copy leads. A copy between leaders waits for
/// the election to end. A request sent here as to the leader goes on (a data request whose
/// sender is known) to the leader this copy knows, unless that is its sender (the two would
/// send it back and forth): it then waits until another copy, or this one, leads. So a copy
/// that stepped down (a drained leader) passes on what followers that have not heard of the
/// new leader still send it, instead of holding it for an election that will not make it
/// leader again.
async fn leader_elsewhere(
    g: &ShardGroup<Store>,
    marked: Option<Marker>,
    admin: bool,
) -> Result<Option<Member>> {
    if g.is_leader() {
        return Ok(None);
    }
    let me = g.me().node_id;
    let known = g.leader().filter(|l| l.node_id != me);
    let skip = match (marked, known) {
        (None, Some(leader)) => return Ok(Some(leader)),
        (_, None) => None,
        // Its sender, which took this copy for the leader (or a sender this build cannot name,
        // as before): not where it goes.
        (Some(Marker { from }), Some(leader)) if from.is_none_or(|f| f == leader.node_id) => {
            Some(leader.node_id)
        }
        (Some(_), Some(leader)) if may_go(marked, admin) => return Ok(Some(leader)),
        (Some(_), Some(leader)) => Some(leader.node_id),
    };
    match g.await_leader(g.election_timeout_max() * 2, skip).await {
        Some(leader) if leader.node_id == me => Ok(None),
        Some(leader) if may_go(marked, admin) => Ok(Some(leader)),
        _ => Err(Error::NoLeader),
    }
}

async fn forward(
    state: &AppState,
    g: &ShardGroup<Store>,
    req: &Forwardable<'_>,
    leader: &Member,
    need: Need,
) -> Result<Response> {
    let by = if req.admin {
        None
    } else {
        let incoming = forwarded_by(state, req.headers)?;
        let hops = incoming.map_or(0, |f| f.hops);
        if hops >= MAX_HOPS {
            // Not sent on again; nothing was proposed.
            return Err(Error::NoLeader);
        }
        Some(ForwardedBy {
            epoch: incoming.map_or(0, |f| f.epoch).max(state.epoch()),
            hops: hops + 1,
            read_through: req.read_through,
        })
    };
    state.metrics.raft.forwarded_to_leader();
    let pq = req
        .uri
        .path_and_query()
        .map_or(req.uri.path(), |pq| pq.as_str());
    let hop = ToLeader {
        method: req.method.clone(),
        path_and_query: pq,
        headers: req.headers,
        body: req.body.clone(),
        by,
        from: g.me().node_id,
        writes: need == Need::Write,
        streamed: req.streamed,
        deadline: if req.admin {
            state.admin_timeout
        } else {
            state.request_timeout
        },
    };
    state
        .peers
        .forward_to_leader((&leader.addr, state.shard), hop)
        .await
}

/// A read barrier that did not pass: retryable unless the group stopped.
fn read_error(e: ReadError) -> Error {
    match e {
        ReadError::NotLeader { .. }
        | ReadError::NoLeader
        | ReadError::NoQuorum
        | ReadError::NotRecovered => Error::NoLeader,
        ReadError::Fatal(why) => Error::Raft(why),
    }
}

/// The leader's pod for `x-kv-leader`, when this copy runs a group and knows one.
pub fn leader_pod(state: &AppState) -> Option<HeaderValue> {
    let leader = state.raft.running()?.leader()?;
    HeaderValue::from_str(&leader.pod).ok()
}
