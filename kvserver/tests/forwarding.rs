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

// ---- Forwarding when tokens differ, and token rotation (issue 13, item 11) ----

/// A server like `start_server`, whose admin token file holds `token_file` instead of [`TOKEN`].
async fn start_with_token(shard: u32, token_file: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    std::fs::write(c.admin_token_file.as_ref().unwrap(), token_file).unwrap();
    c.shard = Some(shard);
    let state = kvserver::AppState::open(&c).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
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

async fn push_as(client: &reqwest::Client, server: &Server, token: &str, t: &Topology) {
    let r = client
        .put(format!("{}/v1/admin/topology", server.url))
        .bearer_auth(token)
        .json(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// `kvserver_forwards_total` summed over every target shard, from the server's `/metrics`.
async fn forwards(client: &reqwest::Client, server: &Server) -> u64 {
    let text = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("kvserver_forwards_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Two servers going from 1 to 2 shards, in Handoff: 'c' (99) moves from shard 0 to shard 1.
fn handoff_1_to_2(servers: &[&Server]) -> Topology {
    Topology {
        epoch: 2,
        sharding: Sharding::Modulo,
        shards: 2,
        peers: servers.iter().map(|s| s.url.clone()).collect(),
        migration: Some(Migration {
            from_shards: 1,
            phase: MigrationPhase::Handoff,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_tokens_during_handoff_give_a_bounded_number_of_forwards() {
    let client = http();
    let (a, b) = (
        start_with_token(0, "token-a\n").await,
        start_with_token(1, "token-b\n").await,
    );
    let map = handoff_1_to_2(&[&a, &b]);
    push_as(&client, &a, "token-a", &map).await;
    push_as(&client, &b, "token-b", &map).await;

    // Through either server: 0 forwards 'c' to its new owner 1, which, without trusted
    // forwarding headers, would send it back to the old owner 0, and so on.
    let mut answers = Vec::new();
    for via in [&a, &b] {
        let r = client
            .get(format!("{}/v1/keys/c", via.url))
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    let total = forwards(&client, &a).await + forwards(&client, &b).await;
    // One forward each: the receiver refuses the other's token instead of sending it back.
    assert_eq!(
        total, 2,
        "{total} forwards for two GETs; answers {answers:?}"
    );
    for (status, body) in answers {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error"], "peer_unauthorized", "{body}");
    }
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forwarding_headers_without_the_token_get_401() {
    let client = http();
    let c = cluster().await;
    c.push(&map(&c, 1, 2, None)).await;
    c.save(0, "c", "at-1").await;
    let before = forwards(&client, &c.servers[0]).await;
    // A client claiming a newer epoch would make shard 0 serve 'c' (shard 1's) locally.
    for auth in [None, Some("wrong-token")] {
        for (name, value) in [
            ("x-kv-forwarded-epoch", "99"),
            ("x-kv-hops", "1"),
            ("x-kv-read-through", "1"),
        ] {
            for path in ["/v1/keys/c", "/load/c"] {
                let mut req = client
                    .get(format!("{}{path}", c.servers[0].url))
                    .header(name, value);
                if let Some(t) = auth {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), 401, "{path} with {name} and {auth:?}");
            }
        }
    }
    // Not served, and not forwarded either.
    assert_eq!(forwards(&client, &c.servers[0]).await, before);
    for s in &c.servers {
        s.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_at_the_hop_limit_is_never_forwarded() {
    let client = http();
    let c = cluster().await;
    c.push(&map(&c, 1, 2, None)).await;
    let before = forwards(&client, &c.servers[0]).await;
    let max = kvproto::topology::MAX_HOPS;
    for hops in [max, max + 1, u32::MAX] {
        let r = client
            .get(format!("{}/v1/keys/c", c.servers[0].url))
            .bearer_auth(TOKEN)
            .header("x-kv-forwarded-epoch", "1")
            .header("x-kv-hops", hops.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 508, "hops {hops}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "loop_detected", "{body}");
    }
    assert_eq!(forwards(&client, &c.servers[0]).await, before);
    // One below the limit is forwarded, with the count incremented: the owner serves it.
    let r = client
        .get(format!("{}/v1/keys/c", c.servers[0].url))
        .bearer_auth(TOKEN)
        .header("x-kv-forwarded-epoch", "1")
        .header("x-kv-hops", (max - 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(forwards(&client, &c.servers[0]).await, before + 1);
    for s in &c.servers {
        s.stop.cancel();
    }
}

/// The status of an admin call (a local read of a key nobody wrote) with `token`.
async fn admin_status(client: &reqwest::Client, server: &Server, token: &str) -> u16 {
    client
        .get(format!("{}/v1/internal/keys/nothing", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_with_current_and_next_tokens_accepts_both_and_sends_the_first() {
    let client = http();
    // Mid-rotation: shard 0 still sends "old", shard 1 already sends "new"; both accept both.
    let (a, b) = (
        start_with_token(0, "old\nnew\n").await,
        start_with_token(1, "new\nold\n").await,
    );
    for s in [&a, &b] {
        assert_eq!(admin_status(&client, s, "old").await, 404);
        assert_eq!(admin_status(&client, s, "new").await, 404);
        assert_eq!(admin_status(&client, s, "other").await, 401);
        assert_eq!(admin_status(&client, s, "old new").await, 401);
    }
    // 'e' (101) is held by shard 0 before the handoff moves it to shard 1.
    let r = client
        .put(format!("{}/v1/keys/e", a.url))
        .body("at-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let map = handoff_1_to_2(&[&a, &b]);
    push_as(&client, &a, "old", &map).await;
    push_as(&client, &b, "new", &map).await;
    // 1 reads 'e' through from 0 with the token it sends ("new").
    for via in [&a, &b] {
        let r = client
            .get(format!("{}/v1/keys/e", via.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "at-0");
    }
    // A write forwarded 0 → 1 with the token 0 sends ("old"), then read through either.
    let r = client
        .put(format!("{}/v1/keys/c", a.url))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    for via in [&a, &b] {
        let r = client
            .get(format!("{}/v1/keys/c", via.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "v");
    }
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_rewritten_while_running_takes_effect_without_restart() {
    let client = http();
    let s = start_with_token(0, "old\n").await;
    assert_eq!(admin_status(&client, &s, "old").await, 404);
    assert_eq!(admin_status(&client, &s, "new").await, 401);
    let file = s.dir.path().join("token");
    // The kubelet swaps a Secret volume's files by renaming a new directory into place.
    let next = s.dir.path().join("token.next");
    std::fs::write(&next, "new\nold\n").unwrap();
    std::fs::rename(&next, &file).unwrap();
    let mut accepted = false;
    for _ in 0..300 {
        if admin_status(&client, &s, "new").await == 404 {
            accepted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(accepted, "the new token was never accepted");
    assert_eq!(admin_status(&client, &s, "old").await, 404);
    // Dropping the old token.
    std::fs::write(&file, "new\n").unwrap();
    let mut refused = false;
    for _ in 0..300 {
        if admin_status(&client, &s, "old").await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the old token was never dropped");
    assert_eq!(admin_status(&client, &s, "new").await, 404);
    s.stop.cancel();
}
