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

/// The operator's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
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
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
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
}
