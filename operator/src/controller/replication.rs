//! The replication step of a reconcile (docs/replication.md section 7): observe every copy's
//! Raft status, decide with the pure [`crate::replication::machine`], act (the admin calls to
//! the groups, the release of surplus copies), and report `status.replication`. Runs after the
//! children are applied, for a replicated store (factor > 1, or copies still being removed).

use std::collections::BTreeSet;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::{info, warn};

use super::copies::{self, Copies};
use super::token::AdminToken;
use crate::context::Context;
use crate::crd::KVStore;
use crate::labels;
use crate::replication::{self, Action, CopyView, Observed, ShardStep, ShardView, View};
use crate::status::{ReplicationStatus, ShardPhase};
use crate::status_report::ReplicationReport;
use crate::validate::Instance;

/// What the step found and did.
pub(super) struct Replicated {
    pub report: ReplicationReport,
    /// Per shard: its group exists (seen before, or formed now). At factor > 1 a shard gets its
    /// first map only then, so that no write reaches copy 0 outside the group.
    pub formed: Vec<bool>,
    /// Something is still changing: come back soon.
    pub converging: bool,
    /// What was observed and decided, for the roll.
    pub view: View,
    pub steps: Vec<ShardStep>,
    /// Shards whose copy 0 answered outside its formed group (a replaced volume before its
    /// `join` and add-learner): it gets no shard map, so it serves nothing outside the group
    /// (it serves no key without one) and a push is not refused for want of a leader.
    pub unjoined: Vec<u32>,
}

impl Replicated {
    /// How many leading shards have a group.
    pub fn formed_prefix(&self) -> u32 {
        let n = self.formed.iter().take_while(|f| **f).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The status of a store that is not replicated (factor 1, no copy left).
pub(super) fn unreplicated() -> ReplicationReport {
    ReplicationReport {
        status: Some(ReplicationStatus {
            factor: 1,
            summary: "-".to_owned(),
            shards: Vec::new(),
        }),
        ..ReplicationReport::default()
    }
}

/// Observes, decides, acts and reports for shards `0..shards` (see the module docs).
/// `copy0_pods`: how many of copy 0's pods exist.
pub(super) async fn run(
    ctx: &Context,
    kvs: &KVStore,
    inst: &Instance,
    token: &AdminToken,
    shards: i32,
    copy0_pods: i32,
    copies: &Copies,
) -> Replicated {
    let status = kvs.status.as_ref();
    let persisted = status.and_then(|s| s.replication.as_ref());
    let new_store = status.and_then(|s| s.topology).is_none();
    let view = observe(
        ctx, inst, token, shards, copy0_pods, copies, persisted, new_store,
    )
    .await;
    let factor = inst.factor();
    let mut steps = replication::steps(&view, factor);
    // Leadership stays where a roll under way put it.
    crate::roll::hold_leadership(&mut steps, status.and_then(|s| s.roll.as_ref()));
    let mut formed: Vec<bool> = view
        .shards
        .iter()
        .map(|s| s.formed || replication::health(s).formed())
        .collect();
    let results = join_all(steps.iter().map(|s| act(ctx, &view, token, s))).await;
    let mut refused = Vec::new();
    for ((step, result), formed) in steps.iter_mut().zip(results).zip(formed.iter_mut()) {
        match result {
            Ok(()) => {
                if step
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Init { .. }))
                {
                    *formed = true;
                }
            }
            Err(Failed::ForGood { copy, why }) => {
                warn!(store = %inst.name, shard = step.shard, %why, "a copy refused its group for good");
                let message = replication::report::join_refused(&view, step.shard, copy, &why);
                refused.push(format!("shard {}: {message}", view.pod(step.shard, 0)));
                step.note = Some(message);
            }
            Err(Failed::Again(why)) => {
                warn!(store = %inst.name, shard = step.shard, %why, "replication call failed");
                let note = step.note.take();
                step.note = Some(match note {
                    Some(n) => format!("{n}; {why}"),
                    None => why,
                });
            }
        }
    }
    let mut releasing = None;
    if let Some(Action::ReleaseCopies { from }) = replication::machine::release(&view, factor) {
        match copies::release(ctx, inst, copies, from, token).await {
            Ok(waiting) => releasing = waiting,
            Err(err) => releasing = Some(format!("removing copies: {err}")),
        }
    } else if copies.surplus(inst).next().is_some() {
        releasing = Some("copies beyond the factor wait for their groups to let go".to_owned());
    }
    let mut report = replication::report(
        &view,
        factor,
        &steps,
        &formed,
        releasing.as_deref(),
        !copies.existing.is_empty(),
        persisted,
    );
    report.refused = (!refused.is_empty()).then(|| refused.join("; "));
    let converging = steps.iter().any(|s| s.phase != ShardPhase::Stable) || releasing.is_some();
    let unjoined = view
        .shards
        .iter()
        .filter(|s| replication::health::outside_group(s, 0))
        .map(|s| s.shard)
        .collect();
    if converging {
        info!(store = %kvs.name_any(), "replication converging");
    }
    Replicated {
        report,
        formed,
        converging,
        view,
        steps,
        unjoined,
    }
}

/// The store's pods being deleted (they drain). A failed list marks none: leadership may then
/// move to a draining copy, which hands it away again (kvserver keeps handing over while it
/// drains).
async fn terminating_pods(ctx: &Context, inst: &Instance) -> BTreeSet<String> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let params = ListParams::default().labels(&labels::selector_string(&inst.name));
    match api.list(&params).await {
        Ok(list) => list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .map(ResourceExt::name_any)
            .collect(),
        Err(e) => {
            warn!(store = %inst.name, error = %e, "listing the store's pods failed");
            BTreeSet::new()
        }
    }
}

/// Every copy's status, concurrently. A copy whose pod cannot exist yet (its StatefulSet is
/// missing or smaller) is not called.
#[allow(clippy::too_many_arguments)]
async fn observe(
    ctx: &Context,
    inst: &Instance,
    token: &AdminToken,
    shards: i32,
    copy0_pods: i32,
    copies: &Copies,
    persisted: Option<&ReplicationStatus>,
    new_store: bool,
) -> View {
    let mut view = View {
        store: inst.name.clone(),
        namespace: inst.namespace.clone(),
        uid: inst.uid().to_owned(),
        port: inst.port(),
        tls: inst.tls(),
        new_store,
        shards: Vec::new(),
    };
    let span = copies.span(inst);
    let shards = u32::try_from(shards).unwrap_or(0);
    let pods = |copy: u32| match copy {
        0 => copy0_pods,
        k => copies.existing.get(&k).map_or(0, |s| s.current),
    };
    let leaving = terminating_pods(ctx, inst).await;
    let calls = (0..shards).flat_map(|shard| (0..span).map(move |copy| (shard, copy)));
    let answers = join_all(calls.map(|(shard, copy)| {
        let url = view.url(shard, copy);
        let exists = i64::from(pods(copy)) > i64::from(shard);
        let leaving = leaving.contains(&view.pod(shard, copy));
        async move {
            let observed = if exists {
                match ctx.shards.raft_status(&url, &token.token).await {
                    Ok(status) => Observed::Status(status),
                    Err(err) => Observed::Unreachable(err.to_string()),
                }
            } else {
                Observed::Unreachable("its pod does not exist yet".to_owned())
            };
            (
                shard,
                CopyView {
                    copy,
                    observed,
                    leaving,
                },
            )
        }
    }))
    .await;
    for shard in 0..shards {
        let formed = persisted
            .and_then(|p| p.shards.iter().find(|s| s.shard == shard as i32))
            .is_some_and(|s| !s.voters.is_empty());
        view.shards.push(ShardView {
            shard,
            copies: answers
                .iter()
                .filter(|(s, _)| *s == shard)
                .map(|(_, c)| c.clone())
                .collect(),
            formed,
            copy0_keys: None,
        });
    }
    // A new store's shard without a group: all its copies may start as voters if copy 0 is
    // empty (asked only then).
    if new_store && inst.factor() > 1 {
        let asks = view.shards.iter().enumerate().filter(|(_, s)| {
            !s.formed && !replication::health(s).formed() && s.status(0).is_some()
        });
        let asks: Vec<(usize, String)> = asks.map(|(i, s)| (i, view.url(s.shard, 0))).collect();
        let counts = join_all(
            asks.iter()
                .map(|(_, url)| ctx.shards.key_count(url, &token.token)),
        )
        .await;
        for ((i, _), keys) in asks.iter().zip(counts) {
            if let (Some(s), Ok(keys)) = (view.shards.get_mut(*i), keys) {
                s.copy0_keys = Some(keys);
            }
        }
    }
    view
}

/// Why a shard's call failed.
enum Failed {
    /// Asked again at the next reconcile.
    Again(String),
    /// Copy `copy` refused for good (a `join` its volume cannot take).
    ForGood { copy: u32, why: String },
}

/// Runs one shard's calls in order; answers why one failed.
async fn act(
    ctx: &Context,
    view: &View,
    token: &AdminToken,
    step: &ShardStep,
) -> Result<(), Failed> {
    for (shard, copy, change) in step.actions.iter().filter_map(Action::raft_change) {
        info!(store = %view.store, shard, %change, "changing the shard's group");
        let url = view.url(shard, copy);
        let answer = ctx
            .shards
            .raft_change(&url, &token.token, &view.group(shard), &change)
            .await;
        if let Err(err) = answer {
            let why = err.to_string();
            return Err(if change.refused_for_good(&err) {
                Failed::ForGood { copy, why }
            } else {
                Failed::Again(why)
            });
        }
    }
    Ok(())
}
