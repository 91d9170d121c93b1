//! Issue 13 item 12: `/allKeys` on a large shard. Before, each request collected every key and
//! the joined answer in memory on a request thread: concurrent requests grew RSS by the size of
//! the shard each and stalled `/healthz`. Now the keys are streamed from a blocking thread
//! through a bounded channel; the body stays byte-identical (`k1,k2,...` in key order).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kvproto::Key;
use kvproto::bulk::{BulkCodec, BulkRecord, CONTENT_TYPE as BULK_CONTENT_TYPE};

const KEYS: usize = 300_000;
const CONCURRENT: usize = 6;

fn key(i: usize) -> String {
    format!("key-{i:010}-with-some-padding-to-weigh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_keys_streams_with_bounded_memory_and_healthz_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let server = spawn_binary(
        &dir.path().join("data"),
        &[
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--sync",
            "never",
        ],
    );
    wait_healthy(&server.ops_url()).await;
    let client = http();
    let all: Vec<usize> = (0..KEYS).collect();
    for chunk in all.chunks(50_000) {
        let records: Vec<BulkRecord> = chunk
            .iter()
            .map(|&i| BulkRecord {
                key: Key::new(key(i)).unwrap(),
                version: 1,
                value: Some(Bytes::from_static(b"v")),
            })
            .collect();
        let r = client
            .post(format!("{}/v1/admin/import", server.url()))
            .bearer_auth(TOKEN)
            .header("content-type", BULK_CONTENT_TYPE)
            .body(BulkCodec::encode_all(&records))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let mut expected: Vec<String> = (0..KEYS).map(key).collect();
    expected.sort();
    let expected = expected.join(",");

    let before = rss_bytes(server.child.id());
    let url = format!("{}/allKeys", server.url());
    let readers: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    let mut slowest_healthz = Duration::ZERO;
    let mut peak = before;
    while !readers.iter().all(|r| r.is_finished()) {
        let asked = Instant::now();
        let r = client
            .get(format!("{}/healthz", server.ops_url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        slowest_healthz = slowest_healthz.max(asked.elapsed());
        peak = peak.max(rss_bytes(server.child.id()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in readers {
        assert!(reader.await.unwrap() == expected, "/allKeys body differs");
    }
    peak = peak.max(rss_bytes(server.child.id()));
    eprintln!(
        "RSS before {} MiB, peak {} MiB; slowest /healthz {slowest_healthz:?}",
        before >> 20,
        peak >> 20
    );
    // Each old request held the shard's keys twice (~25 MB here); streaming holds a few chunks.
    assert!(
        peak <= before + (40 << 20),
        "RSS grew from {} MiB to {} MiB during {CONCURRENT} /allKeys",
        before >> 20,
        peak >> 20
    );
    assert!(
        slowest_healthz < Duration::from_secs(2),
        "/healthz took {slowest_healthz:?} during /allKeys"
    );
}
