//! The RPC guard over a real socket: another group, an unknown protocol version or another
//! node ID as the target is refused with 409 `raft_group_mismatch` before the body is read;
//! the right headers (the target absent, or this node) reach openraft.
//! Peers send the configured peer token as a bearer token, and after a rotation the one in force.

use std::sync::{Arc, Mutex};

use kvproto::raft::PROTOCOL_VERSION;
use kvproto::wire::{ErrorBody, ErrorCode, header};

use super::harness::{Cluster, Partition, SERIAL};
use crate::network::{APPEND_PATH, FixedCredentials, PeerCredentials, SNAPSHOT_PATH, VOTE_PATH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_for_another_group_or_protocol_are_refused_with_409() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::start(1, |_| {}).await;
    let base = c.nodes[0].me.addr.clone();
    let ours = super::super::group().to_string();
    let http = reqwest::Client::new();
    let me = c.nodes[0].me.node_id.to_string();
    let other = c.nodes[0].me.node_id.wrapping_add(1).to_string();
    let send = |path: &str, group: Option<&str>, protocol: Option<&str>, target: Option<&str>| {
        let mut rb = http.post(format!("{base}{path}")).body("{}");
        if let Some(t) = target {
            rb = rb.header(header::RAFT_TARGET, t);
        }
        if let Some(g) = group {
            rb = rb.header(header::RAFT_GROUP, g);
        }
        if let Some(p) = protocol {
            rb = rb.header(header::RAFT_PROTOCOL, p);
        }
        rb.send()
    };
    let current = PROTOCOL_VERSION.to_string();
    let (ours, current) = (Some(ours.as_str()), Some(current.as_str()));
    for (path, group, protocol, target) in [
        (VOTE_PATH, Some("uid-2/0"), current, None),
        (VOTE_PATH, Some("uid-1/1"), current, None),
        (APPEND_PATH, None, current, None),
        (SNAPSHOT_PATH, ours, Some("2"), None),
        (VOTE_PATH, ours, None, None),
        // Meant for another node ID at this address (the volume was replaced).
        (VOTE_PATH, ours, current, Some(other.as_str())),
        (APPEND_PATH, ours, current, Some("not-a-number")),
    ] {
        let resp = send(path, group, protocol, target).await.expect("answers");
        assert_eq!(
            resp.status(),
            409,
            "{path} {group:?} {protocol:?} {target:?}"
        );
        let body: ErrorBody = resp.json().await.expect("an error body");
        assert_eq!(body.error, ErrorCode::RaftGroupMismatch, "{}", body.message);
    }
    // The right headers pass the guard (the target this node, or not sent by an earlier
    // build): the (empty) body itself is what is refused now.
    for target in [Some(me.as_str()), None] {
        let resp = send(VOTE_PATH, ours, current, target)
            .await
            .expect("answers");
        assert_eq!(resp.status(), 400, "{target:?}");
    }
    c.nodes[0].stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_send_the_peer_token() {
    let _serial = SERIAL.lock().await;
    // Every router refuses an RPC without `authorization: Bearer s3cret` (401).
    let partition = Partition::requiring_token("s3cret");
    let c = Cluster::voters_with(3, partition, |cfg| {
        cfg.peer = Arc::new(FixedCredentials::new(cfg.peer.http(), Some("s3cret")));
    })
    .await;
    let all = c.all();
    c.put(&all, "k", "v").await;
    assert_eq!(c.converged(&all).await.len(), 1);
    for n in &c.nodes {
        n.stop().await;
    }
}

/// A token that can be changed under a running group, as kvserver's reloaded token file is.
#[derive(Debug)]
struct Rotating {
    http: reqwest::Client,
    token: Arc<Mutex<Arc<str>>>,
}

impl PeerCredentials for Rotating {
    fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    fn token(&self) -> Option<Arc<str>> {
        Some(self.token.lock().expect("lock").clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_send_the_token_in_force_after_a_rotation() {
    let _serial = SERIAL.lock().await;
    let sending: Arc<Mutex<Arc<str>>> = Arc::new(Mutex::new(Arc::from("old")));
    let c = Cluster::voters_with(3, Partition::requiring_token("old"), |cfg| {
        cfg.peer = Arc::new(Rotating {
            http: cfg.peer.http(),
            token: sending.clone(),
        });
    })
    .await;
    let all = c.all();
    c.put(&all, "before", "v").await;
    // Rotated on every copy: the routers now refuse the old token, the clients send the new
    // one. A write commits (a quorum took the new token) and reaches every copy.
    c.partition.require_token("new");
    *sending.lock().expect("lock") = Arc::from("new");
    c.put(&all, "after", "v").await;
    assert_eq!(c.converged(&all).await.len(), 2);
    for n in &c.nodes {
        n.stop().await;
    }
}
