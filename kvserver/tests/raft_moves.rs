//! What a move (docs/rebalance.md) needs of a replicated shard, over real kvserver processes on
//! loopback (the built binary), each group formed through the admin routes as the operator
//! forms one:
//! - the reads a move makes of an old owner (`/v1/admin/export`, its count, the read-through
//!   `/v1/internal/keys/{key}`) are the leader's after a read barrier: a follower passes the
//!   leader's answer back (the export as a stream), a copy that knows no leader refuses (503
//!   `no_leader`) instead of answering from what it holds;
//! - values near a raised `--max-value-bytes` replicate to a copy that was down while the
//!   others took more than one append body (96 MiB) of them: appends are cut by bytes.
//!
//! Every wait polls with a deadline; nothing is asserted on time.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::TOKEN;
use common::raft::{Copy, admin_post, client, eventually, status};
use kvproto::bulk::BulkCodec;
use kvproto::raft::ServerState;
use kvproto::raft_admin::TRANSFER_LEADER_PATH;
use kvproto::wire::header;
use reqwest::StatusCode;
use serde_json::{Value, json};

const UID: &str = "uid-moves";
const GROUP: &str = "uid-moves/0";
/// Room for large values: a write may wait for a slow copy, a request for a large body.
const TIMING: [&str; 4] = ["--raft-write-timeout", "5s", "--request-timeout", "20s"];

/// The three copies with the move's timing and `extra`, `voters` formed into the group.
async fn three_formed(http: &reqwest::Client, extra: &[&str], voters: &[usize]) -> Vec<Copy> {
    let flags: Vec<&str> = TIMING
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    common::raft::three_formed(http, (UID, GROUP), &flags, voters)
        .await
        .0
}

/// A GET with the admin token: status and body.
async fn get(http: &reqwest::Client, url: &str, path: &str) -> (StatusCode, Bytes) {
    let r = http
        .get(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status(), r.bytes().await.unwrap())
}

async fn forwards(http: &reqwest::Client, url: &str) -> u64 {
    let (_, body) = get(http, url, "/metrics").await;
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("kvserver_leader_forwards_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reads_of_a_move_are_the_leaders_after_a_barrier() {
    let http = client(Duration::from_secs(60));
    // Copies 0 and 1 form the group; copy 2 runs in no membership and knows no leader.
    let copies = three_formed(&http, &[], &[0, 1]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    for i in 0..20 {
        let r = http
            .put(format!("{}/v1/keys/k{i}", url[0]))
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    // Copy 1 leads now; copy 0, the one the operator addresses, follows.
    let to = copies[1].member(status(&http, &url[1]).await.unwrap().node_id);
    admin_post(
        &http,
        &url[0],
        TRANSFER_LEADER_PATH,
        Some(GROUP),
        json!({ "to": to }),
    )
    .await
    .ok("transfer-leader");
    let s = eventually("copy 0 follows copy 1", || async {
        let s = status(&http, &url[0]).await?;
        (s.state == ServerState::Follower && s.leader.as_ref()?.pod == "kv-r1-0").then_some(s)
    })
    .await;
    assert!(s.leader.is_some());
    // The latest write, through the leader, just before the move reads.
    let r = http
        .put(format!("{}/v1/keys/fresh", url[1]))
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let before = forwards(&http, &url[0]).await;
    let routes = [
        "/v1/admin/export?scope=all",
        "/v1/admin/export/count?scope=all",
        "/v1/internal/keys/fresh",
    ];
    let mut answers = Vec::new();
    for path in routes {
        let at_follower = get(&http, &url[0], path).await;
        let at_leader = get(&http, &url[1], path).await;
        assert_eq!(at_follower.0, StatusCode::OK, "{path}");
        assert_eq!(
            at_follower, at_leader,
            "{path}: the follower passes the leader's back"
        );
        answers.push(at_follower.1);
    }
    let records = BulkCodec::decode_bytes(&answers[0], 1 << 20).unwrap();
    assert_eq!(records.len(), 21, "every key, the latest write included");
    assert!(records.iter().any(|r| r.key.as_str() == "fresh"));
    let count: Value = serde_json::from_slice(&answers[1]).unwrap();
    assert_eq!(count["records"], 21);
    assert_eq!(&answers[2][..], b"new");
    assert_eq!(
        forwards(&http, &url[0]).await,
        before + 3,
        "each read was the leader's"
    );

    // A copy that knows no leader does not answer from what it holds (nothing): 503.
    let (export, count, key) = tokio::join!(
        get(&http, &url[2], routes[0]),
        get(&http, &url[2], routes[1]),
        get(&http, &url[2], routes[2]),
    );
    for (path, (status, body)) in routes.iter().zip([export, count, key]) {
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("no_leader")),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_near_a_raised_max_value_bytes_catch_up_a_copy_that_was_down() {
    const MAX_VALUE: usize = 8 << 20;
    let http = client(Duration::from_secs(60));
    let limit = MAX_VALUE.to_string();
    let mut copies = three_formed(&http, &["--max-value-bytes", limit.as_str()], &[0, 1, 2]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    // Copy 2 goes down; the others commit more than one append body (96 MiB) of values.
    copies[2].proc.take().unwrap().kill9();
    let values = 13;
    for i in 0..values {
        let mut value = vec![b'a' + i as u8; MAX_VALUE - 64];
        value[0] = b'#';
        let r = http
            .put(format!("{}/v1/keys/big{i}", url[0]))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "big{i}");
    }
    // Back, it catches up from the log: the leader's appends to it are cut by bytes.
    copies[2].start();
    common::wait_healthy(&copies[2].ops_url()).await;
    let leader = status(&http, &url[0]).await.unwrap();
    let last = leader.last_log_index.unwrap();
    eventually("copy 2 applied every value", || async {
        let s = status(&http, &url[2]).await?;
        (s.applied? >= last).then_some(())
    })
    .await;
    for i in [0, values - 1] {
        let r = http
            .get(format!("{}/v1/keys/big{i}", url[2]))
            .header(header::READ, header::READ_FOLLOWER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), MAX_VALUE - 64);
        assert_eq!(body[1], b'a' + i as u8);
    }
}
