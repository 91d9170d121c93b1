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
use crate::error::{Error, Result};
use crate::labels::MANAGER;
use crate::status::{KVStoreStatus, Phase};
use crate::status_report::{
    self, Outcome, ReplicationReport, compute_status, with_replication, with_roll,
};

/// What every status write of one reconcile computes from besides the outcome: the store with
/// its status as last written, and the ready pod count.
pub(super) struct StatusBase {
    pub kvs: KVStore,
    pub ready: i32,
    /// The resourceVersion of the last write (or of the object read), sent with the next one.
    pub version: Version,
    /// What this reconcile learned about the copies and their groups.
    pub replication: ReplicationReport,
}

/// The resourceVersion every status write is conditional on: a writer that has not seen the
/// last write (a deposed operator still running a move) is refused with 409 instead of
/// rolling `status.rebalance` back. Shared by the copy's progress writes, hence a lock.
#[derive(Debug, Default)]
pub(super) struct Version(std::sync::Mutex<Option<String>>);

impl Version {
    pub fn of(kvs: &KVStore) -> Version {
        Version(std::sync::Mutex::new(kvs.metadata.resource_version.clone()))
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, version: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = version;
    }
}

impl StatusBase {
    /// Persists a move's phase before its action runs, so that an operator killed in the action
    /// resumes from it (docs/rebalance.md); the reconcile's end writes the rest. It carries the
    /// whole status, not `status.rebalance` alone: a server-side apply under the one field
    /// manager removes the fields it owns and leaves out.
    pub async fn checkpoint(&mut self, ctx: &Context, outcome: &Outcome) -> Result<()> {
        let status = write_status(ctx, self, outcome).await?;
        self.kvs.status = Some(status);
        Ok(())
    }

    /// Shows the copy's progress while it runs; the next write computes from the checkpoint
    /// again, so a lost progress write changes nothing.
    pub async fn progress(&self, ctx: &Context, outcome: &Outcome) -> Result<()> {
        write_status(ctx, self, outcome).await.map(|_| ())
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
            write_status(ctx, &self.base, outcome).await?;
        }
        if let Some((reason, note)) = self.announce {
            publish(ctx, &self.base.kvs, EventType::Normal, reason, note).await;
        }
        self.result
    }
}

/// Writes the status computed from `outcome` with server-side apply, conditional on the last
/// resourceVersion seen, and an Event when the phase changes; answers the status written.
async fn write_status(
    ctx: &Context,
    base: &StatusBase,
    outcome: &Outcome,
) -> Result<KVStoreStatus> {
    let kvs = &base.kvs;
    let previous = kvs.status.as_ref();
    let now = Time(Timestamp::now());
    let name = kvs.name_any();
    let generation = kvs.metadata.generation;
    let status = compute_status(previous, &name, generation, base.ready, outcome, &now);
    let status = with_replication(status, &base.replication, generation, &now);
    let status = with_roll(status, generation, &now);
    let api: Api<KVStore> =
        Api::namespaced(ctx.client.clone(), &kvs.namespace().unwrap_or_default());
    let params = PatchParams::apply(MANAGER).force();
    let written = match apply_status(&api, &name, &params, &status, base.version.get()).await {
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Someone wrote since: go on only if the move is where this reconcile left it.
            let fresh = api.get_status(&name).await?;
            let moved_on = fresh.status.as_ref().and_then(|s| s.rebalance.as_ref())
                != previous.and_then(|s| s.rebalance.as_ref());
            if moved_on {
                return Err(Error::StatusMovedOn(format!(
                    "{name}'s move is no longer where this reconcile found it"
                )));
            }
            apply_status(
                &api,
                &name,
                &params,
                &status,
                fresh.metadata.resource_version,
            )
            .await?
        }
        other => other?,
    };
    base.version.set(written.metadata.resource_version);
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

/// One server-side apply of the status subresource, conditional on `version` when known.
async fn apply_status(
    api: &Api<KVStore>,
    name: &str,
    params: &PatchParams,
    status: &KVStoreStatus,
    version: Option<String>,
) -> kube::Result<KVStore> {
    let patch = status_patch(status, version);
    api.patch_status(name, params, &Patch::Apply(&patch)).await
}

/// The apply body for the status subresource; with `resourceVersion`, the API server refuses
/// it (409) unless the object is still at that version.
fn status_patch(status: &KVStoreStatus, version: Option<String>) -> serde_json::Value {
    let mut patch = serde_json::json!({
        "apiVersion": KVStore::api_version(&()),
        "kind": KVStore::kind(&()),
        "status": status,
    });
    if let Some(version) = version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    patch
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
