//! The children of a live store as the API server holds them: the StatefulSet observed, and the
//! server-side apply of the Service, the PodDisruptionBudget and the StatefulSet.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::token::AdminToken;
use crate::build;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::{Error, Result};
use crate::labels::MANAGER;
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
    Ok(api.get_opt(&kvs.name_any()).await?.map(|s| observe(&s)))
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
    Ok(observe(&apply_child(ctx, ns, &sts).await?))
}

fn observe(sts: &StatefulSet) -> ObservedStatefulSet {
    let status = sts.status.as_ref();
    ObservedStatefulSet {
        desired: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        current: status.map_or(0, |s| s.replicas),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
    }
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
