//! The cluster under test. There is no fallback: without a reachable API server every test fails.

use kube::Client;

use crate::{Error, Result};

/// Images the suites run; overridable for a cluster that pulls from a registry.
pub fn image(component: &str) -> String {
    let registry = std::env::var("KVSTORE_IMAGE_REGISTRY").unwrap_or_else(|_| "kvstore".to_owned());
    let tag = std::env::var("KVSTORE_IMAGE_TAG").unwrap_or_else(|_| "dev".to_owned());
    format!("{registry}/{component}:{tag}")
}

/// Connects with the ambient kubeconfig and proves the API server answers.
pub async fn connect() -> Result<Client> {
    let client = Client::try_default()
        .await
        .map_err(|e| Error::NoCluster(e.to_string()))?;
    client
        .apiserver_version()
        .await
        .map_err(|e| Error::NoCluster(e.to_string()))?;
    Ok(client)
}
