//! Raw HTTP requests through the real kvserver routers (`tower::ServiceExt::oneshot`), each to
//! one of four servers (`server::Kind`: no topology, a stable and a migrating topology with a
//! peer, `--require-topology` before its first map).
//!
//! Invariants: no panic; no 5xx but the documented ones where this setup allows them (507
//! anywhere; 503 `misdirected` on the awaiting server's data routes; 503 `peer_unavailable` or
//! 508 `loop_detected` only where a topology names a peer, 508 only for a forwarded request at
//! the hop limit; 504 only as `outcome_unknown`); every 4xx/5xx under `/v1` has a JSON `{error,
//! message}` body with a known code; every answer carries its server's epoch; an admin route
//! answers 401 exactly when the request lacks an accepted token (either line of the token
//! file); a request with a forwarding header but no accepted token is never served, forwarded
//! or counted toward the hop limit; an import or cleanup succeeds only with the fence of its
//! server's move step (none on a server without a topology); a refused request (4xx, 503,
//! 507, 508) and a read changes nothing in the store (its export is byte for byte the same);
//! what a successful write or delete did reads back; a PUT gives its key a version above the
//! one it had.

pub mod request;
pub mod server;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use kvproto::topology::MAX_HOPS;
use kvproto::wire::{ErrorBody, ErrorCode, header as kvh};
use percent_encoding::percent_decode_str;
use tower::ServiceExt;

use server::{COPY_EPOCH, Kind, STABLE_EPOCH, TOKEN, TOKENS};

/// Largest answer read back: well above any value the server is configured to hold.
const MAX_ANSWER_BYTES: usize = 1 << 20;

pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<Vec<u8>>,
    pub epoch: Option<Vec<u8>>,
    pub body: Bytes,
}

pub fn check(data: &[u8]) {
    let sent = request::parse_all(data);
    if sent.is_empty() {
        return;
    }
    let servers = server::get();
    servers.runtime.block_on(async {
        for s in sent {
            exchange(servers.router(s.server), s.server, s.request).await;
        }
    });
}

async fn exchange(router: &Router, kind: Kind, request: Request<Bytes>) {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let path = uri.path();
    let headers = request.headers().clone();
    let sent = request.body().clone();
    // Only PUT: a DELETE outside a migration answers the version it removed, by design.
    let key_put = (method == Method::PUT)
        .then(|| path.strip_prefix("/v1/keys/"))
        .flatten();
    let before = match key_put {
        Some(key_part) => version_of(router, key_part).await,
        None => None,
    };
    let store_before = snapshot(router).await;
    let answer = send(router, request.map(Body::from)).await;
    let what = format!("{} {method} {uri} -> {}", kind.name(), answer.status);
    let error = error_body(&answer);
    let code = error.as_ref().map(|e| e.error);
    let authorized = authorized(&headers);
    if trace() {
        eprintln!("{what} {code:?}");
    }

    assert_eq!(
        answer.epoch.as_deref(),
        Some(kind.epoch().to_string().as_bytes()),
        "{what}: not the server's x-kv-epoch"
    );
    if answer.status.is_server_error() {
        assert!(
            allowed_server_error(kind, &method, path, &headers, answer.status, code),
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
    check_access(&what, path, &headers, authorized, &answer);
    check_fence(&what, kind, &method, &uri, &answer);

    // A refusal, or a read, leaves the store as it was (504: the outcome is unknown).
    let refused = answer.status.is_client_error()
        || (answer.status.is_server_error() && answer.status != StatusCode::GATEWAY_TIMEOUT);
    let reads = (method == Method::GET || method == Method::HEAD) && !path.starts_with("/save/");
    if refused || reads {
        let store_after = snapshot(router).await;
        assert!(
            store_after == store_before,
            "{what}: a refused request or a read changed the store ({} bytes of export before, \
             {} after)",
            store_before.len(),
            store_after.len()
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

/// The 5xx this setup can give without a bug: the servers run on a healthy temp dir, one
/// request at a time, never drain, and their only peer is a closed loopback port.
fn allowed_server_error(
    kind: Kind,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    status: StatusCode,
    code: Option<ErrorCode>,
) -> bool {
    // Book routes answer plain text: no code to check there.
    let code_is = |want: &[ErrorCode]| code.is_none_or(|c| want.contains(&c));
    match status {
        StatusCode::INSUFFICIENT_STORAGE => code_is(&[ErrorCode::StorageFull]),
        StatusCode::SERVICE_UNAVAILABLE => match kind {
            Kind::Plain => false,
            Kind::Awaiting => is_data_route(path) && code_is(&[ErrorCode::Misdirected]),
            Kind::Stable | Kind::Copy => {
                code_is(&[ErrorCode::PeerUnavailable, ErrorCode::Misdirected])
            }
        },
        StatusCode::LOOP_DETECTED => {
            kind.has_peers()
                && authorized(headers)
                && hops(headers).is_some_and(|h| h >= u64::from(MAX_HOPS))
                && code_is(&[ErrorCode::LoopDetected])
        }
        StatusCode::GATEWAY_TIMEOUT => {
            matches!(*method, Method::PUT | Method::POST | Method::DELETE)
                && code_is(&[ErrorCode::OutcomeUnknown])
        }
        _ => false,
    }
}

/// The admin token decides admin routes both ways; a forwarded request without it is refused
/// before it is served, forwarded or counted.
fn check_access(what: &str, path: &str, headers: &HeaderMap, authorized: bool, answer: &Answer) {
    let status = answer.status;
    let admin = path.starts_with("/v1/admin/") || path.starts_with("/v1/internal/");
    // 404/405: no route matched, so no token was asked for.
    if admin && status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
        assert_eq!(
            status == StatusCode::UNAUTHORIZED,
            !authorized,
            "{what}: an admin route's answer does not follow the token (accepted: {authorized})"
        );
    }
    let forwarding = kvh::FORWARDING.iter().any(|h| headers.contains_key(*h));
    if forwarding && !authorized && is_key_route(path) {
        let code = error_body(answer).map(|e| e.error);
        assert!(
            !status.is_success()
                && status != StatusCode::LOOP_DETECTED
                && code != Some(ErrorCode::PeerUnavailable),
            "{what}: a forwarded request without an accepted token was served, forwarded or \
             counted: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

/// An import or cleanup is applied only under the fence of its server's move step.
fn check_fence(what: &str, kind: Kind, method: &Method, uri: &Uri, answer: &Answer) {
    let import = uri.path() == "/v1/admin/import";
    let cleanup = uri.path() == "/v1/admin/cleanup";
    if !answer.status.is_success() || *method != Method::POST || !(import || cleanup) {
        return;
    }
    let epoch = query_param(uri, "epoch").map(|e| e.parse::<u64>());
    let phase = query_param(uri, "phase");
    let fenced_at = |e: u64, p: &str| {
        epoch.as_ref().is_some_and(|x| x.as_ref() == Ok(&e)) && phase.as_deref() == Some(p)
    };
    let admitted = match kind {
        Kind::Plain | Kind::Awaiting => epoch.is_none() && phase.is_none(),
        Kind::Stable => fenced_at(STABLE_EPOCH, "stable"),
        Kind::Copy => import && fenced_at(COPY_EPOCH, "copy"),
    };
    assert!(
        admitted,
        "{what}: applied without the fence of this server's step: {:?}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// The first value of `name` in the query string, form-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether the request carries `Authorization: Bearer <t>` for a token of the file (as
/// `kvserver::auth` reads it: the first such header, surrounding blanks ignored).
fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|t| TOKENS.contains(&t))
}

fn hops(headers: &HeaderMap) -> Option<u64> {
    headers.get(kvh::HOPS)?.to_str().ok()?.trim().parse().ok()
}

/// The families `--require-topology` holds back: book routes and `/v1/keys`.
fn is_data_route(path: &str) -> bool {
    path == "/allKeys" || path == "/v1/keys" || is_key_route(path)
}

/// Routes that serve one key, and so route it (and read the forwarding headers).
fn is_key_route(path: &str) -> bool {
    ["/save/", "/load/", "/v1/keys/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// `FUZZ_TRACE=1` prints each exchange (status and error code), to see what seeds reach.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// Every record the server holds (tombstones and versions included), as its export.
async fn snapshot(router: &Router) -> Bytes {
    let request = match Request::get("/v1/admin/export?scope=all")
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
    {
        Ok(r) => r,
        Err(e) => panic!("cannot build the export request: {e}"),
    };
    let answer = send(router, request).await;
    assert_eq!(answer.status, StatusCode::OK, "the harness's export failed");
    answer.body
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
