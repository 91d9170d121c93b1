//! The routers: the data port (`app`) and the ops port (`ops_app`), with their middleware:
//! timeouts and load shedding on data routes, the drain and token guard, the topology headers
//! on every answer, and request metrics.

use std::time::Instant;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kvproto::wire::path::INTERNAL_KEYS_PREFIX;
use kvproto::wire::{ErrorBody, ErrorCode, header as kvh};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

use crate::error::Error;
use crate::metrics::{RequestLabels, RouteLabels, method_label, route_label};
use crate::state::AppState;
use crate::{admin, book, ops, v1};

/// The data port's router.
pub fn app(
    state: AppState,
    request_timeout: std::time::Duration,
    max_concurrency: usize,
) -> Router {
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(limit_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(max_concurrency))
        .timeout(request_timeout);
    let data = Router::new()
        .route("/save/{*rest}", get(book::save))
        .route("/load/{*rest}", get(book::load))
        .route("/allKeys", get(book::all_keys))
        .route("/v1/keys", get(v1::list_keys))
        .route(
            "/v1/keys/{*rest}",
            get(v1::get_key).put(v1::put_key).delete(v1::delete_key),
        )
        .layer(limits);
    let rest = Router::new()
        .route("/v1/info", get(v1::info))
        .route("/v1/topology", get(v1::topology))
        .route("/v1/admin/topology", put(admin::put_topology))
        .route("/v1/admin/export", get(admin::export))
        .route("/v1/admin/export/count", get(admin::export_count))
        .route("/v1/admin/import", post(admin::import))
        .route("/v1/admin/cleanup", post(admin::cleanup))
        .route(
            &format!("{INTERNAL_KEYS_PREFIX}{{*rest}}"),
            get(admin::internal_get),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    data.merge(rest)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), around))
        .with_state(state)
}

/// The ops port's router: probes, metrics and the preStop drain hook.
pub fn ops_app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/drain", get(ops::drain))
        .fallback(route_not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state)
}

fn is_book_path(path: &str) -> bool {
    path.starts_with("/save/") || path.starts_with("/load/") || path == "/allKeys"
}

/// Renders an error the way the route's family does: plain text on book routes, JSON elsewhere.
fn render(path: &str, error: Error) -> Response {
    if is_book_path(path) {
        error.into_book_response()
    } else {
        error.into_response()
    }
}

fn is_data_path(path: &str) -> bool {
    is_book_path(path) || path == "/v1/keys" || path.starts_with("/v1/keys/")
}

/// Around every data-port request (one middleware, as it runs on the hot path): data routes
/// answer 503 while draining and want the token under `--require-token-for-data`; every answer
/// carries the topology headers; every request is counted and timed.
async fn around(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let method = method_label(req.method());
    let start = Instant::now();
    let path = req.uri().path();
    let mut resp = if !is_data_path(path) {
        next.run(req).await
    } else if state.is_draining() {
        render(path, Error::Draining)
    } else if state.require_token_for_data && !state.token.authorizes(req.headers()) {
        render(
            path,
            Error::Unauthorized(
                "this server requires `Authorization: Bearer <token>` on data routes",
            ),
        )
    } else {
        next.run(req).await
    };
    let topology = state.topology();
    let headers = resp.headers_mut();
    headers.insert(
        kvh::EPOCH,
        HeaderValue::from(topology.as_ref().map_or(0, |t| t.epoch)),
    );
    if let Some(t) = topology {
        headers.insert(kvh::ROUTING_SHARDS, HeaderValue::from(t.routing_shards()));
    }
    observe(&state, route, method, start, resp.status());
    resp
}

fn observe(
    state: &AppState,
    route: &'static str,
    method: &'static str,
    start: Instant,
    status: StatusCode,
) {
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: status.as_u16(),
        })
        .inc();
}

async fn limit_error(uri: Uri, err: BoxError) -> Response {
    let error = if err.is::<tower::timeout::error::Elapsed>() {
        Error::Timeout
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        Error::Overloaded
    } else {
        Error::BadRequest(err.to_string())
    };
    render(uri.path(), error)
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    observe(&state, route, method, start, resp.status());
    resp
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
