//! An in-process cluster of real groups: each node is a `ShardGroup` on its own tempdir fjall
//! database, its routes served by axum on 127.0.0.1:0, its peers reached over real sockets by
//! its own reqwest client. A node can be cut off (a partition) or stopped. Nothing of openraft
//! is replaced.
//!
//! Cutting works at the receiving router: each node's client names its sender
//! (`x-test-from`), and a node answers 503 to any RPC when it or the sender is cut, so a cut
//! node neither hears nor is heard, like an `iptables DROP` on both directions that fails fast.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use kvproto::raft::Member;
use tokio::task::JoinHandle;

use super::super::target::{TestTarget, decode};
use super::super::{BOOT, config, group, key, open_db};
use crate::command::{Command, Outcome, Precondition, Routed};
use crate::group::{RaftConfig, ShardGroup, WriteError};
use crate::log_store::Durability;
use crate::storage::Storage;

/// Cluster tests share two cores with the rest of the suite: one cluster at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any condition may take to come true before the test fails.
pub const BOUND: Duration = Duration::from_secs(30);

const FROM: &str = "x-test-from";

/// Which nodes are cut off from everyone, and the peer token RPCs must carry, if any (as
/// kvserver's peer-token layer would demand).
#[derive(Default)]
pub struct Partition {
    cut: Mutex<BTreeSet<usize>>,
    token: Mutex<Option<String>>,
}

impl Partition {
    /// No one cut; RPCs must carry `token` as a bearer token.
    pub fn requiring_token(token: &str) -> Partition {
        let p = Partition::default();
        p.require_token(token);
        p
    }

    /// From now on RPCs must carry `token` (a rotation on the receiving side).
    pub fn require_token(&self, token: &str) {
        *self.token.lock().expect("lock") = Some(token.to_owned());
    }

    fn blocks(&self, to: usize, from: Option<usize>) -> bool {
        let cut = self.cut.lock().expect("lock");
        cut.contains(&to) || from.is_some_and(|f| cut.contains(&f))
    }
}

async fn gate(
    State((partition, me)): State<(Arc<Partition>, usize)>,
    req: Request,
    next: Next,
) -> Response {
    let from = req
        .headers()
        .get(FROM)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if partition.blocks(me, from) {
        return (StatusCode::SERVICE_UNAVAILABLE, "partitioned").into_response();
    }
    let required = partition.token.lock().expect("lock").clone();
    if let Some(token) = required {
        let sent = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if sent != Some(format!("Bearer {token}").as_str()) {
            return (StatusCode::UNAUTHORIZED, "no peer token").into_response();
        }
    }
    next.run(req).await
}

/// Test timing: a little faster than production, still tolerant of a loaded machine.
pub fn test_config(http: reqwest::Client) -> RaftConfig {
    let mut cfg = RaftConfig::new(http);
    cfg.heartbeat = Duration::from_millis(100);
    cfg.election_timeout_min = Duration::from_millis(500);
    cfg.write_timeout = Duration::from_secs(2);
    cfg.membership_timeout = Duration::from_secs(20);
    cfg
}

pub struct Node {
    pub group: ShardGroup<TestTarget>,
    pub target: Arc<TestTarget>,
    pub me: Member,
    server: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts node `index` on a fresh volume; `prepare` may write records into it before the
    /// group opens (a store converted to a group), `tune` adjusts its config.
    pub async fn start(
        index: usize,
        partition: &Arc<Partition>,
        prepare: impl FnOnce(&fjall::Database),
        tune: impl FnOnce(&mut RaftConfig),
    ) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(dir.path());
        prepare(&db);
        let target = Arc::new(TestTarget::default());
        let storage = Storage::open(&db, &config(Durability::Batch, BOOT), target.clone())
            .expect("storage opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("address");
        let identity = storage.identity().clone();
        let me = Member {
            node_id: identity.node_id,
            pod: format!("node-{index}"),
            addr: format!("http://{addr}"),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(FROM, index.to_string().parse().expect("header value"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client");
        let mut cfg = test_config(http);
        tune(&mut cfg);
        let group = ShardGroup::open(storage, identity, me.clone(), Some(group()), cfg)
            .await
            .expect("group opens");
        let router = group.routes().layer(middleware::from_fn_with_state(
            (partition.clone(), index),
            gate,
        ));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Node {
            group,
            target,
            me,
            server,
            _dir: dir,
        }
    }

    /// Stops the group and closes its listener (peers then meet connection refused).
    pub async fn stop(&self) {
        self.group.shutdown().await;
        self.server.abort();
    }

    /// The live records, decoded: key and value.
    pub async fn contents(&self) -> Vec<(String, String)> {
        self.group
            .dump_records()
            .await
            .into_iter()
            .filter_map(|(k, v)| {
                let stored = decode(&k, &v).expect("decodes");
                stored.live.then(|| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&stored.value).into_owned(),
                    )
                })
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub partition: Arc<Partition>,
}

impl Cluster {
    /// `n` nodes started (not yet in a group).
    pub async fn start(n: usize, tune: impl Fn(&mut RaftConfig)) -> Cluster {
        Cluster::start_with(n, Partition::default(), tune).await
    }

    pub async fn start_with(
        n: usize,
        partition: Partition,
        tune: impl Fn(&mut RaftConfig),
    ) -> Cluster {
        let partition = Arc::new(partition);
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(Node::start(i, &partition, |_| {}, &tune).await);
        }
        Cluster { nodes, partition }
    }

    /// `n` nodes initialized as one group of `n` voters, with a leader.
    pub async fn voters(n: usize, tune: impl Fn(&mut RaftConfig)) -> Cluster {
        Cluster::voters_with(n, Partition::default(), tune).await
    }

    pub async fn voters_with(
        n: usize,
        partition: Partition,
        tune: impl Fn(&mut RaftConfig),
    ) -> Cluster {
        let c = Cluster::start_with(n, partition, tune).await;
        let voters = c.nodes.iter().map(|n| n.me.clone()).collect();
        c.nodes[0]
            .group
            .initialize(group(), voters)
            .await
            .expect("initializes");
        c.leader(&c.all()).await;
        c
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    pub fn cut(&self, i: usize) {
        self.partition.cut.lock().expect("lock").insert(i);
    }

    pub fn heal(&self, i: usize) {
        self.partition.cut.lock().expect("lock").remove(&i);
    }

    /// The node every one of `among` agrees leads (and that says so itself).
    pub async fn leader(&self, among: &[usize]) -> usize {
        eventually("a leader all agree on", BOUND, || async {
            let first = self.nodes[among[0]].group.leader()?;
            let i = among
                .iter()
                .copied()
                .find(|i| self.nodes[*i].me.node_id == first.node_id)?;
            let agreed = among
                .iter()
                .all(|j| self.nodes[*j].group.leader().map(|l| l.node_id) == Some(first.node_id));
            (agreed && self.nodes[i].group.is_leader()).then_some(i)
        })
        .await
    }

    /// Writes `k = v` through whichever of `among` leads, retrying while there is no leader;
    /// returns once acknowledged.
    pub async fn put(&self, among: &[usize], k: &str, v: &str) -> Outcome {
        eventually("an acknowledged write", BOUND, || async {
            let leader = self.leader(among).await;
            match self.nodes[leader].group.write(put_cmd(k, v)).await {
                Ok(outcome) => Some(outcome),
                Err(WriteError::NotLeader { .. } | WriteError::NoLeader) => None,
                // An unconditional put of the same value may be sent again.
                Err(WriteError::OutcomeUnknown) => None,
                Err(e) => panic!("write of {k}: {e}"),
            }
        })
        .await
    }

    /// Waits until every node of `among` holds exactly what the first holds, and returns it.
    pub async fn converged(&self, among: &[usize]) -> Vec<(String, String)> {
        eventually("equal contents on every copy", BOUND, || async {
            let first = self.nodes[among[0]].contents().await;
            for j in &among[1..] {
                if self.nodes[*j].contents().await != first {
                    return None;
                }
            }
            Some(first)
        })
        .await
    }
}

/// A put stamped with the test's wall clock.
pub fn put_cmd(k: &str, v: &str) -> Command {
    let at_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    Command::Put {
        key: key(k),
        value: bytes::Bytes::copy_from_slice(v.as_bytes()),
        precondition: Precondition::None,
        at_micros,
        routed: Routed::default(),
        remote: None,
    }
}

/// Polls `check` every 20 ms until it yields, failing the test after `bound`.
pub async fn eventually<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < bound, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
