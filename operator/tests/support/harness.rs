//! The one reconcile harness: the scripted API server and the fake shards behind a Context,
//! and what the tests read back from the calls the reconcile made.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::Action;
use operator::context::{Config, Context};
use operator::controller::{FINALIZER, reconcile};
use operator::metrics::Metrics;
use operator::status::KVStoreStatus;
use operator::{KVStore, KVStoreSpec};

use super::shards::FakeShards;
use super::{Call, World};

pub struct Harness {
    pub world: Arc<Mutex<World>>,
    pub shards: Arc<FakeShards>,
    pub ctx: Arc<Context>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// A harness whose shard failures take their full effect at once (no unreachable grace).
    pub fn new(world: World, shards: FakeShards) -> Self {
        let config = Config {
            unreachable_grace: Duration::ZERO,
            ..Config::default()
        };
        Harness::with_config(world, shards, config)
    }

    pub fn with_config(world: World, shards: FakeShards, config: Config) -> Self {
        let world = Arc::new(Mutex::new(world));
        let (client, server) = super::client(world.clone());
        let shards = Arc::new(shards);
        let ctx = Arc::new(Context::new(
            client,
            Some("test".into()),
            Arc::new(Metrics::default()),
            config,
            shards.clone(),
        ));
        Harness {
            world,
            shards,
            ctx,
            server,
        }
    }

    pub async fn reconcile(&self, kvs: KVStore) -> operator::Result<Action> {
        self.world.lock().unwrap().kvstore = serde_json::to_value(&kvs).unwrap();
        reconcile(Arc::new(kvs), self.ctx.clone()).await
    }

    /// Reconciles `kvs` while the API server holds `stored`, a later version of it (written by
    /// another operator, or a spec change the reconcile has not seen).
    pub async fn reconcile_stale(&self, kvs: KVStore, stored: KVStore) -> operator::Result<Action> {
        self.world.lock().unwrap().kvstore = serde_json::to_value(&stored).unwrap();
        reconcile(Arc::new(kvs), self.ctx.clone()).await
    }

    /// The status the API server holds now.
    pub fn stored_status(&self) -> Option<KVStoreStatus> {
        let world = self.world.lock().unwrap();
        serde_json::from_value(world.kvstore["status"].clone()).ok()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.world.lock().unwrap().calls.clone()
    }

    /// Server-side applies to a child collection, e.g. "statefulsets".
    pub fn applies_to(&self, kind: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.is_operator_apply() && c.path.contains(&format!("/{kind}/")))
            .collect()
    }

    /// Every status written, in order; each by server-side apply of the operator.
    pub fn statuses(&self) -> Vec<KVStoreStatus> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.ends_with("/kvstores/demo/status"))
            .map(|c| {
                assert!(c.is_operator_apply(), "status not applied: {c:?}");
                serde_json::from_value(c.body["status"].clone()).unwrap()
            })
            .collect()
    }

    /// The last status written.
    pub fn status(&self) -> KVStoreStatus {
        self.statuses().pop().expect("no status written")
    }

    /// `spec.replicas` of every StatefulSet applied, in order.
    pub fn statefulset_replicas(&self) -> Vec<i64> {
        self.applies_to("statefulsets")
            .iter()
            .map(|c| c.body["spec"]["replicas"].as_i64().unwrap())
            .collect()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == Method::POST && c.path.ends_with("/events"))
            .map(|c| c.body)
            .collect()
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A stored KVStore `demo` in `default` asking for `replicas`, with the finalizer set.
pub fn kvstore(replicas: i32) -> KVStore {
    let mut spec: KVStoreSpec = serde_json::from_value(serde_json::json!({})).unwrap();
    spec.replicas = replicas;
    KVStore {
        metadata: ObjectMeta {
            name: Some("demo".into()),
            namespace: Some("default".into()),
            uid: Some("7a5d1b52-0000-4000-8000-000000000001".into()),
            generation: Some(1),
            finalizers: Some(vec![FINALIZER.into()]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// The status of a store that serves `shards` shards at epoch 1 (modulo), Available.
pub fn serving(shards: i32) -> KVStoreStatus {
    KVStoreStatus {
        replicas: shards,
        phase: Some(operator::status::Phase::Available),
        topology: Some(operator::status::TopologyStatus {
            epoch: 1,
            shards,
            sharding: kvproto::Sharding::Modulo,
        }),
        ..KVStoreStatus::default()
    }
}

/// The condition of that type: status, reason, message.
pub fn condition(status: &KVStoreStatus, type_: &str) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// The condition of that type: status and reason.
pub fn state(status: &KVStoreStatus, type_: &str) -> (String, String) {
    let (state, reason, _) = condition(status, type_);
    (state, reason)
}
