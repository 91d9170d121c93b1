//! The replication step of a reconcile (docs/replication.md section 7): observe every copy's
//! Raft status, decide with the pure [`crate::replication::machine`], act (the admin calls to
//! the groups, the release of surplus copies), and report `status.replication`. Runs after the
//! children are applied, for a replicated store (factor > 1, or copies still being removed).

use futures::future::join_all;
use kube::ResourceExt;
use tracing::{info, warn};

use super::copies::{self, Copies};
use super::token::AdminToken;
use crate::context::Context;
use crate::crd::KVStore;
use crate::labels;
use crate::replication::{self, Action, CopyView, Health, Observed, ShardStep, ShardView, View};
use crate::shards::CallResult;
use crate::status::{ReplicationStatus, ShardPhase, ShardReplicationStatus};
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
    let mut formed: Vec<bool> = view
        .shards
        .iter()
        .map(|s| s.formed || replication::health(s).formed())
        .collect();
    let results = join_all(steps.iter().map(|s| act(ctx, &view, token, s))).await;
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
            Err(why) => {
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
    let report = report(
        &view,
        factor,
        &steps,
        &formed,
        releasing.as_deref(),
        copies,
        persisted,
    );
    let converging = steps.iter().any(|s| s.phase != ShardPhase::Stable) || releasing.is_some();
    if converging {
        info!(store = %kvs.name_any(), "replication converging");
    }
    Replicated {
        report,
        formed,
        converging,
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
    let calls = (0..shards).flat_map(|shard| (0..span).map(move |copy| (shard, copy)));
    let answers = join_all(calls.map(|(shard, copy)| {
        let url = view.url(shard, copy);
        let exists = i64::from(pods(copy)) > i64::from(shard);
        async move {
            let observed = if exists {
                match ctx.shards.raft_status(&url, &token.token).await {
                    Ok(status) => Observed::Status(status),
                    Err(err) => Observed::Unreachable(err.to_string()),
                }
            } else {
                Observed::Unreachable("its pod does not exist yet".to_owned())
            };
            (shard, CopyView { copy, observed })
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

/// Runs one shard's calls in order; answers why one failed.
async fn act(
    ctx: &Context,
    view: &View,
    token: &AdminToken,
    step: &ShardStep,
) -> Result<(), String> {
    for action in &step.actions {
        let result: CallResult<()> = match action {
            Action::Init {
                shard,
                copy,
                voters,
            } => {
                info!(store = %view.store, shard, "forming the shard's group");
                let url = view.url(*shard, *copy);
                ctx.shards
                    .raft_init(&url, &token.token, &view.group(*shard), voters)
                    .await
                    .map(|_| ())
            }
            Action::AddLearner {
                shard,
                leader,
                member,
            } => {
                info!(store = %view.store, shard, learner = %member, "adding a learner");
                let url = view.url(*shard, *leader);
                ctx.shards
                    .raft_add_learner(&url, &token.token, &view.group(*shard), member)
                    .await
                    .map(|_| ())
            }
            Action::SetVoters {
                shard,
                leader,
                voters,
            } => {
                let pods: Vec<&str> = voters.iter().map(|m| m.pod.as_str()).collect();
                info!(store = %view.store, shard, voters = ?pods, "changing the voters");
                let url = view.url(*shard, *leader);
                ctx.shards
                    .raft_set_voters(&url, &token.token, &view.group(*shard), voters)
                    .await
                    .map(|_| ())
            }
            Action::TransferLeader { shard, leader, to } => {
                info!(store = %view.store, shard, to = %to, "moving leadership");
                let url = view.url(*shard, *leader);
                ctx.shards
                    .raft_transfer_leader(&url, &token.token, &view.group(*shard), Some(to))
                    .await
                    .map(|_| ())
            }
            Action::ReleaseCopies { .. } => Ok(()),
        };
        result.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `status.replication` and the conditions' messages.
fn report(
    view: &View,
    factor: u32,
    steps: &[ShardStep],
    formed: &[bool],
    releasing: Option<&str>,
    copies: &Copies,
    persisted: Option<&ReplicationStatus>,
) -> ReplicationReport {
    let mut below = Vec::new();
    let mut moving = Vec::new();
    let mut shards = Vec::new();
    for ((s, step), formed) in view.shards.iter().zip(steps).zip(formed) {
        let h = replication::health(s);
        let name = labels::pod(&view.store, i32::try_from(s.shard).unwrap_or(i32::MAX));
        let voters = h.voters().count();
        if h.below_quorum() {
            below.push(format!(
                "shard {name}: {} of {voters} voters in sync, quorum {}",
                h.in_sync, h.quorum
            ));
        }
        if step.phase != ShardPhase::Stable {
            let why = step
                .note
                .as_deref()
                .map_or(String::new(), |n| format!(" ({n})"));
            moving.push(format!("shard {name}: {}{why}", step.phase.as_str()));
        }
        let previous = persisted.and_then(|p| p.shards.iter().find(|p| p.shard == s.shard as i32));
        shards.push(shard_status(view, s.shard, &h, step, *formed, previous));
    }
    if let Some(r) = releasing {
        moving.push(r.to_owned());
    }
    let summary = match (factor, shards.iter().map(|s| s.in_sync).min()) {
        (1, _) if copies.existing.is_empty() => "-".to_owned(),
        (_, Some(min)) => format!("{min}/{factor}"),
        (_, None) => "-".to_owned(),
    };
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join("; "));
    ReplicationReport {
        status: Some(ReplicationStatus {
            factor: i32::try_from(factor).unwrap_or(i32::MAX),
            summary,
            shards,
        }),
        below_quorum: join(below),
        conflicts: copies.conflicts.clone(),
        converging: join(moving),
    }
}

fn shard_status(
    view: &View,
    shard: u32,
    h: &Health<'_>,
    step: &ShardStep,
    formed: bool,
    previous: Option<&ShardReplicationStatus>,
) -> ShardReplicationStatus {
    let pods = |it: &mut dyn Iterator<Item = &kvproto::raft::MemberStatus>| {
        it.map(|m| m.member.pod.clone()).collect::<Vec<_>>()
    };
    let mut voters = pods(&mut h.voters());
    // A formed group stays recorded while no copy reports it (the voters last seen), and one
    // formed just now (init answered) is recorded at once: it is never formed again.
    if voters.is_empty() && formed {
        let initialized = step.actions.iter().find_map(|a| match a {
            Action::Init { voters, .. } => Some(voters.iter().map(|m| m.pod.clone()).collect()),
            _ => None,
        });
        voters = previous
            .map(|p| p.voters.clone())
            .filter(|v| !v.is_empty())
            .or(initialized)
            .unwrap_or_default();
    }
    ShardReplicationStatus {
        shard: i32::try_from(shard).unwrap_or(i32::MAX),
        leader: h.leader.map(|(copy, _)| view.pod(shard, copy)),
        in_sync: i32::try_from(h.in_sync).unwrap_or(i32::MAX),
        voters,
        learners: pods(&mut h.learners()),
        max_lag: h.max_lag.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
        phase: step.phase,
        message: step.note.clone(),
    }
}
