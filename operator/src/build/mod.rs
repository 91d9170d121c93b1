//! Pure builders of the children: each takes a validated [`Instance`] and returns the object
//! the operator server-side applies. No I/O here, so every builder is tested against fixtures.

mod meta;
mod pdb;
mod secret;
mod service;
mod spread;
mod statefulset;

pub use pdb::{pod_disruption_budget, shard_pod_disruption_budget};
pub use secret::{Credential, TOKEN_KEY, credential_secret, random_token, token_secret};
pub use service::service;
pub use spread::ZONE_LABEL;
pub use statefulset::{
    ADMIN_TOKEN_DIR, DATA_DIR, ON_DELETE, TLS_DIR, TOKEN_SECRET_UID_ANNOTATION, advertise_url,
    copy_statefulset, statefulset,
};
