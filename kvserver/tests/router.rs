//! Every route and every error, through the real router with `oneshot`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::*;
use kvproto::bulk::{BulkCodec, BulkRecord};
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::wire::{CleanupReport, ImportReport, Info, KeyPage};
use kvproto::{Key, Sharding, Topology};

fn put(uri: &str, body: &'static [u8]) -> Request<Body> {
    Request::put(uri).body(Body::from(body)).unwrap()
}

fn stable(shards: u32) -> Topology {
    // Peers nobody listens on: a forward fails fast with connection refused.
    Topology::stable(
        1,
        Sharding::Modulo,
        (0..shards)
            .map(|_| "http://127.0.0.1:1".to_owned())
            .collect(),
    )
}

fn topology_json(t: &Topology) -> String {
    serde_json::to_string(t).unwrap()
}

fn push(t: &Topology) -> Request<Body> {
    admin("PUT", "/v1/admin/topology", topology_json(t))
}

fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

/// The local-only read of `key` (no routing, no read-through), with the token.
fn internal(key: &str) -> Request<Body> {
    admin("GET", &format!("/v1/internal/keys/{key}"), Body::empty())
}

#[tokio::test]
async fn book_routes_answer_like_the_flask_server() {
    let f = fixture();
    let r = send(&f.router, get("/load/a")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "_key_not_found_")
    );
    let r = send(&f.router, get("/save/a/hello")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "hello"));
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    let r = send(&f.router, get("/load/a")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "hello"));
    send(&f.router, get("/save/c/x%20y")).await;
    send(&f.router, get("/save/b/2")).await;
    assert_eq!(send(&f.router, get("/load/c")).await.text(), "x y");
    let r = send(&f.router, get("/allKeys")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "a,b,c"));
    assert_eq!(r.headers["x-kv-epoch"], "0");
    assert!(r.headers.get("x-kv-routing-shards").is_none());
}

#[tokio::test]
async fn book_routes_refuse_bad_keys_with_400_and_a_reason() {
    let f = fixture();
    for uri in [
        "/load/..",
        "/load/.",
        "/load/..%2F..%2Fetc%2Fpasswd",
        "/load/%2E%2E",
        "/load/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/load/a%00b",
        "/load/a%0Ab",
        "/load/../etc/passwd",
        "/save/../x",
        "/save/..%2Fx/v",
        "/save/a%2Cb/v",
    ] {
        let r = send(&f.router, get(uri)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
        assert!(
            r.text().contains("key") || r.text().contains("value"),
            "{uri}: {}",
            r.text()
        );
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    let long = format!("/load/{}", "k".repeat(251));
    let r = send(&f.router, get(&long)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("1 to 250 bytes"), "{}", r.text());
    let r = send(&f.router, get("/save/a/b/c")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("one path segment"));
    assert_eq!(send(&f.router, get("/allKeys")).await.text(), "");
}

#[tokio::test]
async fn book_save_over_the_value_limit_is_413() {
    let f = fixture_with(|c| c.max_value_bytes = 4);
    let r = send(&f.router, get("/save/a/12345")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().contains("exceeds the limit of 4 bytes"));
    assert_eq!(
        send(&f.router, get("/save/a/1234")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn v1_keys_put_get_delete_with_versions() {
    let f = fixture();
    let r = send(&f.router, get("/v1/keys/k%20x")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let r = send(&f.router, put("/v1/keys/k%20x", b"\x00\xffraw")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let v1 = r.etag();
    let r = send(&f.router, get("/v1/keys/k%20x")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"\x00\xffraw");
    assert_eq!(r.etag(), v1);
    assert_eq!(r.headers["x-kv-served-by"], "0");

    // The same key through the book route.
    assert_eq!(
        send(&f.router, get("/load/k%20x")).await.body,
        Bytes::from_static(b"\x00\xffraw")
    );

    let r = send(&f.router, put("/v1/keys/k%20x", b"two")).await;
    let v2 = r.etag();
    assert!(v2 > v1, "versions grow: {v1} then {v2}");

    let r = send(&f.router, delete("/v1/keys/k%20x")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&f.router, delete("/v1/keys/k%20x")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        send(&f.router, get("/load/k%20x")).await.text(),
        "_key_not_found_"
    );
}

#[tokio::test]
async fn v1_conditional_writes() {
    let f = fixture();
    let if_absent = |body: &'static [u8]| {
        Request::put("/v1/keys/c")
            .header("if-none-match", "*")
            .body(Body::from(body))
            .unwrap()
    };
    let r = send(&f.router, if_absent(b"first")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let v = r.etag();
    let r = send(&f.router, if_absent(b"second")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PRECONDITION_FAILED, "precondition_failed")
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains(&v.to_string())
    );

    let if_match = |v: String, body: &'static [u8]| {
        Request::put("/v1/keys/c")
            .header("if-match", v)
            .body(Body::from(body))
            .unwrap()
    };
    let r = send(&f.router, if_match(format!("\"{}\"", v + 1), b"x")).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = send(&f.router, if_match(format!("\"{v}\""), b"third")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let v3 = r.etag();
    let r = send(&f.router, if_match("nonsense".into(), b"x")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = send(
        &f.router,
        Request::put("/v1/keys/c")
            .header("if-none-match", "\"1\"")
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let del = |v: u64| {
        Request::delete("/v1/keys/c")
            .header("if-match", format!("\"{v}\""))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&f.router, del(v)).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        send(&f.router, del(v3)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&f.router, get("/v1/keys/c")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn v1_errors_are_json_with_codes() {
    let f = fixture_with(|c| c.max_value_bytes = 8);
    for uri in [
        "/v1/keys/..",
        "/v1/keys/..%2F..%2Fetc%2Fpasswd",
        "/v1/keys/%00",
        "/v1/keys/a,b",
        "/v1/keys/a/b",
    ] {
        let r = send(&f.router, get(uri)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_key"),
            "{uri}"
        );
    }
    let r = send(&f.router, put("/v1/keys/big", b"123456789")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")
    );
    // A body without Content-Length is cut at the limit too.
    let stream = futures::stream::iter(
        (0..2).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"12345"))),
    );
    let r = send(
        &f.router,
        Request::put("/v1/keys/big")
            .body(Body::from_stream(stream))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let r = send(&f.router, get("/no/such/route")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    let r = send(
        &f.router,
        Request::post("/v1/keys/a").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "route_not_found");
    let r = send(&f.router, get("/v1/keys?limit=many")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = send(&f.router, get("/v1/topology")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn listing_pages_through_keys_in_order() {
    let f = fixture();
    for k in ["user:1", "user:2", "user:3", "other", "user:4"] {
        send(&f.router, put(&format!("/v1/keys/{k}"), b"v")).await;
    }
    let page: KeyPage = serde_json::from_slice(
        &send(&f.router, get("/v1/keys?prefix=user:&limit=2"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(page.keys, ["user:1", "user:2"]);
    assert_eq!(page.next_after.as_deref(), Some("user:2"));
    let page: KeyPage = serde_json::from_slice(
        &send(&f.router, get("/v1/keys?prefix=user:&limit=2&after=user:2"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(page.keys, ["user:3", "user:4"]);
    let page: KeyPage = serde_json::from_slice(
        &send(&f.router, get("/v1/keys?prefix=user:&after=user:4"))
            .await
            .body,
    )
    .unwrap();
    assert!(page.keys.is_empty() && page.next_after.is_none());
    let page: KeyPage =
        serde_json::from_slice(&send(&f.router, get("/v1/keys")).await.body).unwrap();
    assert_eq!(page.keys.len(), 5);
    assert_eq!(page.keys[0], "other");
}

#[tokio::test]
async fn info_reports_counts_and_probes_answer() {
    let f = fixture();
    send(&f.router, put("/v1/keys/a", b"123")).await;
    send(&f.router, put("/v1/keys/b", b"45")).await;
    send(&f.router, put("/v1/keys/b", b"456")).await;
    let info: Info = serde_json::from_slice(&send(&f.router, get("/v1/info")).await.body).unwrap();
    assert_eq!(
        (info.keys, info.bytes, info.shard, info.draining),
        (2, 6, 0, false)
    );
    assert!(info.topology.is_none());
    assert_eq!(send(&f.router, get("/healthz")).await.text(), "ok");
    assert_eq!(send(&f.router, get("/readyz")).await.text(), "ready");
    let m = send(&f.router, get("/metrics")).await.text();
    assert!(m.contains("kvserver_keys 2"), "{m}");
    assert!(m.contains("kvserver_value_bytes 6"), "{m}");
    assert!(
        m.contains(
            "kvserver_http_requests_total{route=\"/v1/keys/{key}\",method=\"PUT\",status=\"204\"} 3"
        ),
        "{m}"
    );
    assert!(
        m.contains("kvserver_http_request_duration_seconds_bucket"),
        "{m}"
    );
}

#[tokio::test]
async fn draining_answers_503_on_data_routes_only() {
    let f = fixture();
    send(&f.router, get("/save/a/1")).await;
    let ops = kvserver::ops_app(f.state.clone());
    // What SIGTERM does (lifecycle.rs sends a real one).
    f.state.start_draining();
    for uri in ["/load/a", "/save/a/2", "/allKeys"] {
        let r = send(&f.router, get(uri)).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "_shutting_down_"),
            "{uri}"
        );
    }
    let r = send(&f.router, get("/v1/keys/a")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    );
    assert_eq!(
        send(&ops, get("/readyz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(send(&ops, get("/healthz")).await.status, StatusCode::OK);
    // Admin routes keep working, so the operator can still move data off a draining server.
    assert_eq!(send(&f.router, internal("a")).await.status, StatusCode::OK);
    let m = send(&ops, get("/metrics")).await.text();
    assert!(m.contains("kvserver_draining 1"), "{m}");
}

#[tokio::test]
async fn a_restart_is_never_stuck_draining_and_keeps_data_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let v1 = {
        let state = kvserver::AppState::open(&c).unwrap();
        let router = kvserver::app(state.clone());
        let v = send(&router, put("/v1/keys/a", b"1")).await.etag();
        state.start_draining();
        state.store.flush().await.unwrap();
        v
    };
    let state = kvserver::AppState::open(&c).unwrap();
    assert!(!state.is_draining());
    let router = kvserver::app(state);
    let r = send(&router, get("/v1/keys/a")).await;
    assert_eq!((r.status, r.etag()), (StatusCode::OK, v1));
    assert!(send(&router, put("/v1/keys/b", b"2")).await.etag() > v1);
}

#[tokio::test]
async fn data_routes_can_require_the_token() {
    let f = fixture_with(|c| c.require_token_for_data = true);
    let r = send(&f.router, get("/load/a")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&f.router, get("/v1/keys/a")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = send(&f.router, admin("GET", "/load/a", Body::empty())).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "_key_not_found_")
    );
}

#[tokio::test]
async fn admin_routes_need_the_token() {
    let f = fixture();
    for (method, uri) in [
        ("PUT", "/v1/admin/topology"),
        ("GET", "/v1/admin/export"),
        ("GET", "/v1/admin/export/count"),
        ("POST", "/v1/admin/import"),
        ("POST", "/v1/admin/cleanup"),
        ("GET", "/v1/internal/keys/a"),
    ] {
        let r = send(
            &f.router,
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{uri}"
        );
        let wrong = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer nope")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&f.router, wrong).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    let no_token = fixture_with(|c| c.admin_token_file = None);
    let r = send(
        &no_token.router,
        admin("POST", "/v1/admin/cleanup", Body::empty()),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("no admin token")
    );
}

#[tokio::test]
async fn topology_pushes_are_persisted_and_only_move_forward() {
    let f = fixture();
    let t1 = stable(1);
    let r = send(&f.router, push(&t1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["x-kv-epoch"], "1");
    assert_eq!(r.headers["x-kv-routing-shards"], "1");
    let on_disk: Topology =
        serde_json::from_slice(&std::fs::read(f.dir.path().join("data/topology.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, t1);
    // Idempotent.
    assert_eq!(send(&f.router, push(&t1)).await.status, StatusCode::OK);
    // Same epoch, different map: conflict. Older epoch: stale.
    let mut other = stable(2);
    other.epoch = 1;
    let r = send(&f.router, push(&other)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "topology_conflict")
    );
    let mut old = stable(1);
    old.epoch = 0;
    assert_eq!(
        send(&f.router, push(&old)).await.status,
        StatusCode::CONFLICT
    );
    let r = send(&f.router, admin("PUT", "/v1/admin/topology", "{}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = send(&f.router, get("/v1/topology")).await;
    assert_eq!(serde_json::from_slice::<Topology>(&r.body).unwrap(), t1);

    // A fresh server refuses a map that does not validate.
    let g = fixture();
    let mut bad = stable(2);
    bad.peers.pop();
    let r = send(&g.router, push(&bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn forwarding_headers_without_the_token_are_refused() {
    let f = fixture();
    // Two shards; 'b' (98) belongs to shard 0 (us), 'a' (97) to shard 1, which is unreachable.
    send(&f.router, push(&stable(2))).await;
    assert_eq!(
        send(&f.router, get("/load/b")).await.text(),
        "_key_not_found_"
    );
    let r = send(&f.router, get("/load/a")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let r = send(&f.router, get("/v1/keys/a")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "peer_unavailable")
    );
    // A newer forwarder's epoch is trusted only with the token; without it, 401.
    let spoofed = Request::get("/v1/keys/a")
        .header("x-kv-forwarded-epoch", "9")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&f.router, spoofed).await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut trusted = admin("GET", "/v1/keys/a", Body::empty());
    trusted
        .headers_mut()
        .insert("x-kv-forwarded-epoch", "9".parse().unwrap());
    assert_eq!(send(&f.router, trusted).await.status, StatusCode::NOT_FOUND);
    // Too many hops: never forwarded, 508.
    let mut looping = admin("GET", "/v1/keys/a", Body::empty());
    looping
        .headers_mut()
        .insert("x-kv-forwarded-epoch", "1".parse().unwrap());
    looping
        .headers_mut()
        .insert("x-kv-hops", "3".parse().unwrap());
    let r = send(&f.router, looping).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::LOOP_DETECTED, "loop_detected")
    );
}

fn rec(key: &str, version: u64, value: Option<&'static [u8]>) -> BulkRecord {
    BulkRecord {
        key: Key::new(key).unwrap(),
        version,
        value: value.map(Bytes::from_static),
    }
}

async fn export(router: &axum::Router, scope: &str) -> Vec<BulkRecord> {
    let r = send(
        router,
        admin(
            "GET",
            &format!("/v1/admin/export?scope={scope}"),
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/x-kvstore-bulk");
    BulkCodec::decode_all(&r.body, usize::MAX).unwrap()
}

#[tokio::test]
async fn export_and_import_round_trip_with_versions_and_tombstones() {
    let src = fixture();
    send(&src.router, put("/v1/keys/a", b"A")).await;
    send(&src.router, put("/v1/keys/b", b"B")).await;
    let records = export(&src.router, "all").await;
    assert_eq!(records.len(), 2);

    let dst = fixture();
    let body = BulkCodec::encode_all(&records);
    let r = send(
        &dst.router,
        admin("POST", "/v1/admin/import?mode=overwrite", body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let report: ImportReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((report.applied, report.skipped), (2, 0));
    let got = send(&dst.router, get("/v1/keys/a")).await;
    assert_eq!((got.etag(), &got.body[..]), (records[0].version, &b"A"[..]));
    // Local versions move past imported ones.
    assert!(send(&dst.router, put("/v1/keys/c", b"C")).await.etag() > records[1].version);

    // if-absent skips what exists and what is tombstoned, applies the rest.
    let far_future = kvproto::bulk::MAX_VERSION / 2;
    let more = BulkCodec::encode_all(&[
        rec("a", 1, Some(b"old")),
        rec("d", far_future, Some(b"D")),
        rec("e", 5, None),
    ]);
    let r = send(
        &dst.router,
        admin("POST", "/v1/admin/import?mode=if-absent", more),
    )
    .await;
    let report: ImportReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((report.applied, report.skipped), (2, 1));
    assert_eq!(send(&dst.router, get("/load/a")).await.text(), "A");
    assert_eq!(send(&dst.router, get("/load/d")).await.text(), "D");
    assert!(send(&dst.router, put("/v1/keys/f", b"F")).await.etag() > far_future);
    let again = BulkCodec::encode_all(&[rec("e", 6, Some(b"resurrected"))]);
    let r = send(
        &dst.router,
        admin("POST", "/v1/admin/import?mode=if-absent", again),
    )
    .await;
    let report: ImportReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((report.applied, report.skipped), (0, 1));
    assert_eq!(
        send(&dst.router, internal("e")).await.status,
        StatusCode::GONE
    );
    let exported = export(&dst.router, "all").await;
    assert!(
        exported
            .iter()
            .any(|r| r.key.as_str() == "e" && r.value.is_none()),
        "tombstones are exported"
    );
}

#[tokio::test]
async fn malformed_bulk_streams_are_refused_whole() {
    let f = fixture_with(|c| c.max_value_bytes = 4);
    let good = BulkCodec::encode_all(&[rec("a", 1, Some(b"1")), rec("b", 2, Some(b"2"))]);
    let truncated = good.slice(..good.len() - 3);
    let too_big = BulkCodec::encode_all(&[rec("a", 1, Some(b"1")), rec("b", 2, Some(b"12345"))]);
    let mut bad_key = good.to_vec();
    // Turn the second record's key "b" into "/".
    let at = bad_key.iter().rposition(|&c| c == b'b').unwrap();
    bad_key[at] = b'/';
    for (body, needle) in [
        (truncated, "truncated after 2 records"),
        (too_big, "record 1"),
        (Bytes::from(bad_key), "record 1"),
        (Bytes::from_static(b"nope"), "magic"),
    ] {
        let r = send(&f.router, admin("POST", "/v1/admin/import", body)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_bulk_stream")
        );
        assert!(
            r.json()["message"].as_str().unwrap().contains(needle),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        send(&f.router, get("/allKeys")).await.text(),
        "",
        "nothing was applied"
    );
    let r = send(
        &f.router,
        admin("POST", "/v1/admin/import?mode=sideways", Body::empty()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &f.router,
        admin("GET", "/v1/admin/export?scope=some", Body::empty()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &f.router,
        admin("GET", "/v1/admin/export/count?scope=some", Body::empty()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deletes_leave_tombstones_while_migrating_and_cleanup_purges_them() {
    let f = fixture();
    // Shard 0 of 2, migrating to 2 from 1: Copy phase. 'b' (98) stays ours; 'a' (97) moves to shard 1.
    let mut t = stable(2);
    t.migration = Some(Migration {
        from_shards: 1,
        phase: MigrationPhase::Copy,
    });
    send(&f.router, put("/v1/keys/b", b"B")).await;
    send(&f.router, put("/v1/keys/a", b"A")).await;
    send(&f.router, put("/v1/keys/d", b"D")).await;
    let r = send(&f.router, push(&t)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["x-kv-routing-shards"], "2");

    let moving = export(&f.router, "moving").await;
    assert_eq!(
        moving.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["a"]
    );

    let r = send(&f.router, delete("/v1/keys/b")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&f.router, internal("b")).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(
        send(&f.router, get("/load/b")).await.text(),
        "_key_not_found_"
    );

    let fenced_cleanup = || {
        admin(
            "POST",
            "/v1/admin/cleanup?epoch=1&phase=stable",
            Body::empty(),
        )
    };
    let r = send(&f.router, fenced_cleanup()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "fenced")
    );

    let mut done = t.clone();
    done.migration = None;
    assert_eq!(send(&f.router, push(&done)).await.status, StatusCode::OK);
    let r = send(&f.router, fenced_cleanup()).await;
    assert_eq!(r.status, StatusCode::OK);
    let report: CleanupReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((report.removed_keys, report.removed_tombstones), (1, 1));
    assert_eq!(send(&f.router, get("/allKeys")).await.text(), "d");
    assert_eq!(
        send(&f.router, internal("b")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(send(&f.router, internal("d")).await.status, StatusCode::OK);
    // A stable delete removes outright.
    send(&f.router, delete("/v1/keys/d")).await;
    assert_eq!(
        send(&f.router, internal("d")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Issue 13 item 13: axum's `get` also runs the handler for HEAD, so `HEAD /save/k/v` wrote.
/// It must now answer 405 and change nothing; GET keeps working.
#[tokio::test]
async fn head_does_not_save() {
    let f = fixture();
    let head = |uri: &str| Request::head(uri).body(Body::empty()).unwrap();
    let r = send(&f.router, head("/save/a/1")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = send(&f.router, get("/load/a")).await;
    assert_eq!(r.text(), "_key_not_found_");
    let r = send(&f.router, get("/save/a/1")).await;
    assert_eq!(r.text(), "1");
}

/// Issue 13 item 7: an unauthenticated one-way `GET /drain` on the ops port let any pod take a
/// shard offline (and `HEAD /drain` drained too). No HTTP request may drain: the route is gone
/// from both ports, with or without the admin token; only SIGTERM drains.
#[tokio::test]
async fn no_http_request_drains() {
    let f = fixture();
    let ops = kvserver::ops_app(f.state.clone());
    for router in [&ops, &f.router] {
        for method in ["GET", "HEAD", "POST", "PUT"] {
            let plain = Request::builder()
                .method(method)
                .uri("/drain")
                .body(Body::empty())
                .unwrap();
            assert_eq!(send(router, plain).await.status, StatusCode::NOT_FOUND);
            let r = send(router, admin(method, "/drain", Body::empty())).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} /drain");
        }
    }
    assert!(!f.state.is_draining());
    assert_eq!(send(&ops, get("/readyz")).await.status, StatusCode::OK);
    assert_eq!(send(&f.router, get("/save/a/1")).await.text(), "1");
}

/// A body that sends `first` and then stalls forever, as a slow or malicious client does.
fn stalled_body(first: &'static [u8]) -> Body {
    use futures::StreamExt;
    let first =
        futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from_static(first)) });
    Body::from_stream(first.chain(futures::stream::pending()))
}

/// Waits for an answer, failing loudly if the router never gives one (it waited for a body).
async fn answered(router: &axum::Router, req: Request<Body>) -> Answer {
    tokio::time::timeout(std::time::Duration::from_secs(20), send(router, req))
        .await
        .expect("no answer within 20 s: the router waited for a body that never ends")
}

/// Issue 13 item 9: the topology route buffered its body (up to 2 MiB) before checking the
/// token, so stalled unauthenticated uploads held memory. Every admin route must refuse a
/// missing or wrong token before reading a byte of the body: a body that never ends still gets
/// its 401.
#[tokio::test]
async fn admin_routes_refuse_a_bad_token_before_reading_the_body() {
    let f = fixture();
    for (method, uri) in [
        ("PUT", "/v1/admin/topology"),
        ("POST", "/v1/admin/import"),
        ("POST", "/v1/admin/cleanup"),
    ] {
        for auth in [None, Some("Bearer wrong-token")] {
            let mut req = Request::builder().method(method).uri(uri);
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let r = answered(&f.router, req.body(stalled_body(b"{")).unwrap()).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{method} {uri} with {auth:?}"
            );
        }
    }
}

/// Issue 13 item 9: each route has a body limit that fits it. A topology push is small (the
/// shard map), so a large one is refused 413 (JSON) however it is sent, and a topology body that
/// stalls is cut at `--body-read-timeout` with 408; an import that stalls is cut at
/// `--admin-timeout`.
#[tokio::test]
async fn admin_bodies_have_limits_and_deadlines() {
    let f = fixture_with(|c| {
        c.body_read_timeout = std::time::Duration::from_millis(300);
        c.admin_timeout = std::time::Duration::from_millis(300);
    });
    let big = vec![b' '; kvserver::app::MAX_TOPOLOGY_BYTES + 1];
    let r = answered(&f.router, admin("PUT", "/v1/admin/topology", big.clone())).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")
    );
    let chunked = Body::from_stream(futures::stream::iter(
        big.chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    ));
    let r = answered(&f.router, admin("PUT", "/v1/admin/topology", chunked)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = answered(
        &f.router,
        admin("PUT", "/v1/admin/topology", stalled_body(b"{")),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::REQUEST_TIMEOUT, "bad_request")
    );
    let r = answered(
        &f.router,
        admin("POST", "/v1/admin/import", stalled_body(b"K")),
    )
    .await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.text());
    // A normal push still works.
    let r = answered(&f.router, push(&stable(1))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Issue 13 item 8: bodies were read inside the concurrency limit, so clients sending their body
/// slowly held every slot and all data requests answered 503. A body is now read whole before
/// the request takes a slot: with a single slot, a PUT whose body stalls leaves it free, and the
/// stalled PUT is answered 408 at `--body-read-timeout`.
#[tokio::test]
async fn a_slow_body_holds_no_concurrency_slot() {
    let f = fixture_with(|c| {
        c.max_concurrency = 1;
        c.body_read_timeout = std::time::Duration::from_secs(2);
    });
    send(&f.router, put("/v1/keys/a", b"1")).await;
    let router = f.router.clone();
    let slow = tokio::spawn(async move {
        let req = Request::put("/v1/keys/b").body(stalled_body(b"v")).unwrap();
        answered(&router, req).await
    });
    // Let the slow PUT get as far as it can (on the old code: into the slot).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for _ in 0..20 {
        let r = send(&f.router, get("/v1/keys/a")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let r = send(&f.router, get("/load/a")).await;
        assert_eq!(r.text(), "1");
        let r = send(&f.router, put("/v1/keys/c", b"3")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    }
    let r = slow.await.unwrap();
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::REQUEST_TIMEOUT, "bad_request")
    );
    assert_eq!(
        send(&f.router, get("/v1/keys/b")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Issue 13 item 9: bodies read ahead of the concurrency limit share a byte budget
/// (`--max-body-buffer-bytes`), so many large bodies at once are shed (503 `overloaded`) instead
/// of growing memory; the bytes come back when the request is answered.
#[tokio::test]
async fn bodies_read_ahead_share_a_byte_budget() {
    let f = fixture_with(|c| {
        c.max_value_bytes = 1000;
        c.max_body_buffer_bytes = 1000;
        c.body_read_timeout = std::time::Duration::from_secs(1);
    });
    let router = f.router.clone();
    let holder = tokio::spawn(async move {
        let req = Request::put("/v1/keys/big")
            .body(stalled_body(&[b'x'; 900]))
            .unwrap();
        answered(&router, req).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = send(&f.router, put("/v1/keys/b", &[b'y'; 200])).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    // Small bodies that fit beside it, and requests without a body, go through.
    let r = send(&f.router, put("/v1/keys/c", &[b'z'; 50])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(
        send(&f.router, get("/v1/keys/c")).await.status,
        StatusCode::OK
    );
    assert_eq!(holder.await.unwrap().status, StatusCode::REQUEST_TIMEOUT);
    let r = send(&f.router, put("/v1/keys/b", &[b'y'; 200])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
}
