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

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Proc, TOKEN, spawn_binary_on};
use kvproto::bulk::BulkCodec;
use kvproto::raft::{RaftStatus, ServerState};
use kvproto::raft_admin::{
    ADD_LEARNER_PATH, INIT_PATH, STATUS_PATH, TRANSFER_LEADER_PATH, VOTERS_PATH,
};
use kvproto::wire::header;
use kvproto::{Sharding, Topology};
use reqwest::StatusCode;
use serde_json::{Value, json};

const UID: &str = "uid-moves";
const GROUP: &str = "uid-moves/0";
/// How long any condition may take to come true before the test fails.
const BOUND: Duration = Duration::from_secs(30);

/// One copy of shard 0: its volume, its fixed port (its advertised URL) and its process.
struct Copy {
    pod: &'static str,
    dir: tempfile::TempDir,
    port: u16,
    /// Copies 1.. name their group by flags; copy 0 learns it at init.
    flags: bool,
    extra: Vec<String>,
    proc: Option<Proc>,
}

impl Copy {
    fn new(pod: &'static str, flags: bool, extra: &[&str]) -> Copy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Copy {
            pod,
            dir,
            port,
            flags,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            proc: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let token = self.dir.path().join("token");
        let mut args: Vec<String> = [
            "--pod-name",
            self.pod,
            "--raft-heartbeat",
            "100ms",
            "--raft-election-timeout-min",
            "500ms",
            "--raft-write-timeout",
            "5s",
            "--request-timeout",
            "20s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(["--admin-token-file".to_owned(), token.display().to_string()]);
        if self.flags {
            args.extend([
                "--raft-store-uid".to_owned(),
                UID.to_owned(),
                "--raft-advertise-url".to_owned(),
                self.url(),
            ]);
        }
        args.extend(self.extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.proc = Some(spawn_binary_on(
            &self.dir.path().join("data"),
            self.port,
            &args,
        ));
    }

    fn ops_url(&self) -> String {
        self.proc.as_ref().expect("running").ops_url()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Polls `f` until it gives a value; panics naming `what` after [`BOUND`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < BOUND, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(http: &reqwest::Client, url: &str) -> Option<RaftStatus> {
    let r = http
        .get(format!("{url}{STATUS_PATH}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// An admin POST to the group's management routes; the answer's status and body.
async fn admin_post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    let r = http
        .post(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .header(header::RAFT_GROUP, GROUP)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Starts every copy, seeds copy 0 with a one-shard topology, then forms a group of the copies
/// `voters` (copy 0 first) through init, learners and voters. The others run in no membership.
async fn form(http: &reqwest::Client, copies: &mut [Copy], voters: &[usize]) {
    for c in copies.iter_mut() {
        c.start();
    }
    for c in copies.iter() {
        common::wait_healthy(&c.ops_url()).await;
    }
    let topology = Topology::stable(1, Sharding::Modulo, vec![copies[0].url()]);
    let r = http
        .put(format!("{}/v1/admin/topology", copies[0].url()))
        .bearer_auth(TOKEN)
        .json(&topology)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut members = Vec::new();
    for i in voters {
        let c = &copies[*i];
        let id = status(http, &c.url()).await.unwrap().node_id;
        members.push(json!({"nodeId": id.to_string(), "pod": c.pod, "addr": c.url()}));
    }
    let leader = copies[0].url();
    let init = json!({"group": GROUP, "voters": [members[0]]});
    admin_post(http, &leader, INIT_PATH, init).await;
    for m in &members[1..] {
        admin_post(http, &leader, ADD_LEARNER_PATH, json!({"member": m})).await;
    }
    admin_post(http, &leader, VOTERS_PATH, json!({"voters": members})).await;
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
    let http = client();
    let mut copies = vec![
        Copy::new("kv-0", false, &[]),
        Copy::new("kv-r1-0", true, &[]),
        Copy::new("kv-r2-0", true, &[]),
    ];
    // Copies 0 and 1 form the group; copy 2 runs in no membership and knows no leader.
    form(&http, &mut copies, &[0, 1]).await;
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
    admin_post(
        &http,
        &url[0],
        TRANSFER_LEADER_PATH,
        json!({"to": {"nodeId": status(&http, &url[1]).await.unwrap().node_id.to_string(),
                      "pod": copies[1].pod, "addr": url[1]}}),
    )
    .await;
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
    let http = client();
    let limit = MAX_VALUE.to_string();
    let extra = ["--max-value-bytes", limit.as_str()];
    let mut copies = vec![
        Copy::new("kv-0", false, &extra),
        Copy::new("kv-r1-0", true, &extra),
        Copy::new("kv-r2-0", true, &extra),
    ];
    form(&http, &mut copies, &[0, 1, 2]).await;
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
