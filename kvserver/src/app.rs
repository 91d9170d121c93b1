//! The routers: the data port (`app`) and the ops port (`ops_app`).
//!
//! The data port is built from route families, each with its own layers:
//! - book (`/save`, `/load`, `/allKeys`, plain-text errors) and `/v1/keys` (JSON errors): the
//!   data guard (draining, `--require-token-for-data`), then the body read whole (at most
//!   `--max-value-bytes`, within `--body-read-timeout`, from a shared byte budget), and only then
//!   load shedding, the concurrency limit and `--request-timeout`;
//! - `/v1/admin`: the admin token first (before any byte of a body is read), then
//!   `--admin-timeout`; a topology push's body is read under [`MAX_TOPOLOGY_BYTES`] and
//!   `--body-read-timeout`, an import's under `--max-import-bytes` (by its handler);
//! - `/v1/internal`: the peer (or admin) token, then `--request-timeout`;
//! - `/v1/info`, `/v1/topology` and the probes: open, under `--request-timeout`;
//! - `/v1/raft/*` (a replicated copy's Raft RPCs): the peer (or admin) token, no deadline.
//!
//! Around every answer of the data port: the topology headers (and on a replicated copy
//! `x-kv-leader`, and `Connection: close` while it drains) and request metrics. Streamed
//! answers (exports, `/allKeys`) are bounded by the socket's write-stall deadline (`listen`),
//! not by a whole-answer timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kvproto::wire::path::INTERNAL_KEYS_PREFIX;
use kvproto::wire::{ErrorBody, ErrorCode};
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

use crate::access::{DataGuardLayer, require_admin, require_peer};
use crate::body::ReadBodyLayer;
use crate::error::{Dialect, Error};
use crate::metrics::{RequestLabels, RouteLabels, method_label, route_label};
use crate::state::AppState;
use crate::{admin, book, header_names, ops, raft_admin, raft_rpc, replica, v1};

/// Largest topology push body: room for about 1,300 peers at the longest URL a pod name and
/// namespace allow (far more at usual lengths).
pub const MAX_TOPOLOGY_BYTES: usize = 256 * 1024;

/// The data port's router.
pub fn app(state: AppState) -> Router {
    // One limit and one body budget shared by both data families.
    let concurrency = GlobalConcurrencyLimitLayer::new(state.max_concurrency);
    let body_budget = Arc::new(Semaphore::new(
        state.max_body_buffer_bytes.min(Semaphore::MAX_PERMITS),
    ));
    let book = Router::new()
        // `get` alone would answer HEAD by running the handler: a HEAD must not write.
        .route("/save/{*rest}", get(book::save).head(method_not_allowed))
        .route("/load/{*rest}", get(book::load))
        .route("/allKeys", get(book::all_keys));
    let keys = Router::new().route("/v1/keys", get(v1::list_keys)).route(
        "/v1/keys/{*rest}",
        get(v1::get_key).put(v1::put_key).delete(v1::delete_key),
    );
    let topology_body =
        ReadBodyLayer::new(MAX_TOPOLOGY_BYTES, state.body_read_timeout, Dialect::Json);
    let admin = Router::new()
        .route(
            "/v1/admin/topology",
            put(admin::put_topology).layer(topology_body),
        )
        .route("/v1/admin/export", get(admin::export))
        .route("/v1/admin/export/count", get(admin::export_count))
        .route("/v1/admin/import", post(admin::import))
        .route("/v1/admin/cleanup", post(admin::cleanup))
        .route(kvproto::raft_admin::STATUS_PATH, get(raft_admin::status))
        .route(kvproto::raft_admin::INIT_PATH, post(raft_admin::init))
        .route(kvproto::raft_admin::JOIN_PATH, post(raft_admin::join))
        .route(
            kvproto::raft_admin::ADD_LEARNER_PATH,
            post(raft_admin::add_learner),
        )
        .route(kvproto::raft_admin::VOTERS_PATH, post(raft_admin::voters))
        .route(
            kvproto::raft_admin::TRANSFER_LEADER_PATH,
            post(raft_admin::transfer_leader),
        );
    // No deadline: a snapshot streams as long as it makes progress (kvraft's idle limit).
    let raft_rpc = Router::new()
        .route(raft_rpc::RPC_ROUTES, post(raft_rpc::dispatch))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_peer));
    let internal = Router::new().route(
        &format!("{INTERNAL_KEYS_PREFIX}{{*rest}}"),
        get(admin::internal_get),
    );
    let open = Router::new()
        .route("/v1/info", get(v1::info))
        .route("/v1/topology", get(v1::topology))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    let data = |routes, dialect| data_family(routes, dialect, &state, &concurrency, &body_budget);
    Router::new()
        .merge(data(book, Dialect::Book))
        .merge(data(keys, Dialect::Json))
        .merge(behind_admin_token(
            with_deadline(admin, state.admin_timeout),
            &state,
        ))
        .merge(
            with_deadline(internal, state.request_timeout)
                .route_layer(middleware::from_fn_with_state(state.clone(), require_peer)),
        )
        .merge(with_deadline(open, state.request_timeout))
        .merge(raft_rpc)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            with_topology_headers,
        ))
        .with_state(state)
}

/// A data family's layers: the data guard first, then the body read whole (so a slow body holds
/// no slot), then load shedding, the concurrency limit and the timeout. A wrong method gets the
/// guard too, but not the limits.
fn data_family(
    routes: Router<AppState>,
    dialect: Dialect,
    state: &AppState,
    concurrency: &GlobalConcurrencyLimitLayer,
    body_budget: &Arc<Semaphore>,
) -> Router<AppState> {
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |method: Method, uri: Uri, err: BoxError| async move {
                dialect.render(limit_error(&err, writes(&method, &uri)))
            },
        ))
        .load_shed()
        .layer(concurrency.clone())
        .timeout(state.request_timeout);
    let read_body = ReadBodyLayer::new(state.max_value_bytes, state.body_read_timeout, dialect)
        .with_budget(body_budget.clone());
    routes
        .layer(limits)
        .layer(read_body)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DataGuardLayer::new(state.clone(), dialect))
}

/// The admin token, checked on a matched route before anything else runs (no body is read for a
/// request that lacks it).
fn behind_admin_token(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes.route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
}

/// Answers `timeout` when a matched route has not answered within `after` (a streamed body goes
/// on past it: the head has been answered).
fn with_deadline(routes: Router<AppState>, after: Duration) -> Router<AppState> {
    routes.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(
                |method: Method, uri: Uri, err: BoxError| async move {
                    limit_error(&err, writes(&method, &uri)).into_response()
                },
            ))
            .timeout(after),
    )
}

/// The ops port's router: probes and metrics. Draining starts on SIGTERM only: there is no
/// HTTP route for it (any pod could have taken a shard offline with one request).
pub fn ops_app(state: AppState) -> Router {
    let probes = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    with_deadline(probes, state.request_timeout)
        .fallback(route_not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state)
}

/// Around every data-port answer (one middleware, as it runs on the hot path): the topology
/// headers, and the request counted and timed.
async fn with_topology_headers(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = counted(&state, req, next).await;
    let topology = state.topology();
    let headers = resp.headers_mut();
    headers.insert(
        header_names::EPOCH.clone(),
        HeaderValue::from(topology.as_ref().map_or(0, |t| t.epoch)),
    );
    if let Some(t) = topology {
        headers.insert(
            header_names::ROUTING_SHARDS.clone(),
            HeaderValue::from(t.routing_shards()),
        );
    }
    // A replicated copy names its shard's leader on every answer (clients go there next).
    if let Some(leader) = replica::leader_pod(&state) {
        headers.insert(header_names::LEADER.clone(), leader);
    }
    // A draining copy still forwards, but keeps no connection: a client's next request opens a
    // new one (to the leader it was just told of), so none is sent on a kept-alive connection
    // the listener's close cuts under it (an answer lost, for a conditional write final).
    if state.is_draining() && state.raft.running().is_some() {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Around every ops-port answer: the request counted and timed.
async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    counted(&state, req, next).await
}

/// Runs the request, then counts it and records its latency by route, method and status.
async fn counted(state: &AppState, req: Request, next: Next) -> Response {
    let route = route_label(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Whether a request writes (a key, a topology, an import, a cleanup): a timed-out write may
/// have been applied.
fn writes(method: &Method, uri: &Uri) -> bool {
    matches!(*method, Method::PUT | Method::DELETE | Method::POST)
        || uri.path().starts_with("/save/")
}

fn limit_error(err: &BoxError, write: bool) -> Error {
    if err.is::<tower::timeout::error::Elapsed>() && write {
        // The handler was dropped mid-way: the record may be in the store already.
        Error::OutcomeUnknown
    } else if err.is::<tower::timeout::error::Elapsed>() {
        Error::Timeout
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        Error::Overloaded
    } else {
        Error::BadRequest(err.to_string())
    }
}

async fn route_not_found(uri: Uri) -> Response {
    Error::RouteNotFound(uri.path().to_owned()).into_response()
}

async fn method_not_allowed(req: Request<Body>) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: ErrorCode::RouteNotFound,
            message: format!("{} is not allowed on {}", req.method(), req.uri().path()),
        }),
    )
        .into_response()
}
