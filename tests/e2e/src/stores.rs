//! Creating, scaling and observing `KVStore`s.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use operator::KVStore;
use operator::status::Phase;

use crate::namespace::TestNamespace;
use crate::{Error, Result, wait};

/// The label of a replicated store's copy pods `NAME-r<k>-i` (`"<k>"`); copy 0's pods `NAME-i`
/// have none (docs/replication.md section 3).
pub const COPY_LABEL: &str = "kvstore.dev/copy";

/// A KVStore like examples/kvstore.yaml, in the test namespace.
pub fn kvstore(name: &str, replicas: i32, extra_spec: serde_json::Value) -> Result<KVStore> {
    Ok(serde_json::from_value(kvstore_json(
        name, replicas, extra_spec,
    ))?)
}

/// [`kvstore`] as JSON, for fields the operator's types may not know yet (e.g.
/// `spec.replication`): the typed [`KVStore`] would drop them.
pub fn kvstore_json(name: &str, replicas: i32, extra_spec: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "replicas": replicas,
        "image": crate::cluster::image("kvserver"),
        "imagePullPolicy": "IfNotPresent",
        "storage": { "size": "64Mi" },
        "terminationGracePeriodSeconds": 10,
    });
    if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::json!({
        "apiVersion": "kvstore.dev/v1alpha1", "kind": "KVStore",
        "metadata": { "name": name }, "spec": spec,
    })
}

pub async fn create(ns: &TestNamespace, kvs: &KVStore) -> Result<()> {
    ns.api::<KVStore>()
        .create(&PostParams::default(), kvs)
        .await?;
    Ok(())
}

/// `kubectl scale kvstore/NAME --replicas=N`, through the scale subresource.
pub async fn scale(ns: &TestNamespace, name: &str, replicas: i32) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    ns.api::<KVStore>()
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn describe(kvs: &KVStore) -> String {
    format!(
        "spec.replicas={} status={}",
        kvs.spec.replicas,
        serde_json::to_string(&kvs.status).unwrap_or_default()
    )
}

/// Polls the store until `done` holds for it; answers the store as last read. `what` names the
/// wait in the timeout error, which also carries the store's last spec and status.
pub async fn wait_until(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&KVStore) -> bool,
) -> Result<KVStore> {
    let api = ns.api::<KVStore>();
    let done = &done;
    wait::until(
        &format!("kvstore {name}: {what}"),
        limit,
        // Short: some tests must see a phase that lasts a few seconds.
        Duration::from_millis(200),
        || {
            let api = api.clone();
            async move {
                let kvs = api.get(name).await.map_err(|e| e.to_string())?;
                if done(&kvs) {
                    Ok(Some(kvs))
                } else {
                    Err(describe(&kvs))
                }
            }
        },
    )
    .await
}

/// Waits for phase `want` with `serving` shards and as many ready pods, at the current generation.
pub async fn wait_phase(
    ns: &TestNamespace,
    name: &str,
    want: Phase,
    serving: i32,
    limit: Duration,
) -> Result<KVStore> {
    let what = format!("{want:?} with {serving} shards");
    wait_until(ns, name, &what, limit, |kvs| {
        let status = kvs.status.clone().unwrap_or_default();
        let current = status.observed_generation == kvs.metadata.generation;
        let ready = want != Phase::Available || status.ready_replicas == serving;
        current
            && status.phase == Some(want)
            && status.replicas == serving
            && ready
            && status.rebalance.is_none()
    })
    .await
}

/// Waits for a condition of the given type and status.
pub async fn wait_condition(
    ns: &TestNamespace,
    name: &str,
    kind: &str,
    status: &str,
    limit: Duration,
) -> Result<KVStore> {
    let what = format!("condition {kind}={status}");
    wait_until(ns, name, &what, limit, |kvs| {
        kvs.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == status)
        })
    })
    .await
}

/// The shard pods (copy 0 of each shard on a replicated store), ordered by ordinal.
pub async fn shard_pods(ns: &TestNamespace, name: &str) -> Result<Vec<Pod>> {
    // Copy 0's instance labels also match the copy pods `NAME-r<k>-i`: leave those out.
    let lp =
        ListParams::default().labels(&format!("app.kubernetes.io/instance={name},!{COPY_LABEL}"));
    let mut pods: Vec<Pod> = ns.api::<Pod>().list(&lp).await?.items;
    pods.sort_by_key(|p| p.name_any());
    Ok(pods)
}

/// The PVCs of a store's shards (`data-NAME-i`; not the copies' `data-NAME-r<k>-i`), by name.
pub async fn pvcs(ns: &TestNamespace, name: &str) -> Result<Vec<PersistentVolumeClaim>> {
    let all = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .items;
    let prefix = format!("data-{name}-");
    Ok(all
        .into_iter()
        .filter(|p| {
            p.name_any()
                .strip_prefix(&prefix)
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect())
}

/// The admin token the operator gave the store (the first line of its Secret `NAME-admin-token`).
pub async fn admin_token(ns: &TestNamespace, store: &str) -> Result<String> {
    let secret = ns
        .api::<Secret>()
        .get(&operator::labels::token_secret(store))
        .await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|b| b.0.clone())
        .ok_or_else(|| Error::Check("the token Secret has no `token`".into()))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Check(e.to_string()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

pub async fn statefulset(ns: &TestNamespace, name: &str) -> Result<Option<StatefulSet>> {
    Ok(ns.api::<StatefulSet>().get_opt(name).await?)
}

/// Waits until `status.rebalance.phase` is `phase` (by its name, e.g. "Copy").
pub async fn wait_rebalance_phase(
    ns: &TestNamespace,
    name: &str,
    phase: &str,
    limit: Duration,
) -> Result<KVStore> {
    let what = format!("rebalance phase {phase}");
    wait_until(ns, name, &what, limit, |kvs| {
        rebalance(kvs).is_some_and(|r| format!("{:?}", r.phase) == phase)
    })
    .await
}

/// The move in flight, if any.
pub fn rebalance(kvs: &KVStore) -> Option<&operator::status::RebalanceStatus> {
    kvs.status.as_ref().and_then(|s| s.rebalance.as_ref())
}

/// Sets an annotation on the KVStore (the operator's test hooks are annotations).
pub async fn annotate(
    ns: &TestNamespace,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    ns.api::<KVStore>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
