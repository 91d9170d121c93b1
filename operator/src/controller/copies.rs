//! The copies k ≥ 1 of a replicated store as Kubernetes objects: their StatefulSets `NAME-rK`
//! as observed (the store's own, and names another owner holds: `NameConflict`), and the
//! release of copies beyond the factor once no group counts them (scaled to 0, pods gone, then
//! their claims, the per-shard PodDisruptionBudgets when back at factor 1, and last the
//! StatefulSets, so that an operator killed midway finds the copies and finishes).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use tracing::info;

use super::children::{apply_child, delete_shard_pdbs};
use super::token::AdminToken;
use crate::build;
use crate::context::Context;
use crate::error::Result;
use crate::labels;
use crate::validate::Instance;

/// One copy StatefulSet's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct CopyStatefulSet {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.replicas`: pods that exist.
    pub current: i32,
}

/// The store's copy StatefulSets, and the names of wanted ones someone else holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Copies {
    /// The store's own copy StatefulSets, by copy index (≥ 1).
    pub existing: BTreeMap<u32, CopyStatefulSet>,
    /// `NAME-rK` objects (k below the factor) the store does not own: never applied over.
    pub conflicts: Vec<String>,
}

impl Copies {
    /// The copies to apply alongside copy 0: `1..factor`, less those in conflict.
    pub fn wanted(&self, inst: &Instance) -> Vec<u32> {
        (1..inst.factor())
            .filter(|k| {
                let name = labels::copy_statefulset(&inst.name, *k);
                !self.conflicts.contains(&name)
            })
            .collect()
    }

    /// Copy StatefulSets of the store beyond the factor (being released).
    pub fn surplus(&self, inst: &Instance) -> impl Iterator<Item = (&u32, &CopyStatefulSet)> {
        let factor = inst.factor();
        self.existing.iter().filter(move |(k, _)| **k >= factor)
    }

    /// Replicated objects are in place (or still being removed): per-shard disruption budgets,
    /// groups to watch.
    pub fn replicated(&self, inst: &Instance) -> bool {
        inst.factor() > 1 || !self.existing.is_empty()
    }

    /// The highest copy index that exists or is wanted, plus one.
    pub fn span(&self, inst: &Instance) -> u32 {
        let present = self.existing.keys().max().map_or(1, |k| k + 1);
        present.max(inst.factor())
    }
}

/// True when `sts` is controlled by the store of `inst`.
fn owned(inst: &Instance, sts: &StatefulSet) -> bool {
    sts.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == inst.owner.uid)
}

fn counts(sts: &StatefulSet) -> CopyStatefulSet {
    CopyStatefulSet {
        desired: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        current: sts.status.as_ref().map_or(0, |s| s.replicas),
    }
}

/// The store's copy StatefulSets (one list by label, at every factor: a lowered store's
/// copies are found whatever the status says) and, for wanted copies not found, whether their
/// name is taken.
pub(super) async fn observe(ctx: &Context, inst: &Instance) -> Result<Copies> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let params = ListParams::default().labels(&labels::copies_selector_string(&inst.name));
    let mut copies = Copies::default();
    for sts in api.list(&params).await?.items {
        let name = sts.name_any();
        let Some(k) = labels::copy_of_statefulset(&inst.name, &name).filter(|k| *k > 0) else {
            continue;
        };
        if owned(inst, &sts) {
            copies.existing.insert(k, counts(&sts));
        } else if k < inst.factor() {
            copies.conflicts.push(name);
        }
    }
    for k in 1..inst.factor() {
        let name = labels::copy_statefulset(&inst.name, k);
        if copies.existing.contains_key(&k) || copies.conflicts.contains(&name) {
            continue;
        }
        match api.get_opt(&name).await? {
            Some(sts) if owned(inst, &sts) => {
                copies.existing.insert(k, counts(&sts));
            }
            Some(_) => copies.conflicts.push(name),
            None => {}
        }
    }
    Ok(copies)
}

/// Removes the copies `from..` that no group counts any more; answers what it still waits
/// for (pods stopping), or None once they are gone.
pub(super) async fn release(
    ctx: &Context,
    inst: &Instance,
    copies: &Copies,
    from: u32,
    token: &AdminToken,
) -> Result<Option<String>> {
    let leaving: Vec<(u32, CopyStatefulSet)> = copies
        .existing
        .iter()
        .filter(|(k, _)| **k >= from)
        .map(|(k, s)| (*k, *s))
        .collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let mut waiting = Vec::new();
    for (k, sts) in &leaving {
        let name = labels::copy_statefulset(&inst.name, *k);
        if sts.desired > 0 {
            info!(statefulset = %name, "scaling a copy no group counts down to 0");
            let zero = build::copy_statefulset(inst, *k, 0, token.secret_uid.as_deref());
            apply_child(ctx, &inst.namespace, &zero).await?;
            waiting.push(format!("{name} scaling down"));
            continue;
        }
        let left = pods
            .list_metadata(&copy_params(inst, *k))
            .await?
            .items
            .len();
        if sts.current > 0 || left > 0 {
            waiting.push(format!("{name}: {} pods stopping", left.max(1)));
        }
    }
    if !waiting.is_empty() {
        return Ok(Some(format!(
            "removing copies: waiting for {}",
            waiting.join(", ")
        )));
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    for (k, _) in &leaving {
        info!(store = %inst.name, copy = k, "deleting the volumes of a removed copy");
        claims
            .delete_collection(&DeleteParams::background(), &copy_params(inst, *k))
            .await?;
    }
    if from <= 1 {
        // Back at one copy per shard: the store-wide budget again, before the copies go.
        apply_child(ctx, &inst.namespace, &build::pod_disruption_budget(inst)).await?;
        delete_shard_pdbs(ctx, inst, 0).await?;
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    for (k, _) in &leaving {
        let name = labels::copy_statefulset(&inst.name, *k);
        match statefulsets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(statefulset = %name, "deleted a removed copy"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(None)
}

/// The objects of copy `k` of the store (its pods, its claims).
fn copy_params(inst: &Instance, k: u32) -> ListParams {
    ListParams::default().labels(&format!(
        "{}={},{}={k}",
        labels::INSTANCE,
        inst.name,
        labels::COPY
    ))
}
