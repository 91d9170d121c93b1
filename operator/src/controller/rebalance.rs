//! The branch of the reconcile for a move between shard counts. Each phase is checkpointed in
//! `status.rebalance` before its action runs and every action is idempotent, so an operator
//! killed anywhere resumes from the recorded phase; the reconcile's end writes the rest of the
//! status once. The shard side of a phase is [`crate::rebalance::steps`]; the Kubernetes side
//! (StatefulSet size, pods, volumes) is here and in `volumes`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tokio::sync::watch;
use tracing::{info, warn};

use super::children::{Layout, apply_children};
use super::events::publish;
use super::status_write::{Ending, StatusBase};
use super::token::AdminToken;
use super::volumes;
use crate::context::Context;
use crate::error::{Category, Error, Result};
use crate::plan::{self, ObservedStatefulSet, Report};
use crate::rebalance::copy::{CopyOptions, CopyProgress, DEFAULT_BATCH};
use crate::rebalance::hooks::TestHooks;
use crate::rebalance::machine;
use crate::rebalance::maps::MoveMaps;
use crate::rebalance::steps::Shards;
use crate::status::{RebalancePhase, RebalanceStatus, TopologyStatus};
use crate::status_report::Outcome;
use crate::validate::Instance;

/// Requeue while waiting for pods (their watch events usually come sooner).
const WAIT: Duration = Duration::from_secs(2);
/// Records per import while the copy-pause test hook is set.
const PACED_BATCH: usize = 100;
/// How often the copy's progress is written to the status.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What a phase's action came to.
enum Step {
    Done,
    /// Not yet possible (pods starting or stopping); retried soon, not an error.
    Wait(String),
}

/// Runs the move `r` (decided by [`machine::decide`]) as far as it can go in this reconcile.
pub(super) async fn run(
    ctx: &Context,
    base: StatusBase,
    inst: &Instance,
    token: &AdminToken,
    layout: &Layout,
    mut r: RebalanceStatus,
    sts: Option<ObservedStatefulSet>,
) -> Ending {
    let Some(topology) = base.kvs.status.as_ref().and_then(|s| s.topology) else {
        return base.fail(Error::MissingField("status.topology"));
    };
    let hooks = TestHooks::from_annotations(base.kvs.metadata.annotations.as_ref());
    let mut mover = Mover {
        ctx,
        inst,
        token,
        layout,
        status: base,
        topology,
        hooks,
    };
    if let Err(err) = mover.start(&mut r).await {
        return mover.status.fail(err);
    }
    let mut sts = match mover.size_statefulset(&r, sts).await {
        Ok(sts) => sts,
        Err(err) => return mover.refused(r, err),
    };
    loop {
        match mover.execute(&mut r, &mut sts).await {
            Ok(Step::Done) => {
                mover.ctx.shards_answered(&mover.status.kvs.object_key());
                match machine::next_phase(&r) {
                    Some(next) => {
                        if let Err(err) = mover.advance(&mut r, next).await {
                            return mover.status.fail(err);
                        }
                    }
                    None => return mover.finish(&r),
                }
            }
            Ok(Step::Wait(why)) => return mover.wait(r, why),
            Err(err) => return mover.step_failed(r, err),
        }
    }
}

/// One store's move, with the status as last written.
struct Mover<'a> {
    ctx: &'a Context,
    inst: &'a Instance,
    token: &'a AdminToken,
    /// The copies sized along with copy 0 (a replicated store's move is phase 7's).
    layout: &'a Layout,
    status: StatusBase,
    /// The map every server acknowledged (the committed one from Commit on).
    topology: TopologyStatus,
    hooks: TestHooks,
}

impl Mover<'_> {
    /// Checkpoints `r` unless it is the persisted move (a new or retargeted one).
    async fn start(&mut self, r: &mut RebalanceStatus) -> Result<()> {
        let persisted = self.status.kvs.status.as_ref();
        if persisted.and_then(|s| s.rebalance.as_ref()) != Some(r) {
            r.started_at.get_or_insert_with(|| Time(Timestamp::now()));
            self.enter(r).await?;
        }
        Ok(())
    }

    /// The StatefulSet sized for the phase of `r`, as the API server stored it.
    async fn size_statefulset(
        &mut self,
        r: &RebalanceStatus,
        sts: Option<ObservedStatefulSet>,
    ) -> Result<ObservedStatefulSet> {
        let replicas = machine::statefulset_replicas(r, sts.map(|s| s.desired));
        let sts = apply_children(self.ctx, self.inst, replicas, self.token, self.layout).await?;
        self.status.ready = sts.ready;
        Ok(sts)
    }

    /// Moves on to phase `next`.
    async fn advance(&mut self, r: &mut RebalanceStatus, next: RebalancePhase) -> Result<()> {
        if r.phase == RebalancePhase::Commit {
            self.topology = machine::committed(r, self.topology);
        }
        r.phase = next;
        r.message = None;
        self.enter(r).await
    }

    /// Checkpoints `r` as the new phase, announces it, then waits the test pause if any.
    async fn enter(&mut self, r: &RebalanceStatus) -> Result<()> {
        self.status
            .checkpoint(self.ctx, &self.outcome(r, None))
            .await?;
        let note = format!(
            "moving keys from {} to {} shards (epoch {}): {}",
            r.from,
            r.to,
            r.epoch,
            r.phase.as_str()
        );
        info!(store = %self.inst.name, phase = r.phase.as_str(), "rebalance phase");
        let kvs = &self.status.kvs;
        publish(self.ctx, kvs, EventType::Normal, r.phase.as_str(), note).await;
        if !self.hooks.pause_before_phase.is_zero() {
            tokio::time::sleep(self.hooks.pause_before_phase).await;
        }
        Ok(())
    }

    fn outcome(&self, r: &RebalanceStatus, problem: Option<(&'static str, String)>) -> Outcome {
        Outcome::Rebalancing {
            rebalance: r.clone(),
            topology: Some(self.topology),
            serving: machine::serving(r),
            problem,
        }
    }

    /// The action of `r.phase`.
    async fn execute(
        &mut self,
        r: &mut RebalanceStatus,
        sts: &mut ObservedStatefulSet,
    ) -> Result<Step> {
        let span = machine::span(r);
        if let Some(why) = pods_missing(r.phase, sts, span) {
            return Ok(Step::Wait(why));
        }
        let peers = plan::peers(self.inst, span);
        let shards = Shards {
            admin: self.ctx.shards.as_ref(),
            token: &self.token.token,
            maps: MoveMaps::new(r, self.topology.sharding, &peers),
        };
        match r.phase {
            RebalancePhase::ScalingUp => {
                // Each new pod gets the map once started, and only then becomes ready.
                shards.introduce_new_servers(sts.reachable(span)).await?;
                Ok(if sts.all_ready(span) {
                    Step::Done
                } else {
                    Step::Wait(format!("waiting for pods: {}/{span} ready", sts.ready))
                })
            }
            RebalancePhase::Copy => self.copy(&shards, r).await,
            RebalancePhase::ScalingDown => self.scale_down(&shards, r, sts).await,
            RebalancePhase::DeletingPVCs => {
                let ordinals = r.to..r.from;
                Ok(
                    match volumes::delete_drained(self.ctx, self.inst, ordinals).await? {
                        Some(pvc) => Step::Wait(format!("waiting for volume {pvc} to be deleted")),
                        None => Step::Done,
                    },
                )
            }
            phase => {
                let (progress, _) = watch::channel(CopyProgress::default());
                shards.run(phase, CopyOptions::default(), &progress).await?;
                Ok(Step::Done)
            }
        }
    }

    /// Copy: every moving record, with its progress in the status every few seconds.
    async fn copy(&self, shards: &Shards<'_>, r: &mut RebalanceStatus) -> Result<Step> {
        let paused = !self.hooks.copy_batch_pause.is_zero();
        let options = CopyOptions {
            // Small batches while a test paces the copy, so that it lasts.
            batch: if paused { PACED_BATCH } else { DEFAULT_BATCH },
            pause: self.hooks.copy_batch_pause,
        };
        let (progress, _) = watch::channel(CopyProgress::default());
        let copy = shards.copy(options, &progress);
        tokio::pin!(copy);
        let moved = loop {
            tokio::select! {
                done = &mut copy => break done?,
                () = tokio::time::sleep(PROGRESS_EVERY) => {
                    let now = with_progress(r, *progress.borrow());
                    let outcome = self.outcome(&now, None);
                    if let Err(err) = self.status.progress(self.ctx, &outcome).await {
                        warn!(error = %err, "could not write the copy's progress");
                    }
                }
            }
        };
        self.ctx.metrics.moved(moved.keys, moved.bytes);
        r.keys_moved = i64::try_from(moved.keys).unwrap_or(i64::MAX);
        r.keys_total = r.keys_moved;
        Ok(Step::Done)
    }

    /// ScalingDown: the StatefulSet shrinks once the removed shards are drained; done when
    /// their pods are gone.
    async fn scale_down(
        &mut self,
        shards: &Shards<'_>,
        r: &RebalanceStatus,
        sts: &mut ObservedStatefulSet,
    ) -> Result<Step> {
        if sts.desired > r.to {
            shards.check_drained().await?;
            *sts = apply_children(self.ctx, self.inst, r.to, self.token, self.layout).await?;
        }
        if sts.current > r.to {
            let stopping = sts.current - r.to;
            return Ok(Step::Wait(format!("waiting for {stopping} pods to stop")));
        }
        // A terminating pod no longer counts in the StatefulSet but still holds its volume:
        // wait until it is gone.
        Ok(
            match volumes::remaining_pod(self.ctx, self.inst, r.to..r.from).await? {
                Some(pod) => Step::Wait(format!("waiting for pod {pod} to stop")),
                None => Step::Done,
            },
        )
    }

    /// The phase waits for pods: the status says why, the reconcile comes back soon.
    fn wait(self, mut r: RebalanceStatus, why: String) -> Ending {
        r.message = Some(why);
        let outcome = self.outcome(&r, None);
        self.status.end(outcome, Ok(Action::requeue(WAIT)))
    }

    /// The API server refused the StatefulSet: Degraded when only the user can fix it.
    fn refused(self, r: RebalanceStatus, err: Error) -> Ending {
        if err.category() != Category::Rejected {
            return self.status.fail(err);
        }
        let outcome = self.outcome(&r, Some(("ChangeRejected", err.to_string())));
        self.status.end(outcome, Err(err))
    }

    /// A step failed: retried with backoff; a shard's failure is Degraded, naming its pod. A
    /// shard that does not answer is first waited for (every 2 s, the message saying why) until
    /// it has failed for the unreachable grace: a pod just started may not resolve yet.
    fn step_failed(self, r: RebalanceStatus, err: Error) -> Ending {
        self.ctx.metrics.rebalance_failed(r.phase.as_str());
        let Error::Shard(shard_err) = &err else {
            return self.status.fail(err);
        };
        let (reason, message) = shard_err.condition(&self.inst.name);
        let grace = self.ctx.config.unreachable_grace;
        if shard_err.is_unreachable() {
            let failing = self.ctx.unreachable_for(&self.status.kvs.object_key());
            if failing < grace {
                info!(store = %self.inst.name, phase = r.phase.as_str(), %message, "rebalance step waits for a shard");
                let why = format!(
                    "{message}; retrying (Degraded if it lasts {}s)",
                    grace.as_secs()
                );
                return self.wait(r, why);
            }
        }
        warn!(store = %self.inst.name, phase = r.phase.as_str(), %message, "rebalance step failed");
        let outcome = self.outcome(&r, Some((reason, message)));
        self.status.end(outcome, Err(err))
    }

    /// The move is complete: forget it, report the committed map, announce it.
    fn finish(mut self, r: &RebalanceStatus) -> Ending {
        if let Some(started) = &r.started_at {
            let secs = Timestamp::now().as_second() - started.0.as_second();
            let elapsed = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
            self.ctx.metrics.rebalance_done(elapsed);
        }
        if let Some(status) = self.status.kvs.status.as_mut() {
            status.rebalance = None;
        }
        let outcome = Outcome::Planned {
            report: Report::Available { shards: r.to },
            topology: Some(self.topology),
            serving: r.to,
            lost: None,
        };
        // The count changed during the move: the next one starts right away.
        let next = if self.inst.spec.replicas != r.to {
            Duration::from_secs(1)
        } else {
            self.ctx.config.requeue
        };
        let note = format!(
            "moved keys from {} to {} shards: {} records copied, serving epoch {}",
            r.from, r.to, r.keys_moved, r.epoch
        );
        let mut ending = self.status.end(outcome, Ok(Action::requeue(next)));
        ending.announce = Some(("Rebalanced", note));
        ending
    }
}

/// Why the phase must wait for pods, if it must: ScalingUp for all of them ready, the shard
/// steps for all of them to exist (a pod that exists but does not answer is reported by the
/// step, which names it).
fn pods_missing(phase: RebalancePhase, sts: &ObservedStatefulSet, span: i32) -> Option<String> {
    use RebalancePhase::*;
    match phase {
        ScalingUp if sts.desired < span => {
            Some(format!("waiting for pods: {}/{span} exist", sts.current))
        }
        Handoff | Copy | Commit | Cleanup if sts.desired < span || sts.current < span => {
            Some(format!("waiting for pods: {}/{span} exist", sts.current))
        }
        _ => None,
    }
}

/// `r` with the copy's progress so far.
fn with_progress(r: &RebalanceStatus, p: CopyProgress) -> RebalanceStatus {
    RebalanceStatus {
        keys_moved: i64::try_from(p.keys).unwrap_or(i64::MAX),
        keys_total: i64::try_from(p.total.max(p.keys)).unwrap_or(i64::MAX),
        ..r.clone()
    }
}
