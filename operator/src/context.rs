//! What every reconcile shares: the Kubernetes client, the Event recorder, metrics, settings,
//! the shard admin client, and the per-object error backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::labels::MANAGER;
use crate::metrics::Metrics;
use crate::shards::DynShardAdmin;

/// Settings of the reconcile loop.
#[derive(Debug, Clone)]
pub struct Config {
    /// Requeue after a successful reconcile (watches trigger the rest).
    pub requeue: Duration,
    /// First retry delay after a transient error; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            requeue: Duration::from_secs(300),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    pub shards: Arc<dyn DynShardAdmin>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context whose Events are reported as `kvstore-operator` from `instance` (the pod name).
    pub fn new(
        client: Client,
        instance: Option<String>,
        metrics: Arc<Metrics>,
        config: Config,
        shards: Arc<dyn DynShardAdmin>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_owned(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            shards,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more consecutive failure.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.config
            .backoff_base
            .saturating_mul(factor)
            .min(self.config.backoff_max)
    }

    /// Forgets `key`'s failures after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }
}
