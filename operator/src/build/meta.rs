//! The object metadata every child shares.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::labels;
use crate::validate::Instance;

/// Metadata every child shares: its name, the store's namespace, labels and owner reference.
pub(super) fn meta(inst: &Instance, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(inst.namespace.clone()),
        labels: Some(labels::common(&inst.name)),
        owner_references: Some(vec![inst.owner.clone()]),
        ..ObjectMeta::default()
    }
}
