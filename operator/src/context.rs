//! What every reconcile shares: the Kubernetes client, the Event recorder, metrics, settings,
//! the shard admin client, and the per-object error backoff.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// How long a shard may fail to answer during a move before the store is Degraded: a pod
    /// that has just become Ready may not resolve or accept yet, and a healthy scale must not
    /// page anyone. Until then the move retries every 2 s and its message says why.
    pub unreachable_grace: Duration,
    /// How many replicated stores may roll their pods at once (a roll under way always goes
    /// on, also after a restart).
    pub max_concurrent_rolls: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            requeue: Duration::from_secs(300),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            unreachable_grace: Duration::from_secs(30),
            max_concurrent_rolls: 1,
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
    /// Since when each store's move has found a shard unreachable, without a step done since.
    unreachable_since: Mutex<HashMap<String, Instant>>,
    /// The stores rolling their pods now.
    rolling: Mutex<BTreeSet<String>>,
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
            unreachable_since: Mutex::new(HashMap::new()),
            rolling: Mutex::new(BTreeSet::new()),
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

    /// How long `key`'s move has found shards unreachable (zero at the first failure).
    pub fn unreachable_for(&self, key: &str) -> Duration {
        let mut since = self
            .unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        since
            .entry(key.to_owned())
            .or_insert_with(Instant::now)
            .elapsed()
    }

    /// `key`'s move got a step done: every shard it needed answered.
    pub fn shards_answered(&self, key: &str) {
        let mut since = self
            .unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        since.remove(key);
    }

    /// May `key` roll its pods now? Yes when it rolls already, when `resuming` (its status
    /// says a roll is under way: a restarted operator finishes it), or while fewer than
    /// `max_concurrent_rolls` stores roll; it then counts as rolling until [`Context::roll_done`].
    pub fn may_roll(&self, key: &str, resuming: bool) -> bool {
        let mut rolling = self.rolling.lock().unwrap_or_else(|e| e.into_inner());
        admit(
            &mut rolling,
            key,
            resuming,
            self.config.max_concurrent_rolls,
        )
    }

    /// `key` rolls no more (done, or deleted).
    pub fn roll_done(&self, key: &str) {
        let mut rolling = self.rolling.lock().unwrap_or_else(|e| e.into_inner());
        rolling.remove(key);
    }
}

/// [`Context::may_roll`] on the set of rolling stores.
fn admit(rolling: &mut BTreeSet<String>, key: &str, resuming: bool, max: usize) -> bool {
    if rolling.contains(key) {
        return true;
    }
    if resuming || rolling.len() < max {
        rolling.insert(key.to_owned());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_stores_start_a_roll_and_one_under_way_always_goes_on() {
        let mut rolling = BTreeSet::new();
        assert!(admit(&mut rolling, "ns/a", false, 1));
        assert!(
            admit(&mut rolling, "ns/a", false, 1),
            "a store rolling goes on"
        );
        assert!(
            !admit(&mut rolling, "ns/b", false, 1),
            "one store at a time"
        );
        assert!(
            admit(&mut rolling, "ns/c", true, 1),
            "a persisted roll resumes"
        );
        rolling.remove("ns/a");
        rolling.remove("ns/c");
        assert!(admit(&mut rolling, "ns/b", false, 1));
        assert!(admit(&mut rolling, "ns/d", false, 2));
    }
}
