//! The Apply branch of the finalizer: the steps of a reconcile for a live store.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::rebalance;
use super::status_write::write_status;
use super::token::{AdminToken, ensure_token};
use super::volumes;
use crate::build;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::{Category, Error, Result};
use crate::labels::MANAGER;
use crate::plan::{self, Observed, ObservedStatefulSet, Report};
use crate::rebalance::machine::{self, Decision};
use crate::report::Outcome;
use crate::shards;
use crate::status::TopologyStatus;
use crate::validate::{Instance, validate};

/// Makes the children match the spec and reports the result.
pub(super) async fn apply(kvs: &KVStore, ctx: &Context) -> Result<Action> {
    let ns = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = kvs.name_any();
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let observed_sts = sts_api.get_opt(&name).await?.map(|s| observe(&s));
    let ready = observed_sts.map_or(0, |s| s.ready);

    if kvs.spec.paused {
        write_status(ctx, kvs, ready, &Outcome::Paused).await?;
        return Ok(Action::requeue(ctx.config.requeue));
    }
    let inst = match validate(kvs) {
        Ok(inst) => inst,
        Err(Error::InvalidSpec(message)) => {
            let outcome = Outcome::InvalidSpec {
                message: message.clone(),
            };
            write_status(ctx, kvs, ready, &outcome).await?;
            return Err(Error::InvalidSpec(message));
        }
        Err(other) => return Err(other),
    };

    let token = ensure_token(ctx, &inst).await?;
    let observed = Observed {
        statefulset: observed_sts,
        topology: kvs.status.as_ref().and_then(|s| s.topology),
        phase: kvs.status.as_ref().and_then(|s| s.phase),
    };
    // A move between shard counts runs its own state machine (crate::rebalance).
    let rebalance = kvs.status.as_ref().and_then(|s| s.rebalance.as_ref());
    let cancelled;
    let kvs = match machine::decide(inst.spec.replicas, observed.topology, rebalance) {
        Decision::Run(r) => return rebalance::run(ctx, kvs, &inst, &token, r, observed_sts).await,
        Decision::Cancel => {
            cancelled = without_rebalance(kvs);
            &cancelled
        }
        Decision::Idle => kvs,
    };
    let plan = plan::plan(&inst, &observed);
    if let Err(err) = apply_children(ctx, &inst, plan.statefulset_replicas, &token).await {
        // Only the user can fix a refused change: say so in the status, not just in the logs.
        if err.category() == Category::Rejected {
            let outcome = Outcome::Rejected {
                message: err.to_string(),
            };
            write_status(ctx, kvs, ready, &outcome).await?;
        }
        return Err(err);
    }

    let mut topology = observed.topology;
    if let Some(map) = &plan.push {
        if let Err(err) = shards::push_all(ctx.shards.as_ref(), &token.token, map).await {
            let outcome = Outcome::ShardUnreachable {
                message: err.to_string(),
            };
            write_status(ctx, kvs, ready, &outcome).await?;
            return Err(err);
        }
        topology = Some(TopologyStatus {
            epoch: i64::try_from(map.epoch).unwrap_or(i64::MAX),
            shards: i32::try_from(map.shards).unwrap_or(i32::MAX),
            sharding: map.sharding,
        });
    }
    // Clients route over the acknowledged map, also while stopped: it is what comes back.
    let serving = topology.map_or(0, |t| t.shards);
    let stable = matches!(plan.report, Report::Available { shards } if shards == serving);
    let outcome = Outcome::Planned {
        report: plan.report,
        topology,
        serving,
    };
    write_status(ctx, kvs, ready, &outcome).await?;
    if stable && serving > 0 {
        // Housekeeping only: a failure is retried on the next reconcile, the store is fine.
        if let Err(err) = volumes::delete_unused(ctx, kvs, &inst, serving).await {
            warn!(error = %err, "could not delete unused volumes");
        }
    }
    Ok(Action::requeue(ctx.config.requeue))
}

/// Server-side applies the Service, the PodDisruptionBudget and the StatefulSet with
/// `replicas`; answers the StatefulSet as the API server stored it.
pub(super) async fn apply_children(
    ctx: &Context,
    inst: &Instance,
    replicas: i32,
    token: &AdminToken,
) -> Result<StatefulSet> {
    let ns = &inst.namespace;
    apply_child(ctx, ns, &build::service(inst)).await?;
    apply_child(ctx, ns, &build::pod_disruption_budget(inst)).await?;
    let sts = build::statefulset(inst, replicas, token.secret_uid.as_deref());
    apply_child(ctx, ns, &sts).await
}

/// The store without its move in flight (a move cancelled before anything was pushed).
fn without_rebalance(kvs: &KVStore) -> KVStore {
    let mut kvs = kvs.clone();
    if let Some(status) = kvs.status.as_mut() {
        status.rebalance = None;
    }
    kvs
}

pub(super) fn observe(sts: &StatefulSet) -> ObservedStatefulSet {
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
