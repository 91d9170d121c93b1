//! Test helpers: in-process routers and servers on 127.0.0.1:0, and the real binary.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed setup should panic
#![allow(dead_code)] // each test binary uses a different subset

pub mod checker;
pub mod raft;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use kvserver::{AppState, Config};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const TOKEN: &str = "s3cret-token";

pub fn config(dir: &Path) -> Config {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut c = Config::for_data_dir(dir.join("data"));
    c.admin_token_file = Some(token_file);
    c
}

pub struct Fixture {
    pub dir: TempDir,
    pub state: AppState,
    pub router: Router,
}

pub fn fixture() -> Fixture {
    fixture_with(|_| {})
}

pub fn fixture_with(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    tweak(&mut c);
    let state = AppState::open(&c).unwrap();
    let router = kvserver::app(state.clone());
    Fixture { dir, state, router }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
    pub fn etag(&self) -> u64 {
        let v = self.headers.get("etag").expect("etag").to_str().unwrap();
        v.trim_matches('"').parse().unwrap()
    }
}

pub async fn send(router: &Router, req: Request<Body>) -> Answer {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn admin(method: &str, uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body.into())
        .unwrap()
}

/// An in-process server on 127.0.0.1:0 that stops when the token is cancelled.
pub struct Server {
    pub dir: TempDir,
    pub state: AppState,
    pub url: String,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn start_server(shard: u32) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.shard = Some(shard);
    let state = AppState::open(&c).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let task_state = state.clone();
    let task =
        tokio::spawn(async move { kvserver::serve(task_state, &c, listener, ops, shutdown).await });
    Server {
        dir,
        state,
        url,
        stop,
        task,
    }
}

/// A kvserver process; killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub data: SocketAddr,
    pub ops: SocketAddr,
}

impl Proc {
    pub fn url(&self) -> String {
        format!("http://{}", self.data)
    }
    pub fn ops_url(&self) -> String {
        format!("http://{}", self.ops)
    }
    /// Sends SIGTERM (what the kubelet sends; it starts the drain).
    pub fn sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    /// Polls until the process exits or `bound` has passed since `since`.
    pub async fn wait_exit(
        &mut self,
        since: std::time::Instant,
        bound: Duration,
    ) -> Option<std::process::ExitStatus> {
        while since.elapsed() < bound {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts the binary on 127.0.0.1:0 (both ports) with `args`; without a `--drain-delay` among
/// them, it drains for 0 s.
pub fn spawn_binary(data_dir: &Path, args: &[&str]) -> Proc {
    spawn_binary_on(data_dir, 0, args)
}

/// [`spawn_binary`] with the data port `port` (0: any), for a server whose own URL must be
/// known before it starts (a replicated copy's `--raft-advertise-url`).
pub fn spawn_binary_on(data_dir: &Path, port: u16, args: &[&str]) -> Proc {
    let drain_delay: &[&str] = if args.contains(&"--drain-delay") {
        &[]
    } else {
        &["--drain-delay", "0s"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvserver"))
        .args(["--port", &port.to_string()])
        .args(["--ops-port", "0", "--bind", "127.0.0.1"])
        .args(drain_delay)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        // `KV_TEST_LOG=info cargo test ...` shows the servers' own logs when debugging.
        .env(
            "RUST_LOG",
            std::env::var("KV_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn kvserver");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .parse()
            .unwrap()
    };
    let (data, ops) = (addr("data="), addr("ops="));
    Proc { child, data, ops }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Polls until the server answers /healthz (bounded).
pub async fn wait_healthy(ops_url: &str) {
    let client = http();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{ops_url}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {ops_url} never became healthy");
}

/// A process's resident set size (`VmRSS` of /proc/PID/status), in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}
