//! The real binary's drain and shutdown: `GET /drain` and SIGTERM switch to draining, the
//! process exits cleanly, and a restart serves again (never stuck draining).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn drain_then_sigterm_exits_cleanly_and_a_restart_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = spawn_binary(&data, &[]);
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
    assert_eq!(r.text().await.unwrap(), "draining");
    let r = client
        .get(format!("{}/load/a", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "_shutting_down_");
    let r = client
        .get(format!("{}/readyz", server.ops_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut exited = None;
    for _ in 0..400 {
        if let Some(status) = server.child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let status = exited.expect("kvserver did not exit after SIGTERM");
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
