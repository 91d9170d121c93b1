//! The branch of the reconcile for a move between shard counts. Each phase is written to
//! `status.rebalance` before its action runs and every action is idempotent, so an operator
//! killed anywhere resumes from the recorded phase. The shard side of a phase is
//! [`crate::rebalance::steps`]; the Kubernetes side (StatefulSet size, volumes) is here.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tokio::sync::watch;
use tracing::{info, warn};

use super::apply::{apply_children, observe};
use super::events::publish;
use super::status_write::write_status;
use super::token::AdminToken;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::{Category, Error, Result};
use crate::labels;
use crate::plan::{ObservedStatefulSet, Report};
use crate::rebalance::copy::{CopyOptions, CopyProgress, DEFAULT_BATCH};
use crate::rebalance::hooks::TestHooks;
use crate::rebalance::machine;
use crate::rebalance::maps::MoveMaps;
use crate::rebalance::steps::{Shards, StepError};
use crate::report::Outcome;
use crate::status::{RebalancePhase, RebalanceStatus, TopologyStatus};
use crate::validate::Instance;

/// Requeue while waiting for pods (their watch events usually come sooner).
const WAIT: Duration = Duration::from_secs(2);
/// Records per import while the copy-pause test hook is set.
const PACED_BATCH: usize = 100;
/// How often the copy's progress is written to the status.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Why a phase's action stopped short.
enum Failure {
    /// A shard did not cooperate: Degraded, naming it.
    Shard(StepError),
    /// The Kubernetes API did not.
    Kube(Error),
}

impl From<StepError> for Failure {
    fn from(err: StepError) -> Self {
        Failure::Shard(err)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Kube(err)
    }
}

impl From<kube::Error> for Failure {
    fn from(err: kube::Error) -> Self {
        Failure::Kube(err.into())
    }
}

/// What a phase's action came to.
enum Step {
    Done,
    /// Not yet possible (pods starting or stopping); retried soon, not an error.
    Wait(String),
}

/// Runs the move `r` (decided by [`machine::decide`]) as far as it can go in this reconcile.
pub(super) async fn run(
    ctx: &Context,
    kvs: &KVStore,
    inst: &Instance,
    token: &AdminToken,
    mut r: RebalanceStatus,
    sts: Option<ObservedStatefulSet>,
) -> Result<Action> {
    let topology = kvs
        .status
        .as_ref()
        .and_then(|s| s.topology)
        .ok_or(Error::MissingField("status.topology"))?;
    let mut mover = Mover {
        ctx,
        inst,
        token,
        kvs: kvs.clone(),
        topology,
        hooks: TestHooks::from_annotations(kvs.metadata.annotations.as_ref()),
        ready: sts.map_or(0, |s| s.ready),
    };
    let persisted = kvs.status.as_ref().and_then(|s| s.rebalance.as_ref());
    if persisted != Some(&r) {
        r.started_at.get_or_insert_with(|| Time(Timestamp::now()));
        mover.enter(&r).await?;
    }
    let replicas = machine::statefulset_replicas(&r, sts.map(|s| s.desired));
    let mut sts = match apply_children(ctx, inst, replicas, token).await {
        Ok(applied) => observe(&applied),
        Err(err) => {
            if err.category() == Category::Rejected {
                let message = err.to_string();
                mover.write(&r, Some(("ChangeRejected", message))).await?;
            }
            return Err(err);
        }
    };
    mover.ready = sts.ready;
    loop {
        match mover.execute(&mut r, &mut sts).await {
            Ok(Step::Done) => match machine::next_phase(&r) {
                Some(next) => {
                    if r.phase == RebalancePhase::Commit {
                        mover.topology = machine::committed(&r, mover.topology);
                    }
                    r.phase = next;
                    r.message = None;
                    mover.enter(&r).await?;
                }
                None => return mover.finish(&r).await,
            },
            Ok(Step::Wait(why)) => {
                r.message = Some(why);
                mover.write(&r, None).await?;
                return Ok(Action::requeue(WAIT));
            }
            Err(Failure::Kube(err)) => {
                ctx.metrics.rebalance_failed(r.phase.as_str());
                return Err(err);
            }
            Err(Failure::Shard(err)) => {
                ctx.metrics.rebalance_failed(r.phase.as_str());
                let (reason, message) = mover.explain(&err);
                warn!(store = %inst.name, phase = r.phase.as_str(), %message, "rebalance step failed");
                mover.write(&r, Some((reason, message.clone()))).await?;
                return Err(Error::Shard {
                    shard: err.shard(),
                    message,
                });
            }
        }
    }
}

/// One store's move, with the status as last written.
struct Mover<'a> {
    ctx: &'a Context,
    inst: &'a Instance,
    token: &'a AdminToken,
    kvs: KVStore,
    /// The map every server acknowledged (the committed one from Commit on).
    topology: TopologyStatus,
    hooks: TestHooks,
    ready: i32,
}

impl Mover<'_> {
    /// Persists `r` as the new phase, announces it, then waits the test pause if any.
    async fn enter(&mut self, r: &RebalanceStatus) -> Result<()> {
        self.write(r, None).await?;
        let note = format!(
            "moving keys from {} to {} shards (epoch {}): {}",
            r.from,
            r.to,
            r.epoch,
            r.phase.as_str()
        );
        info!(store = %self.inst.name, phase = r.phase.as_str(), "rebalance phase");
        publish(
            self.ctx,
            &self.kvs,
            EventType::Normal,
            r.phase.as_str(),
            note,
        )
        .await;
        if !self.hooks.pause_before_phase.is_zero() {
            tokio::time::sleep(self.hooks.pause_before_phase).await;
        }
        Ok(())
    }

    /// Writes the status of the move, with what blocks it if anything.
    async fn write(
        &mut self,
        r: &RebalanceStatus,
        problem: Option<(&'static str, String)>,
    ) -> Result<()> {
        let outcome = self.outcome(r, problem);
        let status = write_status(self.ctx, &self.kvs, self.ready, &outcome).await?;
        self.kvs.status = Some(status);
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

    /// Condition reason and message for a failed step, naming the shard's pod.
    fn explain(&self, err: &StepError) -> (&'static str, String) {
        let pod = format!("{}-{}", self.inst.name, err.shard());
        match err {
            StepError::Unreachable { message, .. } => (
                "ShardUnreachable",
                format!("shard {pod} unreachable: {message}"),
            ),
            StepError::NotDrained { keys, .. } => (
                "ShardNotDrained",
                format!("shard {pod} still holds {keys} keys: it is not removed until empty"),
            ),
        }
    }

    fn peers(&self, r: &RebalanceStatus) -> Vec<String> {
        let span = u32::try_from(machine::span(r)).unwrap_or(0);
        (0..span)
            .map(|i| {
                labels::peer_url(
                    &self.inst.name,
                    &self.inst.namespace,
                    i,
                    self.inst.spec.port,
                )
            })
            .collect()
    }

    /// The action of `r.phase`.
    async fn execute(
        &mut self,
        r: &mut RebalanceStatus,
        sts: &mut ObservedStatefulSet,
    ) -> std::result::Result<Step, Failure> {
        let span = machine::span(r);
        let peers = self.peers(r);
        let shards = Shards {
            admin: self.ctx.shards.as_ref(),
            token: &self.token.token,
            maps: MoveMaps::new(r, self.topology.sharding, &peers),
        };
        let (tx, _) = watch::channel(CopyProgress::default());
        match r.phase {
            RebalancePhase::ScalingUp if !sts.all_ready(span) => Ok(Step::Wait(format!(
                "waiting for pods: {}/{span} ready",
                sts.ready
            ))),
            // A pod that exists but does not answer is reported by the step (it names it).
            RebalancePhase::Handoff
            | RebalancePhase::Copy
            | RebalancePhase::Commit
            | RebalancePhase::Cleanup
                if sts.desired < span || sts.current < span =>
            {
                Ok(Step::Wait(format!(
                    "waiting for pods: {}/{span} exist",
                    sts.current
                )))
            }
            RebalancePhase::Copy => {
                let paused = !self.hooks.copy_batch_pause.is_zero();
                let options = CopyOptions {
                    // Small batches while a test paces the copy, so that it lasts.
                    batch: if paused { PACED_BATCH } else { DEFAULT_BATCH },
                    pause: self.hooks.copy_batch_pause,
                };
                let moved = self.copy(&shards, r, options, &tx).await?;
                self.ctx.metrics.moved(moved.keys, moved.bytes);
                r.keys_moved = i64::try_from(moved.keys).unwrap_or(i64::MAX);
                r.keys_total = r.keys_moved;
                Ok(Step::Done)
            }
            RebalancePhase::ScalingDown => {
                if sts.desired > r.to {
                    shards.check_drained().await?;
                    let applied = apply_children(self.ctx, self.inst, r.to, self.token).await?;
                    *sts = observe(&applied);
                }
                if sts.current > r.to {
                    return Ok(Step::Wait(format!(
                        "waiting for {} pods to stop",
                        sts.current - r.to
                    )));
                }
                // A terminating pod no longer counts in the StatefulSet but still holds its
                // volume: wait until it is gone.
                match self.remaining_pod(r).await? {
                    Some(pod) => Ok(Step::Wait(format!("waiting for pod {pod} to stop"))),
                    None => Ok(Step::Done),
                }
            }
            RebalancePhase::DeletingPVCs => match self.delete_drained_volumes(r).await? {
                Some(pvc) => Ok(Step::Wait(format!(
                    "waiting for volume {pvc} to be deleted"
                ))),
                None => Ok(Step::Done),
            },
            phase => {
                shards.run(phase, CopyOptions::default(), &tx).await?;
                Ok(Step::Done)
            }
        }
    }

    /// The copy, writing its progress to the status every few seconds.
    async fn copy(
        &self,
        shards: &Shards<'_>,
        r: &RebalanceStatus,
        options: CopyOptions,
        progress: &watch::Sender<CopyProgress>,
    ) -> std::result::Result<CopyProgress, StepError> {
        let copy = shards.copy(options, progress);
        tokio::pin!(copy);
        loop {
            tokio::select! {
                done = &mut copy => return done,
                () = tokio::time::sleep(PROGRESS_EVERY) => {
                    let now = {
                        let p = progress.borrow();
                        RebalanceStatus {
                            keys_moved: i64::try_from(p.keys).unwrap_or(i64::MAX),
                            keys_total: i64::try_from(p.total.max(p.keys)).unwrap_or(i64::MAX),
                            ..r.clone()
                        }
                    };
                    let outcome = self.outcome(&now, None);
                    if let Err(err) = write_status(self.ctx, &self.kvs, self.ready, &outcome).await {
                        warn!(error = %err, "could not write the copy's progress");
                    }
                }
            }
        }
    }

    /// A pod of the removed shards `to..from` that still exists, if any.
    async fn remaining_pod(&self, r: &RebalanceStatus) -> Result<Option<String>> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.inst.namespace);
        for shard in r.to..r.from {
            let name = format!("{}-{shard}", self.inst.name);
            if api.get_opt(&name).await?.is_some() {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Deletes the volumes `data-NAME-i` of the removed shards `to..from`, and only those;
    /// answers one that still exists (being deleted), if any.
    async fn delete_drained_volumes(&self, r: &RebalanceStatus) -> Result<Option<String>> {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), &self.inst.namespace);
        let mut remaining = None;
        for shard in r.to..r.from {
            let name = format!("data-{}-{shard}", self.inst.name);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => info!(pvc = %name, "deleting the volume of a drained shard"),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
            if remaining.is_none() && api.get_opt(&name).await?.is_some() {
                remaining = Some(name);
            }
        }
        Ok(remaining)
    }

    /// The move is complete: forget it, report the committed map, announce it.
    async fn finish(&mut self, r: &RebalanceStatus) -> Result<Action> {
        if let Some(started) = &r.started_at {
            let secs = Timestamp::now().as_second() - started.0.as_second();
            self.ctx
                .metrics
                .rebalance_done(Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
        }
        if let Some(status) = self.kvs.status.as_mut() {
            status.rebalance = None;
        }
        let outcome = Outcome::Planned {
            report: Report::Available { shards: r.to },
            topology: Some(self.topology),
            serving: r.to,
        };
        let status = write_status(self.ctx, &self.kvs, self.ready, &outcome).await?;
        self.kvs.status = Some(status);
        let note = format!(
            "moved keys from {} to {} shards: {} records copied, serving epoch {}",
            r.from, r.to, r.keys_moved, r.epoch
        );
        publish(self.ctx, &self.kvs, EventType::Normal, "Rebalanced", note).await;
        if self.inst.spec.replicas != r.to {
            // The count changed during the move: the next one starts right away.
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Ok(Action::requeue(self.ctx.config.requeue))
    }
}
