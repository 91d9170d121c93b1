//! The Apply branch of the finalizer, for a live store: dereference → validate (pure) → build
//! (pure) → apply → one status write computed from how it went ([`Ending::write_status`]).

use kube::runtime::controller::Action;
use tracing::warn;

use super::children::{self, Layout, apply_children};
use super::copies::{self, Copies};
use super::node_loss;
use super::rebalance;
use super::replication;
use super::roll;
use super::status_write::{Ending, StatusBase, Version};
use super::tls;
use super::token::{AdminToken, ensure_token};
use super::volumes;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::{Category, Error, Result};
use crate::placement;
use crate::plan::{self, Observed, ObservedStatefulSet, Plan, Report};
use crate::rebalance::machine::{self, Decision};
use crate::shards::{self, ShardError};
use crate::status::TopologyStatus;
use crate::status_report::Outcome;
use crate::validate::{Instance, validate};

/// How often a store whose pods are starting is looked at again: each started pod gets its map.
const PODS_STARTING_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Makes the children match the spec, then writes the status once.
pub(super) async fn apply(kvs: &KVStore, ctx: &Context) -> Result<Action> {
    let sts = children::observed_statefulset(ctx, kvs).await?;
    let base = StatusBase {
        kvs: kvs.clone(),
        ready: sts.map_or(0, |s| s.ready),
        version: Version::of(kvs),
        replication: Default::default(),
    };
    reconcile_live(ctx, base, sts).await.write_status(ctx).await
}

/// Everything but the status write: validate, then run a move or the ordinary plan.
async fn reconcile_live(
    ctx: &Context,
    mut base: StatusBase,
    sts: Option<ObservedStatefulSet>,
) -> Ending {
    let requeue = Ok(Action::requeue(ctx.config.requeue));
    if base.kvs.spec.paused {
        return base.end(Outcome::Paused, requeue);
    }
    let inst = match validate(&base.kvs) {
        Ok(inst) => inst,
        Err(Error::InvalidSpec(message)) => {
            let outcome = Outcome::InvalidSpec {
                message: message.clone(),
            };
            return base.end(outcome, Err(Error::InvalidSpec(message)));
        }
        Err(other) => return base.fail(other),
    };
    let token = match ensure_token(ctx, &inst).await {
        Ok(token) => token,
        Err(err) => return base.fail(err),
    };
    match tls::trust_store_ca(ctx, &inst).await {
        Ok(()) => {}
        Err(Error::TlsSecret(message)) => {
            let outcome = Outcome::TlsSecretNotReady {
                message: message.clone(),
            };
            return base.end(outcome, Err(Error::TlsSecret(message)));
        }
        Err(other) => return base.fail(other),
    }
    // The copies k >= 1 (one list at every factor: a lowered store's are found too).
    let copies = match copies::observe(ctx, &inst).await {
        Ok(copies) => copies,
        Err(err) => return base.fail(err),
    };
    base.replication.conflicts = copies.conflicts.clone();
    let layout = Layout {
        per_shard_pdbs: copies.replicated(&inst),
        copies: copies.wanted(&inst),
    };
    // A move between shard counts runs its own state machine (crate::rebalance). With
    // replicated shards it still moves copy 0's keys only, the copies sized along (phase 7 of
    // docs/replication.md makes every step a Raft entry).
    let status = base.kvs.status.as_ref();
    let topology = status.and_then(|s| s.topology);
    let persisted = status.and_then(|s| s.rebalance.as_ref());
    match machine::decide(inst.spec.replicas, topology, persisted) {
        Decision::Run(r) => rebalance::run(ctx, base, &inst, &token, &layout, r, sts).await,
        Decision::Cancel => {
            // Cancelled before anything was pushed: forget the move.
            if let Some(status) = base.kvs.status.as_mut() {
                status.rebalance = None;
            }
            steady(ctx, base, &inst, &token, &layout, &copies, sts).await
        }
        Decision::Idle => steady(ctx, base, &inst, &token, &layout, &copies, sts).await,
    }
}

/// No move runs: the ordinary plan (pods, the shard map push, housekeeping), and for a
/// replicated store the membership step after the children are applied.
async fn steady(
    ctx: &Context,
    mut base: StatusBase,
    inst: &Instance,
    token: &AdminToken,
    layout: &Layout,
    copies: &Copies,
    sts: Option<ObservedStatefulSet>,
) -> Ending {
    let status = base.kvs.status.as_ref();
    let observed = Observed {
        statefulset: sts,
        topology: status.and_then(|s| s.topology),
        phase: status.and_then(|s| s.phase),
    };
    let mut plan = plan::plan(inst, &observed);
    let applied = match apply_children(ctx, inst, plan.statefulset_replicas, token, layout).await {
        Ok(applied) => applied,
        Err(err) => {
            // Only the user can fix a refused change: say so in the status, not just in
            // the logs.
            if err.category() == Category::Rejected {
                let message = err.to_string();
                return base.end(Outcome::Rejected { message }, Err(err));
            }
            return base.fail(err);
        }
    };
    let mut converging = false;
    let mut groups = None;
    let mut unjoined = Vec::new();
    if copies.replicated(inst) {
        let shards = plan.statefulset_replicas.min(applied.desired);
        let kvs = base.kvs.clone();
        let step = replication::run(ctx, &kvs, inst, token, shards, applied.current, copies).await;
        converging = step.converging;
        unjoined = step.unjoined.clone();
        // A replicated shard's first map waits for its group, so that no write reaches copy 0
        // outside it (a map is what lets a server take writes).
        if observed.topology.is_none() && inst.factor() > 1 {
            plan.push_to = plan.push_to.min(step.formed_prefix());
            if plan.push_to == 0 {
                plan.push = None;
            }
        }
        let conflicts = std::mem::take(&mut base.replication.conflicts);
        base.replication = step.report;
        base.replication.conflicts = conflicts;
        groups = Some((step.view, step.steps));
    } else {
        let conflicts = std::mem::take(&mut base.replication.conflicts);
        base.replication = replication::unreplicated();
        base.replication.conflicts = conflicts;
    }
    let topology = match push(ctx, token, &plan, observed.topology, &unjoined).await {
        Ok(topology) => topology,
        Err(err) => {
            let err = Error::from(err);
            let message = err.to_string();
            return base.end(Outcome::ShardUnreachable { message }, Err(err));
        }
    };
    // Clients route over the acknowledged map, also while stopped: it is what comes back.
    let serving = topology.map_or(0, |t| t.shards);
    sweep_unused_volumes(ctx, &base, inst, &plan.report, serving).await;
    // With copies, a lost volume is rebuilt from the others (the membership step reports it).
    let lost = if copies.replicated(inst) {
        None
    } else {
        lost_volumes(ctx, inst, &plan.report).await
    };
    let starting = matches!(
        plan.report,
        Report::Starting { .. } | Report::ShardsNotReady { .. }
    );
    let rebalancing = matches!(plan.report, Report::RebalancePending { .. });
    let outcome = Outcome::Planned {
        report: plan.report,
        topology,
        serving,
        lost,
    };
    // Outdated pods of a replicated store are rolled one step at a time, each written to
    // status.roll before it runs.
    let groups = groups
        .as_ref()
        .map(|(view, steps)| roll::Groups { view, steps });
    let rolling = roll::run(ctx, &mut base, inst, token, groups, rebalancing, &outcome).await;
    // A pod that starts changes no watched object (its StatefulSet's counts move only when it is
    // ready, and a server waiting for its map is not), so starting pods are polled; so are
    // membership changes until every group is stable, and a roll until it is done.
    let next = if starting || converging || rolling {
        PODS_STARTING_POLL
    } else {
        ctx.config.requeue
    };
    base.end(outcome, Ok(Action::requeue(next)))
}

/// While some shard is not ready: the message naming shards whose only volume is on a node
/// that left the cluster, if any. A failed check says nothing (it is retried next time).
async fn lost_volumes(ctx: &Context, inst: &Instance, report: &Report) -> Option<String> {
    let want = match report {
        Report::Starting { want, .. } | Report::ShardsNotReady { want, .. } => *want,
        _ => return None,
    };
    match node_loss::lost_shards(ctx, inst, want).await {
        Ok(lost) if !lost.is_empty() => Some(placement::message(&inst.name, &lost)),
        Ok(_) => None,
        Err(err) => {
            warn!(error = %err, "could not check the shards' volumes for lost nodes");
            None
        }
    }
}

/// Deletes claims beyond the serving count once the store is Available at that count.
async fn sweep_unused_volumes(
    ctx: &Context,
    base: &StatusBase,
    inst: &Instance,
    report: &Report,
    serving: i32,
) {
    if serving > 0 && matches!(report, Report::Available { shards } if *shards == serving) {
        // Housekeeping only: a failure is retried on the next reconcile, the store is fine.
        if let Err(err) = volumes::delete_unused(ctx, &base.kvs, inst, serving).await {
            warn!(error = %err, "could not delete unused volumes");
        }
    }
}

/// Pushes the plan's map to the servers it names, if it has one, except to the copies 0 of
/// `unjoined` shards (outside their formed group: their group holds the map); answers the
/// acknowledged map (a first map counts as acknowledged once one server holds it: a later
/// count change is then a move, not a different first map that server would refuse).
async fn push(
    ctx: &Context,
    token: &AdminToken,
    plan: &Plan,
    acknowledged: Option<TopologyStatus>,
    unjoined: &[u32],
) -> Result<Option<TopologyStatus>, ShardError> {
    let Some(map) = &plan.push else {
        return Ok(acknowledged);
    };
    let reachable = (0..plan.push_to).filter(|shard| !unjoined.contains(shard));
    shards::push(
        ctx.shards.as_ref(),
        &token.token,
        map,
        &map.peers,
        reachable,
    )
    .await?;
    Ok(Some(TopologyStatus {
        epoch: i64::try_from(map.epoch).unwrap_or(i64::MAX),
        shards: i32::try_from(map.shards).unwrap_or(i32::MAX),
        sharding: map.sharding,
    }))
}
