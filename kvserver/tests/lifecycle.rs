//! The real binary's drain and shutdown: SIGTERM switches to draining for `--drain-delay`, the
//! process exits cleanly, and a restart serves again (never stuck draining). No HTTP request
//! drains.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Sends SIGTERM and polls until the process exits or 10 s have passed since `since`.
async fn sigterm_and_wait(server: &mut Proc, since: Instant) -> Option<std::process::ExitStatus> {
    server.sigterm();
    server.wait_exit(since, Duration::from_secs(10)).await
}

/// Issue 13 item 7: draining used to be also `GET /drain` on the ops port, which any pod could
/// send. Now that request is a 404 that changes nothing, and SIGTERM alone drains: data routes
/// answer 503 and `/readyz` fails for the drain delay, then the process exits cleanly.
#[tokio::test]
async fn sigterm_drains_then_exits_cleanly_and_a_restart_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Long enough to look at the draining server; the exit is awaited, not timed.
    let mut server = spawn_binary(&data, &["--drain-delay", "5s"]);
    wait_healthy(&server.ops_url()).await;
    let client = http();
    let r = client
        .get(format!("{}/save/a/1", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1");

    let r = client
        .get(format!("{}/drain", server.ops_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!("{}/readyz", server.ops_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET /drain must not drain");

    let sent = Instant::now();
    server.sigterm();
    let mut draining = false;
    for _ in 0..200 {
        let r = client
            .get(format!("{}/readyz", server.ops_url()))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(draining, "/readyz never failed after SIGTERM");
    let r = client
        .get(format!("{}/load/a", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "_shutting_down_");

    let status = server
        .wait_exit(sent, Duration::from_secs(20))
        .await
        .expect("kvserver did not exit within 20 s of SIGTERM (5 s drain delay)");
    assert!(status.success(), "exit status {status}");

    let server = spawn_binary(&data, &[]);
    wait_healthy(&server.ops_url()).await;
    let r = client
        .get(format!("{}/readyz", server.ops_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/load/a", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1");
}

/// Issue 13 item 13: a port already in use used to exit with only "Address already in use (os
/// error 98)"; the message must name the address and the flag to change.
#[test]
fn a_taken_port_names_the_address_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (flag, other, named) in [
        ("--ops-port", "--port", "--ops-port"),
        ("--port", "--ops-port", "--port /"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvserver"))
            .args(["--bind", "127.0.0.1", flag, &port, other, "0"])
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains(named),
            "{flag} taken: {stderr}"
        );
    }
}

/// Issue 13 item 13: one half-open connection (headers never finished) stretched shutdown to the
/// old 20 s `--shutdown-timeout`, past the pod's 10 s grace period, so SIGKILL landed before the
/// final sync. With the defaults the process must exit cleanly well inside the grace period.
#[tokio::test]
async fn a_half_open_connection_does_not_stretch_shutdown_past_the_grace_period() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary(&dir.path().join("data"), &[]);
    wait_healthy(&server.ops_url()).await;
    let r = http()
        .get(format!("{}/save/a/1", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut half_open = tokio::net::TcpStream::connect(server.data).await.unwrap();
    half_open
        .write_all(b"GET /load/a HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let started = Instant::now();
    let status = sigterm_and_wait(&mut server, started)
        .await
        .expect("kvserver still running 10 s (the grace period) after SIGTERM");
    assert!(status.success(), "exit status {status}");
    drop(half_open);
    let server = spawn_binary(&dir.path().join("data"), &[]);
    wait_healthy(&server.ops_url()).await;
    let r = http()
        .get(format!("{}/load/a", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1");
}
