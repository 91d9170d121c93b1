//! Test objects shared by the unit tests.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controller::FINALIZER;
use crate::crd::{KVStore, KVStoreSpec};
use crate::validate::{Instance, validate};

/// The spec a user gets from `{}`: every default applied.
pub fn default_spec() -> KVStoreSpec {
    serde_json::from_value(serde_json::json!({})).unwrap()
}

/// A stored KVStore in `default` with `replicas` shards and the finalizer already set.
pub fn kvstore(name: &str, replicas: i32) -> KVStore {
    let mut spec = default_spec();
    spec.replicas = replicas;
    KVStore {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some("7a5d1b52-0000-4000-8000-000000000001".to_owned()),
            generation: Some(1),
            finalizers: Some(vec![FINALIZER.to_owned()]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// The validated instance of [`kvstore`].
pub fn instance(name: &str, replicas: i32) -> Instance {
    validate(&kvstore(name, replicas)).unwrap()
}
