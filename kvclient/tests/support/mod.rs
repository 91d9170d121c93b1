//! Real kvserver processes on 127.0.0.1 for the integration tests.
//!
//! The binary comes from `$KVSERVER_BIN`, else `$CARGO_TARGET_DIR/debug/kvserver`, else the
//! workspace's `target/debug/kvserver`. Build it first with `cargo build -p kvserver`; a missing
//! binary fails the test with that instruction, it is never skipped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-admin-token";

pub fn kvserver_bin() -> PathBuf {
    let candidates: Vec<PathBuf> = [
        std::env::var_os("KVSERVER_BIN").map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| PathBuf::from(d).join("debug").join("kvserver")),
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("debug")
                .join("kvserver"),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "kvserver binary not found (looked at {candidates:?}). Build it with \
         `cargo build -p kvserver` (same CARGO_TARGET_DIR) or set KVSERVER_BIN=/path/to/kvserver."
    );
}

/// A port nobody listens on: bound, then released.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// One kvserver process; killed when dropped.
pub struct KvServer {
    child: Child,
    /// The command line it was started with, for a restart on the same ports and data.
    command: Vec<std::ffi::OsString>,
    pub port: u16,
    pub ops_port: u16,
    pub shard: u32,
    _dir: tempfile::TempDir,
}

impl KvServer {
    pub fn start(shard: u32) -> KvServer {
        Self::start_with(shard, &[])
    }

    /// Starts shard `shard` with extra flags and waits until it is ready (bounded).
    pub fn start_with(shard: u32, extra: &[&str]) -> KvServer {
        let bin = kvserver_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).expect("write token");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        // Ports are picked then released; on the rare collision the server fails and we retry.
        for _ in 0..5 {
            let (port, ops_port) = (free_port(), free_port());
            let mut command: Vec<std::ffi::OsString> = Vec::new();
            for arg in ["--bind", "127.0.0.1", "--port", &port.to_string()] {
                command.push(arg.into());
            }
            command.extend(["--ops-port".into(), ops_port.to_string().into()]);
            command.extend(["--data-dir".into(), data.clone().into_os_string()]);
            command.extend([
                "--admin-token-file".into(),
                token_file.clone().into_os_string(),
            ]);
            command.extend(["--shard".into(), shard.to_string().into()]);
            command.extend(extra.iter().map(Into::into));
            let child = spawn(&bin, &command);
            let mut server = KvServer {
                child,
                command,
                port,
                ops_port,
                shard,
                _dir: tempfile::tempdir().expect("temp dir"),
            };
            if server.wait_ready(Duration::from_secs(30)) {
                server._dir = dir;
                return server;
            }
        }
        panic!("kvserver did not become ready on 127.0.0.1 after 5 attempts");
    }

    /// SIGKILLs the server (no drain, no flush) and starts it again on the same ports and
    /// data directory; waits (bounded) until it is ready.
    pub fn kill9_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            self.child = spawn(&kvserver_bin(), &self.command);
            if self.wait_ready(Duration::from_secs(30)) {
                return;
            }
            // The killed process's port may linger for a moment.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "kvserver on port {} did not come back after kill -9",
            self.port
        );
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_get(self.ops_port, "/readyz").is_some_and(|(status, _)| status == 200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        false
    }

    /// `host:port` of the data port.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Base URL of the data port.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts draining as the kubelet does, with SIGTERM (the server drains for its
    /// `--drain-delay`, then exits), and waits (bounded) until `/readyz` says draining.
    pub fn drain(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            sent,
            "cannot send SIGTERM to kvserver on port {}",
            self.port
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if http_get(self.ops_port, "/readyz").is_some_and(|(status, _)| status == 503) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("kvserver on port {} did not start draining", self.port);
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &std::path::Path, command: &[std::ffi::OsString]) -> Child {
    Command::new(bin)
        .args(command)
        .env_remove("POD_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("KVCLIENT_TEST_SERVER_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// A minimal blocking HTTP/1.0 GET on 127.0.0.1 (readiness polling without a runtime).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Path of the kvclient binary under test.
pub fn kvclient_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kvclient")
}
