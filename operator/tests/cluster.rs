//! On a real cluster (ignored by default): what the API server and a running operator do with a
//! KVStore, beyond the chapter's experiments in `tests/e2e`.
//!
//! Needs the ambient kubeconfig, the CRD installed, and for all but the first test an operator
//! that watches every namespace and the kvserver image (`KVSTORE_KVSERVER_IMAGE`, default
//! `kvstore/kvserver:dev`). Run with `cargo test -p operator --test cluster -- --ignored`.
//! Each test works in its own namespace and deletes it at the end (a failed test leaves it for
//! inspection).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use operator::KVStore;
use operator::status::Phase;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);

struct TestNs {
    client: Client,
    name: String,
}

impl TestNs {
    async fn create(prefix: &str) -> TestNs {
        let client = Client::try_default()
            .await
            .expect("a kubeconfig for a running cluster");
        let name = format!("{prefix}-{}", rand::random::<u32>());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        TestNs { client, name }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    async fn store(&self, name: &str, spec: serde_json::Value) -> KVStore {
        let mut spec = spec;
        spec["image"] = json!(
            std::env::var("KVSTORE_KVSERVER_IMAGE")
                .unwrap_or_else(|_| "kvstore/kvserver:dev".into())
        );
        spec["storage"] = json!({"size": "64Mi", "retentionPolicy": "Delete"});
        let kvs: KVStore = serde_json::from_value(json!({
            "apiVersion": "kvstore.dev/v1alpha1", "kind": "KVStore",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        self.api::<KVStore>()
            .create(&PostParams::default(), &kvs)
            .await
            .unwrap()
    }

    async fn patch(&self, name: &str, spec: serde_json::Value) -> Result<KVStore, kube::Error> {
        self.api::<KVStore>()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
    }

    async fn delete(self) {
        let stores = self.api::<KVStore>();
        let _ = stores
            .delete_collection(&DeleteParams::default(), &Default::default())
            .await;
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// Polls `check` every second until it returns Some, at most `LIMIT`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn phase(ns: &TestNs, name: &str, want: Phase) -> KVStore {
    let api = ns.api::<KVStore>();
    until(&format!("{name} to be {want:?}"), || {
        let api = api.clone();
        async move {
            let kvs = api.get(name).await.ok()?;
            let status = kvs.status.as_ref()?;
            (status.phase == Some(want) && status.observed_generation == kvs.metadata.generation)
                .then_some(kvs)
        }
    })
    .await
}

fn condition(kvs: &KVStore, type_: &str) -> (String, String) {
    let c = kvs
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition on {}", kvs.name_any()));
    (c.status.clone(), c.reason.clone())
}

async fn statefulset_replicas(ns: &TestNs, name: &str) -> Option<i32> {
    ns.api::<StatefulSet>().get(name).await.ok()?.spec?.replicas
}

#[tokio::test]
#[ignore = "needs a cluster with the KVStore CRD"]
async fn the_api_server_refuses_changes_to_fixed_fields_and_bad_values() {
    let ns = TestNs::create("kvs-cel").await;
    ns.store("fixed", json!({"replicas": 0})).await;
    for (spec, says) in [
        (json!({"sharding": "jump"}), "sharding cannot be changed"),
        (json!({"port": 8080}), "port cannot be changed"),
        (
            json!({"podManagementPolicy": "Parallel"}),
            "podManagementPolicy cannot be changed",
        ),
        (
            json!({"storage": {"size": "2Gi"}}),
            "storage.size cannot be changed",
        ),
        (json!({"replicas": -1}), "greater than or equal to 0"),
    ] {
        let err = ns.patch("fixed", spec.clone()).await.unwrap_err();
        assert!(err.to_string().contains(says), "{spec}: {err}");
    }
    let bad: KVStore = serde_json::from_value(json!({
        "apiVersion": "kvstore.dev/v1alpha1", "kind": "KVStore",
        "metadata": {"name": "bad"}, "spec": {"port": 8081, "storage": {"size": "lots"}}
    }))
    .unwrap();
    let err = ns
        .api::<KVStore>()
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("port 8081 is the kvserver ops port"), "{err}");
    assert!(err.contains("positive quantity"), "{err}");
    // The scale subresource reads spec.replicas and the selector the operator reports.
    let scale = ns.api::<KVStore>().get_scale("fixed").await.unwrap();
    // Scale omits a zero replica count.
    assert_eq!(scale.spec.and_then(|s| s.replicas).unwrap_or(0), 0);
    ns.patch("fixed", json!({"replicas": 2})).await.unwrap();
    let scale = ns.api::<KVStore>().get_scale("fixed").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    ns.delete().await;
}

#[tokio::test]
#[ignore = "needs a cluster with the operator and the kvserver image"]
async fn a_change_between_non_zero_counts_moves_the_store_to_the_new_count() {
    let ns = TestNs::create("kvs-grow").await;
    ns.store("grow", json!({"replicas": 1})).await;
    phase(&ns, "grow", Phase::Available).await;

    // `kubectl scale`: the rebalance grows the StatefulSet, moves keys and commits epoch 2.
    ns.api::<KVStore>()
        .patch_scale(
            "grow",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    // Available at the new generation only once the move is done.
    let kvs = phase(&ns, "grow", Phase::Available).await;
    let status = kvs.status.unwrap();
    assert_eq!(status.replicas, 2);
    assert_eq!(status.topology.map(|t| (t.epoch, t.shards)), Some((2, 2)));
    assert_eq!(status.rebalance, None);
    assert_eq!(statefulset_replicas(&ns, "grow").await, Some(2));
    ns.delete().await;
}

#[tokio::test]
#[ignore = "needs a cluster with the operator and the kvserver image"]
async fn a_paused_store_keeps_its_children_until_resumed() {
    let ns = TestNs::create("kvs-pause").await;
    ns.store("paused", json!({"replicas": 1})).await;
    phase(&ns, "paused", Phase::Available).await;

    ns.patch("paused", json!({"paused": true, "replicas": 0}))
        .await
        .unwrap();
    let kvs = phase(&ns, "paused", Phase::Paused).await;
    assert_eq!(condition(&kvs, "ReconciliationPaused").0, "True");
    assert_eq!(statefulset_replicas(&ns, "paused").await, Some(1));

    ns.patch("paused", json!({"paused": false})).await.unwrap();
    let kvs = phase(&ns, "paused", Phase::Stopped).await;
    assert_eq!(condition(&kvs, "ReconciliationPaused").0, "False");
    assert_eq!(statefulset_replicas(&ns, "paused").await, Some(0));
    ns.delete().await;
}
