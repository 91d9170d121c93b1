//! Issue 13 item 5: a write that times out may have been applied, so it answers 504
//! `outcome_unknown`, not a "retry" 503. Reproduced with a real owner shard that hangs (SIGSTOP)
//! while a forwarded write, already sent to it, waits for its answer.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use kvproto::{Sharding, Topology};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test]
async fn a_write_that_times_out_says_its_outcome_is_unknown() {
    let owner_dir = tempfile::tempdir().unwrap();
    let token_file = owner_dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let owner = spawn_binary(
        &owner_dir.path().join("data"),
        &[
            "--shard",
            "1",
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    wait_healthy(&owner.ops_url()).await;
    let map = Topology::stable(
        1,
        Sharding::Modulo,
        vec!["http://127.0.0.1:1".to_owned(), owner.url()],
    );
    let http = http();
    let pushed = http
        .put(format!("{}/v1/admin/topology", owner.url()))
        .bearer_auth(TOKEN)
        .json(&map)
        .send()
        .await
        .unwrap();
    assert!(pushed.status().is_success());
    let forwarder = fixture_with(|c| c.request_timeout = Duration::from_millis(500));
    let push = admin(
        "PUT",
        "/v1/admin/topology",
        serde_json::to_string(&map).unwrap(),
    );
    assert_eq!(send(&forwarder.router, push).await.status, StatusCode::OK);
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| map.owner(k.as_bytes()) == 1)
        .unwrap();

    // The owner hangs: the kernel still queues the forwarded write, nobody answers in time.
    signal(owner.child.id(), "-STOP");
    let put = Request::put(format!("/v1/keys/{key}"))
        .body(Body::from("late"))
        .unwrap();
    let r = send(&forwarder.router, put).await;
    signal(owner.child.id(), "-CONT");
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
        "{}",
        r.text()
    );
    // A read is not a write: it times out as a plain, retryable 503.
    signal(owner.child.id(), "-STOP");
    let r = send(&forwarder.router, get(&format!("/v1/keys/{key}"))).await;
    signal(owner.child.id(), "-CONT");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());

    // Whether the owner applied it depends on when it noticed the dropped connection: that
    // is exactly why the answer must say "unknown". It serves again once resumed.
    let back = http
        .get(format!("{}/healthz", owner.ops_url()))
        .send()
        .await
        .unwrap();
    assert!(back.status().is_success());
}
