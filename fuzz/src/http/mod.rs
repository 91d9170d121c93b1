//! Raw HTTP requests through the real kvserver router (`tower::ServiceExt::oneshot`).
//!
//! Invariants: no panic; no 5xx but 507 (disk full); every 4xx/5xx under `/v1` has a
//! JSON `{error, message}` body with a known code; every answer carries the topology epoch (0:
//! the fuzzer cannot push a topology); what a successful write or delete did reads back; and a
//! PUT gives its key a version above the one it had.

pub mod request;
pub mod server;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use kvproto::wire::{ErrorBody, header as kvh};
use tower::ServiceExt;

/// Largest answer read back: well above any value the server is configured to hold.
const MAX_ANSWER_BYTES: usize = 1 << 20;

pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<Vec<u8>>,
    pub epoch: Option<Vec<u8>>,
    pub body: Bytes,
}

pub fn check(data: &[u8]) {
    let requests = request::parse_all(data);
    if requests.is_empty() {
        return;
    }
    let server = server::get();
    server.runtime.block_on(async {
        for request in requests {
            exchange(&server.router, request).await;
        }
    });
}

async fn exchange(router: &Router, request: Request<Bytes>) {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let path = uri.path();
    let sent = request.body().clone();
    // Only PUT: a DELETE outside a migration answers the version it removed, by design.
    let key_put = (method == Method::PUT)
        .then(|| path.strip_prefix("/v1/keys/"))
        .flatten();
    let before = match key_put {
        Some(key_part) => version_of(router, key_part).await,
        None => None,
    };
    let answer = send(router, request.map(Body::from)).await;
    let what = format!("{method} {uri} -> {}", answer.status);
    let error = error_body(&answer);

    assert_eq!(
        answer.epoch.as_deref(),
        Some(&b"0"[..]),
        "{what}: no x-kv-epoch: 0 header"
    );
    // This server has no peers, is never drained and gets one request at a time on a healthy
    // temp dir: a 5xx is owed to the input, not to the surroundings. Only a full disk is real.
    if answer.status.is_server_error() {
        assert!(
            answer.status == StatusCode::INSUFFICIENT_STORAGE,
            "{what}: a 5xx the input caused: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // HEAD answers carry no body by definition.
    let under_v1 = path == "/v1" || path.starts_with("/v1/");
    if under_v1 && method != Method::HEAD && is_error(answer.status) {
        assert!(
            error.is_some(),
            "{what}: error without a JSON {{error, message}} body: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
    }

    // Every acknowledged write takes a version above the one it replaced (the bulk decoder
    // refuses imported versions near u64::MAX, which once saturated the clock: fuzz/README.md).
    if answer.status == StatusCode::NO_CONTENT
        && let Some(before) = before
    {
        let after = answer.etag.as_deref().and_then(parse_etag);
        assert!(
            after.is_some_and(|v| v > before),
            "{what}: the key was at version {before} and the write answered ETag {:?}",
            answer.etag.as_deref().map(String::from_utf8_lossy)
        );
    }
    if answer.status == StatusCode::NO_CONTENT
        && method == Method::PUT
        && let Some(key_part) = path.strip_prefix("/v1/keys/")
    {
        read_back_v1(router, key_part, &sent, &answer, &what).await;
    }
    if answer.status == StatusCode::NO_CONTENT
        && method == Method::DELETE
        && let Some(key_part) = path.strip_prefix("/v1/keys/")
    {
        let back = send(router, get(&format!("/v1/keys/{key_part}"))).await;
        assert_eq!(
            back.status,
            StatusCode::NOT_FOUND,
            "{what}: then GET answered {}",
            back.status
        );
    }
    if answer.status == StatusCode::OK
        && method == Method::GET
        && let Some(rest) = path.strip_prefix("/save/")
    {
        read_back_book(router, rest, &answer, &what).await;
    }
}

/// A 204 PUT stored the body: GET of the same key answers it, with the same version.
async fn read_back_v1(router: &Router, key_part: &str, sent: &Bytes, put: &Answer, what: &str) {
    let back = send(router, get(&format!("/v1/keys/{key_part}"))).await;
    assert_eq!(
        back.status,
        StatusCode::OK,
        "{what}: then GET answered {}",
        back.status
    );
    assert_eq!(
        &back.body, sent,
        "{what}: GET answered other bytes than were put"
    );
    assert_eq!(back.etag, put.etag, "{what}: the ETag changed on read");
}

/// A 200 save answered the value it stored: load of the same key answers the same bytes.
async fn read_back_book(router: &Router, rest: &str, saved: &Answer, what: &str) {
    let Some((key_part, _)) = rest.split_once('/') else {
        panic!("{what}: a save without a value segment succeeded");
    };
    let back = send(router, get(&format!("/load/{key_part}"))).await;
    assert_eq!(
        back.status,
        StatusCode::OK,
        "{what}: then load answered {}",
        back.status
    );
    assert_eq!(
        back.body, saved.body,
        "{what}: load answered other bytes than save"
    );
}

/// The key's current version, when it has a value.
async fn version_of(router: &Router, key_part: &str) -> Option<u64> {
    let now = send(router, get(&format!("/v1/keys/{key_part}"))).await;
    (now.status == StatusCode::OK)
        .then(|| now.etag.as_deref().and_then(parse_etag))
        .flatten()
}

/// `"42"` → 42.
fn parse_etag(etag: &[u8]) -> Option<u64> {
    std::str::from_utf8(etag.strip_prefix(b"\"")?.strip_suffix(b"\"")?)
        .ok()?
        .parse()
        .ok()
}

pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let etag = response
        .headers()
        .get(header::ETAG)
        .map(|v| v.as_bytes().to_vec());
    let epoch = response
        .headers()
        .get(kvh::EPOCH)
        .map(|v| v.as_bytes().to_vec());
    let body = match http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => panic!("{status} answer body failed: {e}"),
    };
    Answer {
        status,
        etag,
        epoch,
        body,
    }
}

fn get(uri: &str) -> Request<Body> {
    match Request::get(uri).body(Body::empty()) {
        Ok(request) => request,
        Err(e) => panic!("a path the router just served is no longer a valid URI: {uri}: {e}"),
    }
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn error_body(answer: &Answer) -> Option<ErrorBody> {
    serde_json::from_slice(&answer.body).ok()
}
