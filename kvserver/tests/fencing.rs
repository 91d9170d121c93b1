//! Issue 13 item 3: imports and cleanups carry their move's epoch and phase, and a server takes
//! them only while its own topology is at that step. Reproduced before the fence: a copy batch
//! that arrived after another operator's Commit and Cleanup resurrected a key the client had
//! deleted.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::*;
use kvproto::bulk::{BulkCodec, BulkRecord};
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::{Fence, Key, Sharding, Topology};

/// Shard 0 of a move from 1 to 2 shards at epoch 2, in `phase` (None: committed).
fn map(phase: Option<MigrationPhase>) -> Topology {
    let mut t = Topology::stable(
        2,
        Sharding::Modulo,
        vec!["http://127.0.0.1:1".to_owned(); 2],
    );
    t.migration = phase.map(|phase| Migration {
        from_shards: 1,
        phase,
    });
    t
}

fn push(t: &Topology) -> Request<Body> {
    admin(
        "PUT",
        "/v1/admin/topology",
        serde_json::to_string(t).unwrap(),
    )
}

/// An if-absent import of `key` = `value` at `version`, with the query `fence` (may be empty).
fn import(fence: &str, key: &str, version: u64, value: &'static [u8]) -> Request<Body> {
    let records = [BulkRecord {
        key: Key::new(key).unwrap(),
        version,
        value: Some(Bytes::from_static(value)),
    }];
    let uri = format!("/v1/admin/import?mode=if-absent{fence}");
    admin("POST", &uri, BulkCodec::encode_all(&records))
}

fn cleanup(fence: &str) -> Request<Body> {
    admin("POST", &format!("/v1/admin/cleanup{fence}"), Body::empty())
}

fn q(fence: Fence) -> String {
    format!("&{}", fence.query())
}

#[tokio::test]
async fn a_copy_batch_after_commit_and_cleanup_does_not_resurrect_a_deleted_key() {
    let f = fixture();
    assert_eq!(
        send(&f.router, push(&map(Some(MigrationPhase::Copy))))
            .await
            .status,
        StatusCode::OK
    );
    // 'b' (98 % 2 = 0) is ours. The copy brings it, the client deletes it.
    let r = send(&f.router, import(&q(Fence::copy(2)), "b", 5, b"old")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let del = Request::delete("/v1/keys/b").body(Body::empty()).unwrap();
    assert_eq!(send(&f.router, del).await.status, StatusCode::NO_CONTENT);
    // Another operator commits and cleans up (the tombstone goes).
    assert_eq!(
        send(&f.router, push(&map(None))).await.status,
        StatusCode::OK
    );
    let r = send(
        &f.router,
        cleanup(&format!("?{}", Fence::stable(2).query())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The deposed operator's late batch of the same copy.
    let late = send(&f.router, import(&q(Fence::copy(2)), "b", 5, b"old")).await;
    assert_eq!(
        (late.status, late.code().as_str()),
        (StatusCode::CONFLICT, "fenced"),
        "{}",
        late.text()
    );
    let r = send(&f.router, get("/v1/keys/b")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "resurrected: {}", r.text());
}

#[tokio::test]
async fn a_server_with_a_topology_refuses_unfenced_and_misfenced_writes() {
    let f = fixture();
    send(&f.router, push(&map(Some(MigrationPhase::Copy)))).await;
    for (what, req) in [
        ("unfenced import", import("", "b", 5, b"x")),
        (
            "import of an older move",
            import(&q(Fence::copy(1)), "b", 5, b"x"),
        ),
        (
            "import fenced as stable",
            import(&q(Fence::stable(2)), "b", 5, b"x"),
        ),
        ("unfenced cleanup", cleanup("")),
        (
            "cleanup during the copy",
            cleanup(&format!("?{}", Fence::stable(2).query())),
        ),
    ] {
        let r = send(&f.router, req).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "fenced"),
            "{what}: {}",
            r.text()
        );
    }
    assert_eq!(
        send(&f.router, get("/v1/keys/b")).await.status,
        StatusCode::NOT_FOUND,
        "a refused import wrote"
    );
    // Once committed, the copy's fence is refused.
    send(&f.router, push(&map(None))).await;
    let r = send(&f.router, import(&q(Fence::copy(2)), "b", 5, b"x")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
}

#[tokio::test]
async fn a_malformed_fence_is_a_400() {
    let f = fixture();
    send(&f.router, push(&map(Some(MigrationPhase::Copy)))).await;
    for fence in [
        "&epoch=2",
        "&phase=copy",
        "&epoch=two&phase=copy",
        "&epoch=2&phase=later",
    ] {
        let r = send(&f.router, import(fence, "b", 5, b"x")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fence}: {}", r.text());
    }
}

#[tokio::test]
async fn a_standalone_server_still_takes_unfenced_imports() {
    // No topology: the book's mode, and tools that load a fresh server.
    let f = fixture();
    let r = send(&f.router, import("", "b", 5, b"x")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send(&f.router, import(&q(Fence::copy(2)), "c", 5, b"x")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
}
