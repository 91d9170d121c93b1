//! The Cleanup branch of the finalizer: what happens to the volumes when a store is deleted.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::events::publish;
use crate::context::Context;
use crate::crd::{KVStore, RetentionPolicy};
use crate::error::{Error, Result};
use crate::labels;

/// On deletion: children go by owner references; volumes go only if the policy says Delete.
pub(super) async fn cleanup(kvs: &KVStore, ctx: &Context) -> Result<Action> {
    let ns = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = kvs.name_any();
    // A roll of a deleted store holds no slot of --max-concurrent-rolls.
    ctx.roll_done(&kvs.object_key());
    if kvs.spec.storage.retention_policy == RetentionPolicy::Delete {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = ListParams::default().labels(&labels::selector_string(&name));
        api.delete_collection(&DeleteParams::background(), &selector)
            .await?;
        let note = "deleted the store's volumes (retentionPolicy Delete)".to_owned();
        publish(ctx, kvs, EventType::Normal, "VolumesDeleted", note).await;
    } else {
        let note = "kept the store's volumes (retentionPolicy Retain)".to_owned();
        publish(ctx, kvs, EventType::Normal, "VolumesRetained", note).await;
    }
    Ok(Action::await_change())
}
