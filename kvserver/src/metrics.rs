//! Prometheus metrics: requests by route and status, latency, keys, bytes, forwards and
//! read-throughs, and on a copy running a Raft group its term, leadership, indexes and lag
//! ([`RaftGauges`], absent otherwise). Served on both ports at `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

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
    pub raft: Arc<RaftGauges>,
}

/// The group's gauges, reported only once a group runs here (a factor-1 server's metrics stay
/// as they were): `kvserver_raft_{term,leader,commit_index,applied_index,lag}`, and
/// `kvserver_leader_forwards_total`.
#[derive(Debug, Default)]
pub struct RaftGauges {
    running: AtomicBool,
    /// Requests this copy sent on to its shard's leader.
    leader_forwards: AtomicU64,
    term: AtomicI64,
    leader: AtomicI64,
    commit_index: AtomicI64,
    applied_index: AtomicI64,
    lag: AtomicI64,
}

/// One reading of the group, for [`RaftGauges::set`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RaftReading {
    pub term: u64,
    pub leader: bool,
    pub commit_index: u64,
    pub applied_index: u64,
    /// On the leader, the largest lag of a member; 0 elsewhere.
    pub lag: u64,
}

impl RaftGauges {
    pub fn forwarded_to_leader(&self) {
        self.leader_forwards.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(&self, r: RaftReading) {
        let v = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.term.store(v(r.term), Ordering::Relaxed);
        self.leader.store(i64::from(r.leader), Ordering::Relaxed);
        self.commit_index
            .store(v(r.commit_index), Ordering::Relaxed);
        self.applied_index
            .store(v(r.applied_index), Ordering::Relaxed);
        self.lag.store(v(r.lag), Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }
}

impl Collector for RaftGauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if !self.running.load(Ordering::Acquire) {
            return Ok(());
        }
        let gauges: [(&str, &str, &AtomicI64); 5] = [
            ("raft_term", "Raft term this copy is in", &self.term),
            (
                "raft_leader",
                "1 while this copy leads its shard's group",
                &self.leader,
            ),
            (
                "raft_commit_index",
                "Last log index this copy knows committed",
                &self.commit_index,
            ),
            (
                "raft_applied_index",
                "Last log index this copy applied",
                &self.applied_index,
            ),
            (
                "raft_lag",
                "On the leader: entries the furthest-behind member lacks (0 elsewhere)",
                &self.lag,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let forwards = ConstCounter::new(self.leader_forwards.load(Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "leader_forwards",
            "Requests this copy sent on to its shard's leader",
            None,
            forwards.metric_type(),
        )?;
        forwards.encode(metric)?;
        Ok(())
    }
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
        let raft = Arc::new(RaftGauges::default());
        registry.register_collector(Box::new(raft.clone()));
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
            raft,
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
        Some("/v1/admin/raft/status") => "/v1/admin/raft/status",
        Some("/v1/admin/raft/init") => "/v1/admin/raft/init",
        Some("/v1/admin/raft/add-learner") => "/v1/admin/raft/add-learner",
        Some("/v1/admin/raft/voters") => "/v1/admin/raft/voters",
        Some("/v1/admin/raft/transfer-leader") => "/v1/admin/raft/transfer-leader",
        Some("/v1/raft/{*rest}") => "/v1/raft",
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
