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

/// Gives `image` a second tag `tag` (same content) on every node of the cluster, or in
/// `KVSTORE_IMAGE_REGISTRY` for an existing cluster: a changed image reference, as a user's
/// upgrade is, without building another image. Answers the new reference.
pub fn retag(image: &str, tag: &str) -> Result<String> {
    let repository = image.rsplit_once(':').map_or(image, |(r, _)| r);
    let retagged = format!("{repository}:{tag}");
    crate::host::run_script(
        "tests/images/build.sh",
        &["tag".to_owned(), image.to_owned(), retagged.clone()],
    )?;
    Ok(retagged)
}
