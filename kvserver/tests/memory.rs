//! Issue 13 item 6: the read cache must hold values, not request buffers. A real kvserver process
//! takes many small writes through each write route; its RSS (`VmRSS` from /proc) must stay
//! within the configured `--cache-bytes` plus a fixed overhead. Before the fix, each value cached
//! from a `PUT /v1/keys` body was a view into the connection's read buffer (kilobytes each),
//! weighed as 16 bytes: 30k writes grew RSS from 14 to 178 MiB (26 MiB with the fix).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use kvproto::Key;
use kvproto::bulk::{BulkCodec, BulkRecord, CONTENT_TYPE as BULK_CONTENT_TYPE};

const WRITES: usize = 30_000;
const CACHE_BYTES: u64 = 16 << 20;
/// What the process may hold beyond the cache: runtime, memtables, allocator slack. The fixed
/// code measured ~10-20 MB of growth (30k writes, debug build) here; the old one grew by hundreds of MB.
const OVERHEAD: u64 = 64 << 20;
const CLIENTS: usize = 16;

fn value(i: usize) -> String {
    format!("{i:016}")
}

/// Starts a server with a small cache, runs `write` and returns (RSS before, RSS after).
async fn rss_growth(write: impl AsyncFnOnce(&reqwest::Client, String)) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let token_file = dir.path().join("token");
    let server = spawn_binary(
        &dir.path().join("data"),
        &[
            "--cache-bytes",
            &CACHE_BYTES.to_string(),
            "--sync",
            "never",
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    wait_healthy(&server.ops_url()).await;
    let before = rss_bytes(server.child.id());
    let client = http();
    write(&client, server.url()).await;
    let after = rss_bytes(server.child.id());
    eprintln!("RSS before {} MiB, after {} MiB", before >> 20, after >> 20);
    (before, after)
}

async fn each_concurrently(requests: impl Iterator<Item = reqwest::RequestBuilder>) {
    futures::stream::iter(requests)
        .for_each_concurrent(CLIENTS, |req| async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        })
        .await;
}

fn assert_bounded((before, after): (u64, u64)) {
    assert!(
        after <= before + CACHE_BYTES + OVERHEAD,
        "RSS grew from {} MiB to {} MiB: more than the {} MiB cache + {} MiB overhead",
        before >> 20,
        after >> 20,
        CACHE_BYTES >> 20,
        OVERHEAD >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_v1_keys_keeps_rss_within_the_cache_bound() {
    assert_bounded(
        rss_growth(async |client, url| {
            let reqs =
                (0..WRITES).map(|i| client.put(format!("{url}/v1/keys/k{i}")).body(value(i)));
            each_concurrently(reqs).await;
        })
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_save_keeps_rss_within_the_cache_bound() {
    assert_bounded(
        rss_growth(async |client, url| {
            let reqs = (0..WRITES).map(|i| client.get(format!("{url}/save/k{i}/{}", value(i))));
            each_concurrently(reqs).await;
        })
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_rss_within_the_cache_bound() {
    assert_bounded(
        rss_growth(async |client, url| {
            let batches = (0..WRITES).collect::<Vec<_>>();
            let reqs = batches.chunks(1000).map(|chunk| {
                let records: Vec<BulkRecord> = chunk
                    .iter()
                    .map(|&i| BulkRecord {
                        key: Key::new(format!("k{i}")).unwrap(),
                        version: i as u64 + 1,
                        value: Some(Bytes::from(value(i))),
                    })
                    .collect();
                client
                    .post(format!("{url}/v1/admin/import"))
                    .bearer_auth(TOKEN)
                    .header("content-type", BULK_CONTENT_TYPE)
                    .body(BulkCodec::encode_all(&records))
            });
            each_concurrently(reqs).await;
        })
        .await,
    );
}
