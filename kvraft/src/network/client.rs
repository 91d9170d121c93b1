//! The sending side: openraft's `RaftNetworkFactory` and `RaftNetworkV2` over one shared
//! `reqwest::Client` (connections are pooled and reused; https when the given client is built
//! for it). Every RPC carries the group and protocol headers and, when configured, the peer
//! token as `authorization: Bearer <token>` (kvserver's peer forwarding does the same); client
//! and token are asked of the [`PeerCredentials`] at each RPC, so rotations take effect.
//!
//! Deadlines: votes and transfers use openraft's `RPCOption::hard_ttl()` as the request
//! timeout, appends that plus time for their bytes (a catch-up append is large); a snapshot has no total deadline but fails when the stream makes no
//! progress for the idle limit (`install_snapshot_timeout`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kvproto::raft::{GroupId, Member, PROTOCOL_VERSION};
use kvproto::wire::header;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes, RaftNetworkV2};
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::PeerCredentials;
use super::failure::Failure;
use super::{
    APPEND_CONTENT_TYPE, APPEND_PATH, PRE_VOTE_PATH, SNAPSHOT_CONTENT_TYPE, SNAPSHOT_PATH,
    TRANSFER_LEADER_PATH, VOTE_PATH, append_codec, snapshot_stream,
};
use crate::snapshot::SnapshotData;
use crate::types::{ShardRaft, Snapshot, Vote};

const JSON: &str = "application/json";

/// Makes a client per peer; clones share the credentials (and so the connection pool).
#[derive(Clone)]
pub(crate) struct PeerNetwork {
    credentials: Arc<dyn PeerCredentials>,
    group: Arc<str>,
    me: u64,
    snapshot_idle: Duration,
}

impl PeerNetwork {
    pub fn new(
        credentials: Arc<dyn PeerCredentials>,
        group: &GroupId,
        me: u64,
        snapshot_idle: Duration,
    ) -> Self {
        PeerNetwork {
            credentials,
            group: Arc::from(group.to_string()),
            me,
            snapshot_idle,
        }
    }
}

impl RaftNetworkFactory<ShardRaft> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &Member) -> PeerClient {
        PeerClient {
            net: self.clone(),
            target,
            base: node.addr.trim_end_matches('/').to_owned(),
        }
    }
}

/// The RPCs to one peer.
pub(crate) struct PeerClient {
    net: PeerNetwork,
    target: u64,
    base: String,
}

impl PeerClient {
    fn request(&self, path: &str, content_type: &str) -> reqwest::RequestBuilder {
        // Asked per RPC: a rotated token or CA is used from the next one on.
        let credentials = &self.net.credentials;
        let mut rb = credentials
            .http()
            .post(format!("{}{path}", self.base))
            .header(header::RAFT_GROUP, &*self.net.group)
            .header(header::RAFT_PROTOCOL, PROTOCOL_VERSION.to_string())
            .header(header::RAFT_TARGET, self.target.to_string())
            .header(CONTENT_TYPE, content_type);
        if let Some(token) = credentials.token() {
            rb = rb.bearer_auth(token);
        }
        rb
    }

    async fn call<R: DeserializeOwned>(rb: reqwest::RequestBuilder) -> Result<R, Failure> {
        let resp = rb.send().await.map_err(|e| Failure::of_reqwest(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(Failure::refused(status, &body));
        }
        let bytes = resp.bytes().await.map_err(|e| Failure::of_reqwest(&e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Network(format!("unreadable answer: {e}")))
    }

    async fn json_rpc<Req: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<R, RPCError<ShardRaft>> {
        let ttl = option.hard_ttl();
        let body =
            serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::from_string(e)))?;
        let rb = self.request(path, JSON).timeout(ttl).body(body);
        Self::call(rb)
            .await
            .map_err(|f| f.into_rpc(action, self.net.me, self.target, ttl))
    }
}

impl RaftNetworkV2<ShardRaft> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ShardRaft>, RPCError<ShardRaft>> {
        let body = append_codec::encode(&rpc)
            .map_err(|e| RPCError::Network(NetworkError::from_string(e)))?;
        let ttl = append_deadline(option.hard_ttl(), body.len());
        let rb = self
            .request(APPEND_PATH, APPEND_CONTENT_TYPE)
            .timeout(ttl)
            .body(body);
        Self::call(rb)
            .await
            .map_err(|f| f.into_rpc(RPCTypes::AppendEntries, self.net.me, self.target, ttl))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ShardRaft>, RPCError<ShardRaft>> {
        self.json_rpc(VOTE_PATH, &rpc, RPCTypes::Vote, &option)
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ShardRaft>, RPCError<ShardRaft>> {
        self.json_rpc(PRE_VOTE_PATH, &rpc, RPCTypes::Vote, &option)
            .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<ShardRaft>, RPCError<ShardRaft>> {
        self.json_rpc(
            TRANSFER_LEADER_PATH,
            &req,
            RPCTypes::TransferLeader,
            &option,
        )
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<ShardRaft>, StreamingError<ShardRaft>> {
        let (me, target, idle) = (self.net.me, self.target, self.net.snapshot_idle);
        let body = snapshot_stream::send(vote, snapshot.meta, snapshot.snapshot)
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e)))?;
        let progress = Arc::new(Mutex::new(Instant::now()));
        let body = noting_progress(body, progress.clone());
        let rb = self
            .request(SNAPSHOT_PATH, SNAPSHOT_CONTENT_TYPE)
            .body(reqwest::Body::wrap_stream(body));
        tokio::select! {
            answer = Self::call::<SnapshotResponse<ShardRaft>>(rb) => {
                answer.map_err(|f| f.into_streaming(me, target, idle))
            }
            closed = cancel => Err(StreamingError::Closed(closed)),
            () = stalled(progress, idle) => {
                Err(Failure::Timeout.into_streaming(me, target, idle))
            }
        }
    }
}

/// How fast a peer is assumed to take an append's bytes at the least, beyond the RPC's own
/// deadline.
const APPEND_BYTES_PER_SEC: u64 = 8 << 20;

/// An append's deadline: openraft's (a heartbeat interval), plus time for its bytes. A catch-up
/// append of large values takes longer than a heartbeat to send and persist; timed out by its
/// size alone, it would be sent again and again and never land.
fn append_deadline(ttl: Duration, body_bytes: usize) -> Duration {
    let bytes = u64::try_from(body_bytes).unwrap_or(u64::MAX);
    ttl + Duration::from_millis(bytes.saturating_mul(1000) / APPEND_BYTES_PER_SEC)
}

/// `body`, recording when each chunk was taken by the connection.
fn noting_progress<S, T>(body: S, progress: Arc<Mutex<Instant>>) -> impl Stream<Item = T>
where
    S: Stream<Item = T>,
{
    body.map(move |item| {
        if let Ok(mut at) = progress.lock() {
            *at = Instant::now();
        }
        item
    })
}

/// Resolves once no chunk was taken for `idle`.
async fn stalled(progress: Arc<Mutex<Instant>>, idle: Duration) {
    loop {
        let last = progress
            .lock()
            .map(|at| *at)
            .unwrap_or_else(|_| Instant::now());
        let due = last + idle;
        if Instant::now() >= due {
            return;
        }
        tokio::time::sleep_until(due.into()).await;
    }
}
