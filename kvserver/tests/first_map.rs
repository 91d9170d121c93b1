//! Issue 13 item 2: a server started by the operator (`--require-topology`) serves no data and
//! is not ready until it has a persisted topology; the standalone server keeps the book's way.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use kvproto::{Key, Sharding, Topology};
use kvserver::AppState;

fn put(uri: &str, body: &'static [u8]) -> Request<Body> {
    Request::put(uri).body(Body::from(body)).unwrap()
}

fn push_one_shard() -> Request<Body> {
    let t = Topology::stable(1, Sharding::Modulo, vec!["http://127.0.0.1:1".to_owned()]);
    admin(
        "PUT",
        "/v1/admin/topology",
        serde_json::to_string(&t).unwrap(),
    )
}

#[tokio::test]
async fn a_server_that_requires_a_topology_serves_nothing_before_its_first_map() {
    let f = fixture_with(|c| c.require_topology = true);
    let ops = kvserver::ops_app(f.state.clone());
    let ready = send(&ops, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text(), "no topology yet");
    // Every data route refuses, retryably, and nothing lands.
    let r = send(&f.router, put("/v1/keys/k", b"early")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "misdirected"),
        "{}",
        r.text()
    );
    let r = send(&f.router, get("/save/k/early")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(
        send(&f.router, get("/load/k")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(f.state.store.get(&Key::new("k").unwrap()).unwrap(), None);

    let r = send(&f.router, push_one_shard()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(send(&ops, get("/readyz")).await.status, StatusCode::OK);
    let r = send(&f.router, put("/v1/keys/k", b"v")).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());

    // The map is persisted: a restart serves at once.
    let config = {
        let mut c = config(f.dir.path());
        c.require_topology = true;
        c
    };
    drop(f.router);
    drop(ops);
    drop(f.state);
    let state = AppState::open(&config).unwrap();
    let router = kvserver::app(state.clone());
    assert_eq!(send(&router, get("/load/k")).await.text(), "v");
    let ops = kvserver::ops_app(state);
    assert_eq!(send(&ops, get("/readyz")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_standalone_server_serves_without_a_topology_as_the_book_did() {
    let f = fixture();
    let ops = kvserver::ops_app(f.state.clone());
    assert_eq!(send(&ops, get("/readyz")).await.status, StatusCode::OK);
    assert_eq!(
        send(&f.router, get("/save/k/v")).await.status,
        StatusCode::OK
    );
    assert_eq!(send(&f.router, get("/load/k")).await.text(), "v");
}
