//! The CRD as YAML, printed by `kvstore-operator crd` and committed in `crds/`.

use kube::CustomResourceExt;

use crate::crd::KVStore;

/// Path of the committed CRD, relative to the repository root.
pub const CRD_FILE: &str = "crds/kvstore.dev_kvstores.yaml";

/// The CRD YAML exactly as committed.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&KVStore::crd())
}
