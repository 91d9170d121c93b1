//! The roll step of a replicated store's reconcile (docs/replication.md section 9): observe the
//! StatefulSets' update revisions and the pods, plan with the pure [`crate::roll::plan`], write
//! `status.roll` (a checkpoint: the step is persisted before it runs), then act: a transfer of
//! leadership through the shard's leader, or a pod deleted (its StatefulSet, `OnDelete`,
//! recreates it from the new template). Runs after the membership step, at the end of a steady
//! reconcile; never during a move.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use tracing::{info, warn};

use super::status_write::StatusBase;
use super::token::AdminToken;
use crate::context::Context;
use crate::error::Result;
use crate::labels;
use crate::replication::view::pod_copy_shard;
use crate::replication::{ShardStep, View};
use crate::roll::{self, PodState, RollAction, RollView};
use crate::shards::RaftChange;
use crate::status::RollStatus;
use crate::status_report::Outcome;
use crate::validate::Instance;

/// The pod label naming the StatefulSet revision a pod was made from.
const REVISION_LABEL: &str = "controller-revision-hash";

/// What the membership step saw, for the roll.
pub(super) struct Groups<'a> {
    pub view: &'a View,
    pub steps: &'a [ShardStep],
}

/// Plans and runs one roll step; answers whether a roll is under way (come back soon).
/// `rebalancing`: a shard count change is pending. A failed call is logged and retried at
/// the next reconcile (every step is idempotent).
pub(super) async fn run(
    ctx: &Context,
    base: &mut StatusBase,
    inst: &Instance,
    token: &AdminToken,
    groups: Option<Groups<'_>>,
    rebalancing: bool,
    outcome: &Outcome,
) -> bool {
    let key = base.kvs.object_key();
    let persisted = base.kvs.status.as_ref().and_then(|s| s.roll.clone());
    let Some(groups) = groups.filter(|_| inst.factor() > 1) else {
        // Factor 1 rolls by RollingUpdate: nothing of ours is left to finish.
        set_roll(base, None);
        ctx.roll_done(&key);
        return false;
    };
    let view = match observe(ctx, inst, &groups, rebalancing).await {
        Ok(view) => view,
        Err(err) => {
            warn!(store = %key, error = %err, "could not observe the pods to roll");
            return persisted.is_some();
        }
    };
    let plan = roll::plan(&view, persisted.as_ref());
    let Some(status) = plan.status else {
        if persisted.is_some() {
            info!(store = %key, "roll done");
        }
        set_roll(base, None);
        ctx.roll_done(&key);
        return false;
    };
    if !ctx.may_roll(&key, roll::started(persisted.as_ref())) {
        info!(store = %key, "pods outdated; another store rolls (--max-concurrent-rolls)");
        set_roll(
            base,
            Some(roll::queued(&status, ctx.config.max_concurrent_rolls)),
        );
        return true;
    }
    set_roll(base, Some(status));
    if plan.actions.is_empty() {
        return true;
    }
    // The step is written before it runs: a restarted operator resumes it.
    if let Err(err) = base.checkpoint(ctx, outcome).await {
        warn!(store = %key, error = %err, "could not persist the roll step; not running it");
        return true;
    }
    for action in &plan.actions {
        if let Err(why) = act(ctx, inst, token, groups.view, action).await {
            warn!(store = %key, %why, "roll step failed; retried at the next reconcile");
        }
    }
    true
}

fn set_roll(base: &mut StatusBase, roll: Option<RollStatus>) {
    if roll.is_none() && base.kvs.status.as_ref().is_none_or(|s| s.roll.is_none()) {
        return;
    }
    base.kvs.status.get_or_insert_with(Default::default).roll = roll;
}

/// The update revision of every wanted copy's StatefulSet and the pods of the wanted copies
/// of the shards the membership step looked at.
async fn observe(
    ctx: &Context,
    inst: &Instance,
    groups: &Groups<'_>,
    rebalancing: bool,
) -> Result<RollView> {
    let factor = inst.factor();
    let shards = u32::try_from(groups.view.shards.len()).unwrap_or(u32::MAX);
    let params = ListParams::default().labels(&labels::selector_string(&inst.name));
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let mut revisions = std::collections::BTreeMap::new();
    for sts in statefulsets.list(&params).await?.items {
        let owned = sts
            .owner_references()
            .iter()
            .any(|r| r.controller == Some(true) && r.uid == inst.owner.uid);
        let copy = labels::copy_of_statefulset(&inst.name, &sts.name_any());
        let revision = update_revision(&sts);
        if let (true, Some(copy), Some(revision)) = (owned, copy, revision)
            && copy < factor
        {
            revisions.insert(copy, revision);
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let pods = api
        .list(&params)
        .await?
        .items
        .iter()
        .filter_map(|pod| pod_state(&inst.name, pod))
        .filter(|p| p.copy < factor && p.shard < shards)
        .collect();
    let shards = groups
        .view
        .shards
        .iter()
        .zip(groups.steps)
        .map(|(s, step)| roll::shard_state(groups.view, s, step))
        .collect();
    Ok(RollView {
        revisions,
        pods,
        shards,
        rebalancing,
    })
}

/// The update revision of `sts`, once its controller has seen its latest spec: before that,
/// `status.updateRevision` names the template it replaces, and a pod just recreated from the
/// new one would look outdated (deleted again) while the old ones look updated.
fn update_revision(sts: &StatefulSet) -> Option<String> {
    let status = sts.status.as_ref()?;
    let seen = match (sts.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (Some(_), None) => false,
        // No generation (an object not from an API server): nothing to compare.
        (None, _) => true,
    };
    seen.then(|| status.update_revision.clone()).flatten()
}

fn pod_state(store: &str, pod: &Pod) -> Option<PodState> {
    let name = pod.name_any();
    let (copy, shard) = pod_copy_shard(store, &name)?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(PodState {
        revision: pod.labels().get(REVISION_LABEL).cloned(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        uid: pod.metadata.uid.clone(),
        pod: name,
        shard,
        copy,
    })
}

async fn act(
    ctx: &Context,
    inst: &Instance,
    token: &AdminToken,
    view: &View,
    action: &RollAction,
) -> std::result::Result<(), String> {
    match action {
        RollAction::TransferLeader { shard, leader, to } => {
            info!(store = %inst.name, shard, to = %to, "roll: moving leadership off an outdated pod");
            let change = RaftChange::TransferLeader {
                to: Some(to.clone()),
            };
            ctx.shards
                .raft_change(
                    &view.url(*shard, *leader),
                    &token.token,
                    &view.group(*shard),
                    &change,
                )
                .await
                .map_err(|e| e.to_string())
        }
        RollAction::DeletePod { pod, uid } => {
            info!(store = %inst.name, %pod, "roll: deleting an outdated pod");
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &inst.namespace);
            let params = DeleteParams {
                preconditions: uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(pod, &params).await {
                Ok(_) => Ok(()),
                // Gone, or already recreated (another uid): nothing to do.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                Err(err) => Err(err.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetStatus;

    use super::*;

    fn sts(generation: Option<i64>, observed: Option<i64>) -> StatefulSet {
        let mut sts = StatefulSet::default();
        sts.metadata.generation = generation;
        sts.status = Some(StatefulSetStatus {
            observed_generation: observed,
            update_revision: Some("demo-r1-b".to_owned()),
            ..StatefulSetStatus::default()
        });
        sts
    }

    #[test]
    fn an_update_revision_counts_once_its_controller_saw_the_latest_spec() {
        let seen = Some("demo-r1-b".to_owned());
        assert_eq!(update_revision(&sts(Some(4), Some(4))), seen);
        assert_eq!(update_revision(&sts(Some(4), Some(5))), seen);
        // The template just changed (generation 5): the revision still names the old one.
        assert_eq!(update_revision(&sts(Some(5), Some(4))), None);
        assert_eq!(update_revision(&sts(Some(5), None)), None);
        assert_eq!(update_revision(&sts(None, None)), seen);
        assert_eq!(update_revision(&StatefulSet::default()), None);
    }
}
