//! Three real servers (in-process, on 127.0.0.1:0) going from 2 to 3 shards through the
//! migration phases: forwarding, read-through, tombstones, if-absent copy, cleanup.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use common::*;
use kvproto::bulk::BulkCodec;
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::wire::ImportReport;
use kvproto::{Sharding, Topology};

struct Cluster {
    servers: Vec<Server>,
    client: reqwest::Client,
}

impl Cluster {
    async fn push(&self, t: &Topology) {
        for s in &self.servers {
            let r = self
                .client
                .put(format!("{}/v1/admin/topology", s.url))
                .bearer_auth(TOKEN)
                .json(t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    }
    async fn load(&self, via: usize, key: &str) -> String {
        self.client
            .get(format!("{}/load/{key}", self.servers[via].url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
    async fn save(&self, via: usize, key: &str, value: &str) {
        let r = self
            .client
            .get(format!("{}/save/{key}/{value}", self.servers[via].url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), value);
    }
    /// What a server holds locally: Some(value), None for absent, "<tombstone>" for a tombstone.
    async fn local(&self, at: usize, key: &str) -> Option<String> {
        let r = self
            .client
            .get(format!("{}/v1/internal/keys/{key}", self.servers[at].url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => Some(r.text().await.unwrap()),
            410 => Some("<tombstone>".into()),
            404 => None,
            other => panic!("internal read answered {other}"),
        }
    }
}

async fn cluster() -> Cluster {
    let mut servers = Vec::new();
    for shard in 0..3 {
        servers.push(start_server(shard).await);
    }
    Cluster {
        servers,
        client: http(),
    }
}

fn map(c: &Cluster, epoch: u64, shards: u32, migration: Option<Migration>) -> Topology {
    Topology {
        epoch,
        sharding: Sharding::Modulo,
        shards,
        peers: c.servers.iter().map(|s| s.url.clone()).collect(),
        migration,
    }
}

// 'b' = 98 and 'h' = 104: shard 0 of 2, shard 2 of 3. 'c' = 99: shard 1 of 2, shard 0 of 3.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_forwards_writes_to_the_new_owner_and_reads_through_to_the_old() {
    let c = cluster().await;
    c.push(&map(&c, 1, 2, None)).await;
    // Stable: any server forwards to the owner.
    c.save(1, "b", "old-b").await;
    assert_eq!(c.local(0, "b").await.as_deref(), Some("old-b"));
    assert_eq!(c.local(1, "b").await, None);

    c.push(&map(
        &c,
        2,
        3,
        Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Handoff,
        }),
    ))
    .await;
    // Clients still route over 2 shards: 'b' goes to server 0, which forwards to server 2,
    // which misses locally and reads through to server 0.
    assert_eq!(c.load(0, "b").await, "old-b");
    assert_eq!(c.load(2, "b").await, "old-b");
    assert_eq!(c.local(2, "b").await, None, "read-through does not copy");

    // A write after the handoff lands at the new owner only.
    c.save(0, "b", "new-b").await;
    assert_eq!(c.local(2, "b").await.as_deref(), Some("new-b"));
    assert_eq!(c.local(0, "b").await.as_deref(), Some("old-b"));
    assert_eq!(c.load(0, "b").await, "new-b");
    assert_eq!(c.load(1, "b").await, "new-b");

    // The /v1 API follows the same path, with the new owner's version.
    let r = c
        .client
        .get(format!("{}/v1/keys/b", c.servers[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kv-served-by"], "2");
    assert_eq!(r.headers()["x-kv-epoch"], "2");
    assert_eq!(r.headers()["x-kv-routing-shards"], "2");
    assert_eq!(r.text().await.unwrap(), "new-b");
    let m = c
        .client
        .get(format!("{}/metrics", c.servers[2].url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("kvserver_read_throughs_total{result=\"hit\"}"),
        "{m}"
    );
    for s in &c.servers {
        s.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_copy_is_not_resurrected_by_the_copy() {
    let c = cluster().await;
    c.push(&map(&c, 1, 2, None)).await;
    c.save(0, "h", "old-h").await;
    c.save(0, "b", "old-b").await;
    c.save(0, "c", "old-c").await;
    c.push(&map(
        &c,
        2,
        3,
        Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Handoff,
        }),
    ))
    .await;
    c.push(&map(
        &c,
        2,
        3,
        Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Copy,
        }),
    ))
    .await;

    // Clients now route over 3 shards. Delete 'h' at its new owner, which only the old owner held.
    let r = c
        .client
        .delete(format!("{}/v1/keys/h", c.servers[2].url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(c.local(2, "h").await.as_deref(), Some("<tombstone>"));
    assert_eq!(
        c.load(2, "h").await,
        "_key_not_found_",
        "a tombstone stops read-through"
    );
    c.save(2, "b", "new-b").await;

    // The operator's copy: moving keys of each old owner, imported if absent.
    for old in 0..2 {
        let stream = c
            .client
            .get(format!(
                "{}/v1/admin/export?scope=moving",
                c.servers[old].url
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let records = BulkCodec::decode_all(&stream, usize::MAX).unwrap();
        // The count the operator reads for its progress matches what the export sent.
        let count: serde_json::Value = c
            .client
            .get(format!(
                "{}/v1/admin/export/count?scope=moving",
                c.servers[old].url
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(count["records"], records.len() as u64, "shard {old}");
        assert!(!records.is_empty(), "shard {old} has keys to move");
        for new in 0..3 {
            let mine: Vec<_> = records
                .iter()
                .filter(|r| kvproto::shard::modulo(r.key.as_bytes(), 3) == new)
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let r = c
                .client
                .post(format!(
                    "{}/v1/admin/import?mode=if-absent&epoch=2&phase=copy",
                    c.servers[new as usize].url
                ))
                .bearer_auth(TOKEN)
                .body(BulkCodec::encode_all(&mine))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let report: ImportReport = r.json().await.unwrap();
            if new == 2 {
                // 'b' was rewritten and 'h' deleted at the new owner: both skipped.
                assert_eq!((report.applied, report.skipped), (0, 2));
            }
        }
    }
    assert_eq!(c.load(2, "h").await, "_key_not_found_");
    assert_eq!(c.load(2, "b").await, "new-b");
    assert_eq!(
        c.local(0, "c").await.as_deref(),
        Some("old-c"),
        "'c' was copied to its new owner 0"
    );

    // Commit, then clean up: old copies and tombstones go.
    c.push(&map(&c, 2, 3, None)).await;
    for s in &c.servers {
        let r = c
            .client
            .post(format!("{}/v1/admin/cleanup?epoch=2&phase=stable", s.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(c.local(0, "h").await, None);
    assert_eq!(c.local(2, "h").await, None);
    assert_eq!(c.local(1, "c").await, None);
    for via in 0..3 {
        assert_eq!(c.load(via, "h").await, "_key_not_found_");
        assert_eq!(c.load(via, "b").await, "new-b");
        assert_eq!(c.load(via, "c").await, "old-c");
    }
    for s in &c.servers {
        s.stop.cancel();
    }
}
