//! Events about a store, published through the shared recorder.

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType};
use tracing::warn;

use super::object_key;
use crate::context::Context;
use crate::crd::KVStore;

/// Publishes an Event about the store; a failure to do so is logged, never fatal.
pub(super) async fn publish(
    ctx: &Context,
    kvs: &KVStore,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = KubeEvent {
        type_,
        reason: reason.to_owned(),
        // The API server caps notes at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &kvs.object_ref(&())).await {
        warn!(error = %err, store = %object_key(kvs), "could not publish event");
    }
}
