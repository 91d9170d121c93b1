//! The RPC guard over a real socket: another group or an unknown protocol version is refused
//! with 409 `raft_group_mismatch` before the body is read; the right headers reach openraft.
//! Peers send the configured peer token as a bearer token.

use kvproto::raft::PROTOCOL_VERSION;
use kvproto::wire::{ErrorBody, ErrorCode, header};

use super::harness::{Cluster, Partition, SERIAL};
use crate::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_for_another_group_or_protocol_are_refused_with_409() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::start(1, |_| {}).await;
    let base = c.nodes[0].me.addr.clone();
    let ours = super::super::group().to_string();
    let http = reqwest::Client::new();
    let send = |path: &str, group: Option<&str>, protocol: Option<&str>| {
        let mut rb = http.post(format!("{base}{path}")).body("{}");
        if let Some(g) = group {
            rb = rb.header(header::RAFT_GROUP, g);
        }
        if let Some(p) = protocol {
            rb = rb.header(header::RAFT_PROTOCOL, p);
        }
        rb.send()
    };
    let current = PROTOCOL_VERSION.to_string();
    for (path, group, protocol) in [
        (VOTE_PATH, Some("uid-2/0"), Some(current.as_str())),
        (VOTE_PATH, Some("uid-1/1"), Some(current.as_str())),
        (APPEND_PATH, None, Some(current.as_str())),
        (SNAPSHOT_PATH, Some(ours.as_str()), Some("2")),
        (VOTE_PATH, Some(ours.as_str()), None),
    ] {
        let resp = send(path, group, protocol).await.expect("answers");
        assert_eq!(resp.status(), 409, "{path} {group:?} {protocol:?}");
        let body: ErrorBody = resp.json().await.expect("an error body");
        assert_eq!(body.error, ErrorCode::RaftGroupMismatch, "{}", body.message);
    }
    // The right headers pass the guard: the (empty) body itself is what is refused now.
    let resp = send(VOTE_PATH, Some(&ours), Some(&current))
        .await
        .expect("answers");
    assert_eq!(resp.status(), 400);
    c.nodes[0].stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_send_the_peer_token() {
    let _serial = SERIAL.lock().await;
    // Every router refuses an RPC without `authorization: Bearer s3cret` (401).
    let partition = Partition::requiring_token("s3cret");
    let c = Cluster::voters_with(3, partition, |cfg| {
        cfg.peer_token = Some("s3cret".to_owned());
    })
    .await;
    let all = c.all();
    c.put(&all, "k", "v").await;
    assert_eq!(c.converged(&all).await.len(), 1);
    for n in &c.nodes {
        n.stop().await;
    }
}
