//! The real binary under concurrent writes, killed with SIGKILL, restarted: every acknowledged
//! write is there with its value, in every `--sync` mode (each one writes to the OS before the
//! answer; only power loss separates them).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio::sync::Mutex;

const WRITERS: usize = 8;
/// Kill once this many writes were acknowledged (writers keep going until the kill).
const KILL_AFTER: usize = 2_000;
/// Upper bound on writes per writer, so the load always ends.
const MAX_PER_WRITER: usize = 5_000;

async fn acked_writes_survive_kill9(sync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = spawn_binary(&data, &["--sync", sync]);
    wait_healthy(&server.ops_url()).await;

    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let client = http();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (acked, count, client, url) =
            (acked.clone(), count.clone(), client.clone(), server.url());
        writers.push(tokio::spawn(async move {
            for i in 0..MAX_PER_WRITER {
                let key = format!("w{w}-k{i}");
                let value = format!("value-{w}-{i}-{}", "x".repeat(i % 64));
                // Alternate the book route and /v1 so both write paths are covered.
                let ok = if i % 2 == 0 {
                    client.get(format!("{url}/save/{key}/{value}")).send().await
                } else {
                    client
                        .put(format!("{url}/v1/keys/{key}"))
                        .body(value.clone())
                        .send()
                        .await
                };
                match ok {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().await.push((key, value));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The server was killed: stop.
                    _ => return,
                }
            }
        }));
    }
    // Kill mid-load, once enough writes are acknowledged (bounded wait).
    for _ in 0..6000 {
        if count.load(Ordering::SeqCst) >= KILL_AFTER {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= KILL_AFTER,
        "only {} writes acknowledged",
        acked.len()
    );

    let server = spawn_binary(&data, &["--sync", sync]);
    wait_healthy(&server.ops_url()).await;
    let client = http();
    for (key, value) in &acked {
        let r = client
            .get(format!("{}/load/{key}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            &r.text().await.unwrap(),
            value,
            "acknowledged write of {key} lost (sync {sync})"
        );
    }
    let info: serde_json::Value = client
        .get(format!("{}/v1/info", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info["keys"].as_u64().unwrap() >= acked.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_kill9_with_sync_always() {
    acked_writes_survive_kill9("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_kill9_with_sync_batch() {
    acked_writes_survive_kill9("batch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_kill9_with_sync_never() {
    acked_writes_survive_kill9("never").await;
}
