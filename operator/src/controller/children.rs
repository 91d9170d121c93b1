//! The children of a live store as the API server holds them: the StatefulSet observed, and the
//! server-side apply of the Service, the PodDisruptionBudget(s) and the StatefulSet(s).
//!
//! At factor 1 (and no copy left) the children are exactly those of an unreplicated store. A
//! replicated store ([`Layout`]) also gets its copy StatefulSets `NAME-rK`, sized as copy 0,
//! and one PodDisruptionBudget per shard in place of the store-wide one.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

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

/// Which replicated objects go with copy 0's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Layout {
    /// One PodDisruptionBudget per shard (`NAME-sI`) instead of the store-wide `NAME`.
    pub per_shard_pdbs: bool,
    /// The copy StatefulSets applied with copy 0's replica count (`1..factor`, less those whose
    /// name another owner holds). Copies beyond the factor are left to their release.
    pub copies: Vec<u32>,
}

/// Server-side applies the Service, the PodDisruptionBudget(s) and the StatefulSet(s) with
/// `replicas`; answers copy 0's StatefulSet as the API server stored it.
pub(super) async fn apply_children(
    ctx: &Context,
    inst: &Instance,
    replicas: i32,
    token: &AdminToken,
    layout: &Layout,
) -> Result<ObservedStatefulSet> {
    let ns = &inst.namespace;
    apply_child(ctx, ns, &build::service(inst)).await?;
    if layout.per_shard_pdbs {
        for ordinal in 0..replicas {
            apply_child(ctx, ns, &build::shard_pod_disruption_budget(inst, ordinal)).await?;
        }
        delete_store_pdb(ctx, inst).await?;
        delete_shard_pdbs(ctx, inst, replicas).await?;
    } else {
        apply_child(ctx, ns, &build::pod_disruption_budget(inst)).await?;
    }
    let uid = token.secret_uid.as_deref();
    let sts = build::statefulset(inst, replicas, uid);
    let applied = apply_child(ctx, ns, &sts).await?;
    for copy in &layout.copies {
        apply_child(
            ctx,
            ns,
            &build::copy_statefulset(inst, *copy, replicas, uid),
        )
        .await?;
    }
    observe(ctx, ns, &inst.name, &applied).await
}

/// Deletes the store-wide PodDisruptionBudget `NAME`, if the store has one.
async fn delete_store_pdb(ctx: &Context, inst: &Instance) -> Result<()> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    if api.get_opt(&inst.name).await?.is_some() {
        info!(pdb = %inst.name, "replacing the store-wide disruption budget by per-shard ones");
        delete_pdb(&api, &inst.name).await?;
    }
    Ok(())
}

/// Deletes the per-shard PodDisruptionBudgets of shards `from..`.
pub(super) async fn delete_shard_pdbs(ctx: &Context, inst: &Instance, from: i32) -> Result<()> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let params = ListParams::default().labels(&format!(
        "{}={},{}",
        labels::INSTANCE,
        inst.name,
        labels::SHARD
    ));
    for pdb in api.list_metadata(&params).await?.items {
        let name = pdb.name_any();
        let shard = pdb
            .labels()
            .get(labels::SHARD)
            .and_then(|s| s.parse::<i32>().ok());
        let ours = pdb
            .owner_references()
            .iter()
            .any(|r| r.controller == Some(true) && r.uid == inst.owner.uid);
        if ours && shard.is_some_and(|s| s >= from) {
            delete_pdb(&api, &name).await?;
        }
    }
    Ok(())
}

async fn delete_pdb(api: &Api<PodDisruptionBudget>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
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

/// `n` such that pods `0..n` of `store` all have a started kvserver and none is being deleted
/// (copy 0's pods: the copies' pods match the same selector, and are left out).
async fn started_prefix(ctx: &Context, ns: &str, store: &str) -> Result<i32> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = ListParams::default().labels(&labels::copy0_selector_string(store));
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
pub(super) async fn apply_child<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K>
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
