//! Prometheus metrics of the reconcile loop, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Category;

/// Label of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    category: &'static str,
}

/// Label of the rebalance failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// The operator's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    keys_moved: Counter,
    bytes_moved: Counter,
    rebalance_duration: Histogram,
    rebalance_failures: Family<PhaseLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kvstore_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        // 1 ms .. ~16 s: a reconcile is a handful of API calls plus one push per shard.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            duration.clone(),
        );
        let keys_moved = Counter::default();
        let bytes_moved = Counter::default();
        // 1 s .. ~9 h: a move of a few keys up to one of millions.
        let rebalance_duration = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        let rebalance_failures = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "rebalance_keys_moved",
            "Records copied to their new owner by rebalances",
            keys_moved.clone(),
        );
        registry.register(
            "rebalance_bytes_moved",
            "Key and value bytes copied by rebalances",
            bytes_moved.clone(),
        );
        registry.register(
            "rebalance_duration_seconds",
            "Duration of completed rebalances, from start to the last phase",
            rebalance_duration.clone(),
        );
        registry.register(
            "rebalance_failures",
            "Rebalance steps that failed and will be retried, by phase",
            rebalance_failures.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            keys_moved,
            bytes_moved,
            rebalance_duration,
            rebalance_failures,
        }
    }
}

impl Metrics {
    /// Records one reconcile, failed or not.
    pub fn observe(&self, elapsed: Duration, failure: Option<Category>) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(category) = failure {
            self.errors
                .get_or_create(&ErrorLabels {
                    category: category.as_str(),
                })
                .inc();
        }
    }

    /// Records copied by a rebalance step.
    pub fn moved(&self, keys: u64, bytes: u64) {
        self.keys_moved.inc_by(keys);
        self.bytes_moved.inc_by(bytes);
    }

    /// A rebalance that completed after `elapsed`.
    pub fn rebalance_done(&self, elapsed: Duration) {
        self.rebalance_duration.observe(elapsed.as_secs_f64());
    }

    /// A rebalance step that failed in `phase`.
    pub fn rebalance_failed(&self, phase: &'static str) {
        self.rebalance_failures
            .get_or_create(&PhaseLabels { phase })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciles_and_errors_by_category() {
        let m = Metrics::default();
        m.observe(Duration::from_millis(3), None);
        m.observe(Duration::from_millis(5), Some(Category::Shard));
        let text = m.render().unwrap();
        assert!(
            text.contains("kvstore_operator_reconciles_total 2"),
            "{text}"
        );
        assert!(
            text.contains(r#"kvstore_operator_reconcile_errors_total{category="ShardError"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("kvstore_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
    }

    #[test]
    fn counts_moved_keys_and_rebalance_failures_by_phase() {
        let m = Metrics::default();
        m.moved(1000, 64_000);
        m.moved(5, 320);
        m.rebalance_failed("Copy");
        m.rebalance_done(Duration::from_secs(12));
        let text = m.render().unwrap();
        assert!(
            text.contains("kvstore_operator_rebalance_keys_moved_total 1005"),
            "{text}"
        );
        assert!(
            text.contains("kvstore_operator_rebalance_bytes_moved_total 64320"),
            "{text}"
        );
        assert!(
            text.contains(r#"kvstore_operator_rebalance_failures_total{phase="Copy"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("kvstore_operator_rebalance_duration_seconds_count 1"),
            "{text}"
        );
    }
}
