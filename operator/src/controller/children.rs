//! The children of a live store as the API server holds them: the StatefulSet observed, and the
//! server-side apply of the Service, the PodDisruptionBudget and the StatefulSet.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::token::AdminToken;
use crate::build;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::{Error, Result};
use crate::labels::{self, MANAGER};
use crate::plan::ObservedStatefulSet;
use crate::validate::Instance;

/// The store's StatefulSet, if it exists.
pub(super) async fn observed_statefulset(
    ctx: &Context,
    kvs: &KVStore,
) -> Result<Option<ObservedStatefulSet>> {
    let ns = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    match api.get_opt(&kvs.name_any()).await? {
        Some(sts) => Ok(Some(observe(ctx, &ns, &kvs.name_any(), &sts).await?)),
        None => Ok(None),
    }
}

/// Server-side applies the Service, the PodDisruptionBudget and the StatefulSet with
/// `replicas`; answers the StatefulSet as the API server stored it.
pub(super) async fn apply_children(
    ctx: &Context,
    inst: &Instance,
    replicas: i32,
    token: &AdminToken,
) -> Result<ObservedStatefulSet> {
    let ns = &inst.namespace;
    apply_child(ctx, ns, &build::service(inst)).await?;
    apply_child(ctx, ns, &build::pod_disruption_budget(inst)).await?;
    let sts = build::statefulset(inst, replicas, token.secret_uid.as_deref());
    let applied = apply_child(ctx, ns, &sts).await?;
    observe(ctx, ns, &inst.name, &applied).await
}

/// The StatefulSet's counts, and how many of its leading pods have started.
async fn observe(
    ctx: &Context,
    ns: &str,
    store: &str,
    sts: &StatefulSet,
) -> Result<ObservedStatefulSet> {
    let status = sts.status.as_ref();
    Ok(ObservedStatefulSet {
        desired: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        current: status.map_or(0, |s| s.replicas),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        started: started_prefix(ctx, ns, store).await?,
    })
}

/// `n` such that pods `0..n` of `store` all have a started kvserver and none is being deleted.
async fn started_prefix(ctx: &Context, ns: &str, store: &str) -> Result<i32> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = ListParams::default().labels(&labels::selector_string(store));
    let pods = api.list(&params).await?;
    let started: BTreeSet<i32> = pods
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none() && kvserver_started(pod))
        .filter_map(|pod| labels::ordinal_of(store, &pod.name_any()))
        .collect();
    Ok((0..).find(|i| !started.contains(i)).unwrap_or(0))
}

fn kvserver_started(pod: &Pod) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    statuses.is_some_and(|all| {
        all.iter()
            .any(|c| c.name == labels::KVSERVER_CONTAINER && c.started == Some(true))
    })
}

/// Server-side applies one child under the operator's field manager.
async fn apply_child<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(MANAGER).force();
    Ok(api
        .patch(&obj.name_any(), &params, &Patch::Apply(obj))
        .await?)
}
