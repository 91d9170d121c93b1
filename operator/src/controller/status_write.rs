//! Writing the status (server-side apply on the status subresource, under the one field
//! manager) and announcing phase changes as Events. Every write computes the whole status with
//! [`compute_status`] from an [`Outcome`]:
//!
//! - [`Ending::write_status`]: the one write at the end of every reconcile of a live store;
//! - [`StatusBase::checkpoint`]: a move's phase, persisted before its action runs;
//! - [`StatusBase::progress`]: the copy's progress while it runs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::events::publish;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::Result;
use crate::labels::MANAGER;
use crate::status::{KVStoreStatus, Phase};
use crate::status_report::{self, Outcome, compute_status};

/// What every status write of one reconcile computes from besides the outcome: the store with
/// its status as last written, and the ready pod count.
pub(super) struct StatusBase {
    pub kvs: KVStore,
    pub ready: i32,
}

impl StatusBase {
    /// Persists a move's phase before its action runs, so that an operator killed in the action
    /// resumes from it (docs/rebalance.md); the reconcile's end writes the rest. It carries the
    /// whole status, not `status.rebalance` alone: a server-side apply under the one field
    /// manager removes the fields it owns and leaves out.
    pub async fn checkpoint(&mut self, ctx: &Context, outcome: &Outcome) -> Result<()> {
        let status = write_status(ctx, &self.kvs, self.ready, outcome).await?;
        self.kvs.status = Some(status);
        Ok(())
    }

    /// Shows the copy's progress while it runs; the next write computes from the checkpoint
    /// again, so a lost progress write changes nothing.
    pub async fn progress(&self, ctx: &Context, outcome: &Outcome) -> Result<()> {
        write_status(ctx, &self.kvs, self.ready, outcome)
            .await
            .map(|_| ())
    }

    /// The reconcile ends with `outcome` in the status and `result`.
    pub fn end(self, outcome: Outcome, result: Result<Action>) -> Ending {
        Ending {
            base: self,
            outcome: Some(outcome),
            announce: None,
            result,
        }
    }

    /// The reconcile ends with a failed API call: the status stays as last written.
    pub fn fail(self, err: crate::Error) -> Ending {
        Ending {
            base: self,
            outcome: None,
            announce: None,
            result: Err(err),
        }
    }
}

/// How a reconcile of a live store ended.
pub(super) struct Ending {
    pub base: StatusBase,
    /// What the status says now; none after a failed API call.
    pub outcome: Option<Outcome>,
    /// An Event (reason, note) announced once the status says so.
    pub announce: Option<(&'static str, String)>,
    pub result: Result<Action>,
}

impl Ending {
    /// The one status write at the end of the reconcile, then its announcement and result.
    pub async fn write_status(self, ctx: &Context) -> Result<Action> {
        if let Some(outcome) = &self.outcome {
            write_status(ctx, &self.base.kvs, self.base.ready, outcome).await?;
        }
        if let Some((reason, note)) = self.announce {
            publish(ctx, &self.base.kvs, EventType::Normal, reason, note).await;
        }
        self.result
    }
}

/// Writes the status computed from `outcome` with server-side apply, and an Event when the
/// phase changes; answers the status written.
async fn write_status(
    ctx: &Context,
    kvs: &KVStore,
    ready: i32,
    outcome: &Outcome,
) -> Result<KVStoreStatus> {
    let previous = kvs.status.as_ref();
    let now = Time(Timestamp::now());
    let name = kvs.name_any();
    let generation = kvs.metadata.generation;
    let status = compute_status(previous, &name, generation, ready, outcome, &now);
    let api: Api<KVStore> =
        Api::namespaced(ctx.client.clone(), &kvs.namespace().unwrap_or_default());
    let params = PatchParams::apply(MANAGER).force();
    let patch = status_patch(&status);
    api.patch_status(&name, &params, &Patch::Apply(&patch))
        .await?;
    let old_phase = previous.and_then(|s| s.phase);
    if let Some(phase) = status.phase.filter(|p| Some(*p) != old_phase) {
        let kind = match phase {
            Phase::Degraded => EventType::Warning,
            _ => EventType::Normal,
        };
        publish(ctx, kvs, kind, phase.as_str(), phase_note(&status)).await;
    }
    Ok(status)
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
        Some(Phase::Degraded) => status_report::DEGRADED,
        Some(Phase::Paused) => status_report::PAUSED,
        Some(Phase::Pending | Phase::Rebalancing) => status_report::PROGRESSING,
        _ => status_report::AVAILABLE,
    };
    status_report::find(status, type_).map_or_else(String::new, |c| c.message.clone())
}
