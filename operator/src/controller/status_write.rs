//! Writing the status (server-side apply on the status subresource) and announcing phase
//! changes as Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::events::publish;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::Result;
use crate::labels::MANAGER;
use crate::report::{self, Outcome};
use crate::status::{KVStoreStatus, Phase};

/// Writes the status with server-side apply, and an Event when the phase changes; answers the
/// status written.
pub(super) async fn write_status(
    ctx: &Context,
    kvs: &KVStore,
    ready: i32,
    outcome: &Outcome,
) -> Result<KVStoreStatus> {
    let previous = kvs.status.as_ref();
    let now = Time(Timestamp::now());
    let name = kvs.name_any();
    let status = report::status(
        previous,
        &name,
        kvs.metadata.generation,
        ready,
        outcome,
        &now,
    );
    let api: Api<KVStore> =
        Api::namespaced(ctx.client.clone(), &kvs.namespace().unwrap_or_default());
    let patch = status_patch(&status);
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    let old_phase = previous.and_then(|s| s.phase);
    if let Some(phase) = status.phase.filter(|p| Some(*p) != old_phase) {
        let kind = match phase {
            Phase::Degraded => EventType::Warning,
            _ => EventType::Normal,
        };
        let note = phase_note(&status);
        publish(ctx, kvs, kind, phase.as_str(), note).await;
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
        Some(Phase::Degraded) => report::DEGRADED,
        Some(Phase::Paused) => report::PAUSED,
        Some(Phase::Pending | Phase::Rebalancing) => report::PROGRESSING,
        _ => report::AVAILABLE,
    };
    report::find(status, type_).map_or_else(String::new, |c| c.message.clone())
}
