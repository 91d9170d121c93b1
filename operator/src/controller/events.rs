//! Events about a store, published through the shared recorder.

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType};
use tracing::warn;

use crate::context::Context;
use crate::crd::KVStore;

/// The Event's `action`. kube-runtime's recorder folds Events with the same type, reason and
/// action into one series that keeps the first note, so a second move's `Rebalanced` would show
/// the first move's figures. The note's digest in the action keeps repeats of the same note in
/// one series and gives a different note its own Event.
fn action_for(note: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut digest = std::hash::DefaultHasher::new();
    note.hash(&mut digest);
    format!("Reconcile-{:08x}", digest.finish() as u32)
}

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
        action: action_for(&note),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &kvs.object_ref(&())).await {
        warn!(error = %err, store = %kvs.object_key(), "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::action_for;

    #[test]
    fn same_note_same_action_different_note_different_action() {
        let a = action_for("moved keys from 3 to 5 shards: 4023 records copied, serving epoch 2");
        let b = action_for("moved keys from 5 to 2 shards: 80000 records copied, serving epoch 3");
        assert_eq!(
            a,
            action_for("moved keys from 3 to 5 shards: 4023 records copied, serving epoch 2")
        );
        assert_ne!(a, b);
        assert!(a.starts_with("Reconcile-") && a.len() <= 128);
    }
}
