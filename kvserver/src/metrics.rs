//! Prometheus metrics: requests by route and status, latency, keys, bytes, forwards and
//! read-throughs. Served on both ports at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    pub shard: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub forwards: Family<ShardLabels, Counter>,
    pub read_throughs: Family<ResultLabels, Counter>,
    pub keys: Gauge,
    pub bytes: Gauge,
    pub epoch: Gauge,
    pub draining: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kvserver");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~1.6 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        let forwards = Family::<ShardLabels, Counter>::default();
        let read_throughs = Family::<ResultLabels, Counter>::default();
        let (keys, bytes, epoch, draining) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head, by route",
            latency.clone(),
        );
        registry.register(
            "forwards",
            "Requests forwarded to the owning shard",
            forwards.clone(),
        );
        registry.register(
            "read_throughs",
            "Local misses read through to the previous owner, by result",
            read_throughs.clone(),
        );
        registry.register("keys", "Live keys stored on this server", keys.clone());
        registry.register(
            "value_bytes",
            "Bytes of live values stored on this server",
            bytes.clone(),
        );
        registry.register(
            "topology_epoch",
            "Epoch of the topology served",
            epoch.clone(),
        );
        registry.register("draining", "1 while the server drains", draining.clone());
        Metrics {
            registry,
            requests,
            latency,
            forwards,
            read_throughs,
            keys,
            bytes,
            epoch,
            draining,
        }
    }
}

impl Metrics {
    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// A fixed label for a matched route pattern, so label values stay few and allocation-free.
pub fn route_label(matched: Option<&str>) -> &'static str {
    match matched {
        Some("/save/{*rest}") => "/save",
        Some("/load/{*rest}") => "/load",
        Some("/allKeys") => "/allKeys",
        Some("/v1/keys") => "/v1/keys",
        Some("/v1/keys/{*rest}") => "/v1/keys/{key}",
        Some("/v1/info") => "/v1/info",
        Some("/v1/topology") => "/v1/topology",
        Some("/v1/admin/topology") => "/v1/admin/topology",
        Some("/v1/admin/export") => "/v1/admin/export",
        Some("/v1/admin/import") => "/v1/admin/import",
        Some("/v1/admin/cleanup") => "/v1/admin/cleanup",
        Some("/v1/internal/keys/{*rest}") => "/v1/internal/keys/{key}",
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        Some("/metrics") => "/metrics",
        Some("/drain") => "/drain",
        Some(_) => "other",
        None => "unmatched",
    }
}

pub fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::POST => "POST",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    }
}
