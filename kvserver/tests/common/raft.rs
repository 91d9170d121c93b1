//! The harness of the replicated-shard tests: copies of shard 0 as real kvserver processes on
//! loopback (the built binary), each on a port fixed before it starts (its advertised URL), and
//! the admin calls the operator makes to form their group.
//!
//! Every wait polls with a deadline ([`BOUND`]); nothing is asserted on time.

use std::future::Future;
use std::time::{Duration, Instant};

use kvproto::raft::{RaftStatus, ServerState};
use kvproto::raft_admin::{ADD_LEARNER_PATH, INIT_PATH, STATUS_PATH, VOTERS_PATH};
use kvproto::wire::header;
use kvproto::{Sharding, Topology};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{Proc, TOKEN, spawn_binary_on};

/// How long any condition may take to come true before the test fails.
pub const BOUND: Duration = Duration::from_secs(30);

/// One copy of shard 0: its volume, its fixed port and its process.
pub struct Copy {
    pub pod: &'static str,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The store uid its flags name (copies 1..); copy 0 has none and learns its group at init.
    pub uid: Option<&'static str>,
    /// Flags beyond the harness's own.
    pub extra: Vec<String>,
    pub proc: Option<Proc>,
}

impl Copy {
    pub fn new(pod: &'static str, uid: Option<&'static str>, extra: &[&str]) -> Copy {
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
            uid,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            proc: None,
        }
    }

    /// Copy 0 and copies 1.. of `uid`, named as the operator names them (`kv-0`, `kv-rK-0`).
    pub fn three(uid: &'static str, extra: &[&str]) -> Vec<Copy> {
        vec![
            Copy::new("kv-0", None, extra),
            Copy::new("kv-r1-0", Some(uid), extra),
            Copy::new("kv-r2-0", Some(uid), extra),
        ]
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let token = self.dir.path().join("token");
        let mut args = vec!["--pod-name".to_owned(), self.pod.to_owned()];
        // Quicker than production unless the test asks for its own timing.
        for (flag, value) in [
            ("--raft-heartbeat", "100ms"),
            ("--raft-election-timeout-min", "500ms"),
        ] {
            if !self.extra.iter().any(|e| e == flag) {
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        args.extend(["--admin-token-file".to_owned(), token.display().to_string()]);
        if let Some(uid) = self.uid {
            args.extend([
                "--raft-store-uid".to_owned(),
                uid.to_owned(),
                "--raft-advertise-url".to_owned(),
                self.url(),
            ]);
        }
        args.extend(self.extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.proc = Some(spawn_binary_on(&self.data_dir(), self.port, &args));
    }

    /// The volume (`--data-dir`).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn ops_url(&self) -> String {
        self.proc.as_ref().expect("running").ops_url()
    }

    /// This copy as a group member, with the node ID it reported.
    pub fn member(&self, node_id: u64) -> Value {
        json!({"nodeId": node_id.to_string(), "pod": self.pod, "addr": self.url()})
    }
}

pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Polls `f` until it gives a value; panics naming `what` after [`BOUND`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
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

/// `GET /v1/admin/raft/status` of the copy at `url`; `None` when it does not answer.
pub async fn status(http: &reqwest::Client, url: &str) -> Option<RaftStatus> {
    let r = http
        .get(format!("{url}{STATUS_PATH}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.ok()
}

/// An admin answer: status, headers, JSON body (the text as a string if not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
    pub fn leader(&self) -> Option<&str> {
        leader_named(&self.headers)
    }
    /// The body, after asserting a 200.
    pub fn ok(self, what: &str) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{what}: {}", self.body);
        self.body
    }
}

pub fn leader_named(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::LEADER).and_then(|v| v.to_str().ok())
}

/// An admin POST with `group` as `x-kv-raft-group` (none when `None`).
pub async fn admin_post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    group: Option<&str>,
    body: Value,
) -> Answer {
    let mut rb = http
        .post(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .json(&body);
    if let Some(g) = group {
        rb = rb.header(header::RAFT_GROUP, g);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// The copy that leads, by the statuses of the running copies.
pub async fn leader_among(http: &reqwest::Client, copies: &[Copy]) -> usize {
    eventually("a leader", || async {
        for (i, c) in copies.iter().enumerate() {
            if c.proc.is_some()
                && let Some(s) = status(http, &c.url()).await
                && s.state == ServerState::Leader
            {
                return Some(i);
            }
        }
        None
    })
    .await
}

/// Starts every copy and waits until each answers its health probe.
pub async fn start_all(copies: &mut [Copy]) {
    for c in copies.iter_mut() {
        c.start();
    }
    for c in copies.iter() {
        super::wait_healthy(&c.ops_url()).await;
    }
}

/// Seeds copy 0 with a one-shard topology, then forms a group of the copies `voters` (copy 0
/// first) as the operator does: init on copy 0, the others as learners, then all as voters.
/// Returns every copy's member entry (by the node ID it reports), voters or not.
pub async fn form(
    http: &reqwest::Client,
    copies: &[Copy],
    group: &str,
    voters: &[usize],
) -> Vec<Value> {
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
    for c in copies {
        let id = status(http, &c.url()).await.unwrap().node_id;
        members.push(c.member(id));
    }
    let chosen: Vec<Value> = voters.iter().map(|i| members[*i].clone()).collect();
    let leader = copies[0].url();
    let init = json!({"group": group, "voters": [chosen[0]]});
    admin_post(http, &leader, INIT_PATH, Some(group), init)
        .await
        .ok("init");
    for m in &chosen[1..] {
        admin_post(
            http,
            &leader,
            ADD_LEARNER_PATH,
            Some(group),
            json!({"member": m}),
        )
        .await
        .ok("add-learner");
    }
    admin_post(
        http,
        &leader,
        VOTERS_PATH,
        Some(group),
        json!({"voters": chosen}),
    )
    .await
    .ok("voters");
    members
}

/// The three copies of `uid` with `extra` flags, started, and the copies `voters` formed into
/// `group` by [`form`] (the others run in no membership); with every copy's member entry.
pub async fn three_formed(
    http: &reqwest::Client,
    (uid, group): (&'static str, &str),
    extra: &[&str],
    voters: &[usize],
) -> (Vec<Copy>, Vec<Value>) {
    let mut copies = Copy::three(uid, extra);
    start_all(&mut copies).await;
    let members = form(http, &copies, group, voters).await;
    (copies, members)
}
