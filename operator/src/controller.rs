//! The reconcile: dereference → validate (pure) → build (pure) → apply (server-side apply) →
//! status (server-side apply on the status subresource), behind the finalizer that cleans up
//! the volumes when the policy says so.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::build;
use crate::context::Context;
use crate::crd::{KVStore, RetentionPolicy};
use crate::error::{Category, Error, Result};
use crate::labels::{self, MANAGER};
use crate::plan::{self, Observed, ObservedStatefulSet};
use crate::report::{self, Outcome};
use crate::shards;
use crate::status::{KVStoreStatus, Phase, TopologyStatus};
use crate::validate::{Instance, validate};

/// Finalizer that lets the operator delete volumes (per the retention policy) before the store
/// disappears.
pub const FINALIZER: &str = "kvstore.dev/cleanup";

/// The reconcile entry point given to the Controller.
pub async fn reconcile(kvs: Arc<KVStore>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = object_key(&kvs);
    let ns = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<KVStore> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, kvs.clone(), |event| async {
        match event {
            Event::Apply(kvs) => apply(&kvs, &ctx).await,
            Event::Cleanup(kvs) => cleanup(&kvs, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    match &result {
        Ok(_) => ctx.reset_backoff(&key),
        Err(err) => {
            let note = err.detail();
            publish(
                &ctx,
                &kvs,
                EventType::Warning,
                err.category().as_str(),
                note,
            )
            .await;
        }
    }
    result
}

/// Retry policy: spec problems wait for the user (a spec change triggers a reconcile anyway),
/// transient ones back off exponentially per object.
pub fn error_policy(kvs: Arc<KVStore>, err: &Error, ctx: Arc<Context>) -> Action {
    match err.category() {
        Category::InvalidSpec | Category::Rejected => Action::requeue(ctx.config.requeue),
        _ => Action::requeue(ctx.next_backoff(&object_key(&kvs))),
    }
}

fn object_key(kvs: &KVStore) -> String {
    format!("{}/{}", kvs.namespace().unwrap_or_default(), kvs.name_any())
}

/// Makes the children match the spec and reports the result.
async fn apply(kvs: &KVStore, ctx: &Context) -> Result<Action> {
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
    let plan = plan::plan(&inst, &observed);
    let applied = async {
        apply_child(ctx, &ns, &build::service(&inst)).await?;
        apply_child(ctx, &ns, &build::pod_disruption_budget(&inst)).await?;
        apply_child(
            ctx,
            &ns,
            &build::statefulset(&inst, plan.statefulset_replicas),
        )
        .await
    };
    if let Err(err) = applied.await {
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
        if let Err(err) = shards::push_all(ctx.shards.as_ref(), &token, map).await {
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
    let outcome = Outcome::Planned {
        report: plan.report,
        topology,
        serving,
    };
    write_status(ctx, kvs, ready, &outcome).await?;
    Ok(Action::requeue(ctx.config.requeue))
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
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
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

/// The admin token: read from the Secret, or a new random one in a new Secret. The Secret is
/// created, never applied, so no reconcile can rotate the token under running servers.
async fn ensure_token(ctx: &Context, inst: &Instance) -> Result<String> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let name = labels::token_secret(&inst.name);
    if let Some(secret) = api.get_opt(&name).await? {
        return token_of(&secret);
    }
    let token = build::random_token();
    let params = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api
        .create(&params, &build::token_secret(inst, &token))
        .await
    {
        Ok(_) => Ok(token),
        // Another writer won the race: use its token.
        Err(kube::Error::Api(status)) if status.code == 409 => token_of(&api.get(&name).await?),
        Err(err) => Err(err.into()),
    }
}

fn token_of(secret: &Secret) -> Result<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(build::TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|t| !t.is_empty())
        .ok_or(Error::MissingField("token in the admin token Secret"))
}

/// Writes the status with server-side apply, and an Event when the phase changes.
async fn write_status(ctx: &Context, kvs: &KVStore, ready: i32, outcome: &Outcome) -> Result<()> {
    let previous = kvs.status.as_ref();
    let now = Time(Timestamp::now());
    let name = kvs.name_any();
    let status = report::status(
        previous,
        &name,
        kvs.metadata.generation,
        ready,
        outcome,
        &now,
    );
    let api: Api<KVStore> =
        Api::namespaced(ctx.client.clone(), &kvs.namespace().unwrap_or_default());
    let patch = status_patch(&status);
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    let old_phase = previous.and_then(|s| s.phase);
    if let Some(phase) = status.phase.filter(|p| Some(*p) != old_phase) {
        let kind = match phase {
            Phase::Degraded => EventType::Warning,
            _ => EventType::Normal,
        };
        let note = phase_note(&status);
        publish(ctx, kvs, kind, phase.as_str(), note).await;
    }
    Ok(())
}

/// The apply body for the status subresource.
fn status_patch(status: &KVStoreStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": KVStore::api_version(&()),
        "kind": KVStore::kind(&()),
        "status": status,
    })
}

/// The message of the condition that best explains the phase.
fn phase_note(status: &KVStoreStatus) -> String {
    let type_ = match status.phase {
        Some(Phase::Degraded) => report::DEGRADED,
        Some(Phase::Paused) => report::PAUSED,
        Some(Phase::Pending | Phase::Rebalancing) => report::PROGRESSING,
        _ => report::AVAILABLE,
    };
    report::find(status, type_).map_or_else(String::new, |c| c.message.clone())
}

/// Publishes an Event about the store; a failure to do so is logged, never fatal.
async fn publish(ctx: &Context, kvs: &KVStore, type_: EventType, reason: &str, note: String) {
    let event = KubeEvent {
        type_,
        reason: reason.to_owned(),
        // The API server caps notes at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &kvs.object_ref(&())).await {
        warn!(error = %err, store = %object_key(kvs), "could not publish event");
    }
}

/// On deletion: children go by owner references; volumes go only if the policy says Delete.
async fn cleanup(kvs: &KVStore, ctx: &Context) -> Result<Action> {
    let ns = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = kvs.name_any();
    if kvs.spec.storage.retention_policy == RetentionPolicy::Delete {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = ListParams::default().labels(&labels::selector_string(&name));
        api.delete_collection(&DeleteParams::background(), &selector)
            .await?;
        let note = "deleted the store's volumes (retentionPolicy Delete)".to_owned();
        publish(ctx, kvs, EventType::Normal, "VolumesDeleted", note).await;
    } else {
        let note = "kept the store's volumes (retentionPolicy Retain)".to_owned();
        publish(ctx, kvs, EventType::Normal, "VolumesRetained", note).await;
    }
    Ok(Action::await_change())
}

/// Runs the controller until `shutdown` resolves, logging every reconcile result.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let stores: Api<KVStore> = scoped(&client, namespace);
    let owned = watcher::Config::default().labels(&format!("{}={MANAGER}", labels::MANAGED_BY));
    Controller::new(stores, watcher::Config::default().any_semantic())
        .owns(scoped::<StatefulSet>(&client, namespace), owned.clone())
        .owns(scoped::<Service>(&client, namespace), owned.clone())
        .owns(scoped::<Secret>(&client, namespace), owned.clone())
        .owns(scoped::<PodDisruptionBudget>(&client, namespace), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, action)) => info!(store = %obj, ?action, "reconciled"),
                Err(err) => warn!(error = %err, "reconcile failed"),
            }
        })
        .await;
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
