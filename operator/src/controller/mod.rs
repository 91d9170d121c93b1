//! The reconcile: dereference → validate (pure) → build (pure) → apply (server-side apply) →
//! one status write computed from the outcome (server-side apply on the status subresource),
//! behind the finalizer that cleans up the volumes when the policy says so.
//!
//! Modules, each using only those below it:
//! - this file: the entry point, the error policy and the Controller wiring;
//! - `apply`: the Apply branch (the steps above), ending in the one status write;
//! - `rebalance`: the branch of a move between shard counts (checkpoint a phase, then run it);
//! - `replication`: the membership step of a replicated store (observe the groups, decide
//!   with [`crate::replication`], act, report);
//! - `roll`: the roll of a replicated store's outdated pods (plan with [`crate::roll`], write
//!   `status.roll`, then transfer leadership or delete one pod per shard);
//! - `copies`: the copy StatefulSets `NAME-rK` observed, and the release of surplus copies;
//! - `children`: the StatefulSet observed, and the server-side apply of the children;
//! - `volumes`: the claims and pods of shards beyond the shard count;
//! - `node_loss`: shards whose only volume is on a node that left the cluster;
//! - `token`: the admin, peer and data token Secrets, each created once;
//! - `tls`: the TLS Secret of `spec.tls`, checked, and its CA trusted by the admin client;
//! - `cleanup`: the Cleanup branch (volumes per the retention policy);
//! - `status_write`: the status writes (the end of a reconcile, a move's checkpoints) and the
//!   Event of a phase change;
//! - `events`: publishing Events.

mod apply;
mod children;
mod cleanup;
mod copies;
mod events;
mod node_loss;
mod rebalance;
mod replication;
mod roll;
mod status_write;
mod tls;
mod token;
mod volumes;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::crd::KVStore;
use crate::error::{Category, Error, Result};
use crate::labels::{self, MANAGER};

/// Finalizer that lets the operator delete volumes (per the retention policy) before the store
/// disappears.
pub const FINALIZER: &str = "kvstore.dev/cleanup";

/// The reconcile entry point given to the Controller.
pub async fn reconcile(kvs: Arc<KVStore>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = kvs.object_key();
    let ns = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<KVStore> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, kvs.clone(), |event| async {
        match event {
            Event::Apply(kvs) => apply::apply(&kvs, &ctx).await,
            Event::Cleanup(kvs) => cleanup::cleanup(&kvs, &ctx).await,
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
        // Nothing went wrong: the next reconcile starts from fresh state.
        Err(err) if err.category() == Category::Superseded => {
            debug!(store = %key, reason = %err.detail(), "reconcile superseded");
        }
        Err(err) => {
            let note = err.detail();
            events::publish(
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

/// How soon a superseded reconcile runs again: long enough for the watch cache to catch up
/// with the write it missed.
const SUPERSEDED_RETRY: Duration = Duration::from_secs(1);

/// Retry policy: spec problems wait for the user (a spec change triggers a reconcile anyway),
/// transient ones back off exponentially per object.
pub fn error_policy(kvs: Arc<KVStore>, err: &Error, ctx: Arc<Context>) -> Action {
    match err.category() {
        Category::InvalidSpec | Category::Rejected => Action::requeue(ctx.config.requeue),
        Category::Superseded => Action::requeue(SUPERSEDED_RETRY),
        _ => Action::requeue(ctx.next_backoff(&kvs.object_key())),
    }
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
                Err(kube::runtime::controller::Error::ReconcilerFailed(err, obj))
                    if err.category() == Category::Superseded =>
                {
                    debug!(store = %obj, reason = %err.detail(), "reconcile superseded");
                }
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
