//! Pure builders of the children: each takes a validated [`Instance`] and returns the object
//! the operator server-side applies. No I/O here, so every builder is tested against fixtures.

mod pdb;
mod secret;
mod service;
mod statefulset;

pub use pdb::pod_disruption_budget;
pub use secret::{TOKEN_KEY, random_token, token_secret};
pub use service::service;
pub use statefulset::{ADMIN_TOKEN_DIR, DATA_DIR, TOKEN_SECRET_UID_ANNOTATION, statefulset};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::labels;
use crate::validate::Instance;

/// Metadata every child shares: its name, the store's namespace, labels and owner reference.
fn meta(inst: &Instance, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(inst.namespace.clone()),
        labels: Some(labels::common(&inst.name)),
        owner_references: Some(vec![inst.owner.clone()]),
        ..ObjectMeta::default()
    }
}
