//! Reads a KVStore (kvstore.dev/v1alpha1) as an untyped object, so the client does not depend
//! on the operator crate, and derives the servers' addresses from it: `https://` under
//! `spec.tls`, trusting `--ca-file` or else the `ca.crt` of the store's TLS Secret.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kvclient::ClientConfig;
use kvproto::Sharding;
use serde_json::Value;

use super::error::CliError;

/// What the client needs from a KVStore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreView {
    /// `http://NAME-i.NAME.NAMESPACE.svc:PORT` (`https://` under `spec.tls`) for every pod the
    /// store may have.
    pub servers: Vec<String>,
    /// `spec.tls.secretName`: the servers speak HTTPS with a certificate from this Secret.
    pub tls_secret: Option<String>,
    pub namespace: String,
    /// `status.replicas`: shards that serve now (routing fallback before any topology).
    pub serving: Option<u32>,
    pub sharding: Sharding,
    /// With `spec.replication.factor` R > 1, the R copies of each shard (`copies[i][0]` is
    /// `servers[i]`, then `NAME-r<k>-i`); empty at factor 1.
    pub copies: Vec<Vec<String>>,
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kvstore.dev", "v1alpha1", "KVStore"),
        "kvstores",
    )
}

/// Fetches the KVStore `name` and derives its view.
pub async fn discover(
    client: &kube::Client,
    name: &str,
    namespace: Option<&str>,
) -> Result<StoreView, CliError> {
    let namespace = namespace.unwrap_or(client.default_namespace()).to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource());
    let store = api.get(name).await.map_err(|e| match e {
        kube::Error::Api(status) => {
            CliError::Failed(format!("KVStore {namespace}/{name}: {}", status.message))
        }
        other => CliError::Kube(other),
    })?;
    Ok(view(name, &namespace, &store.data))
}

/// The view of a KVStore's `spec`/`status` JSON (pure, for tests).
pub fn view(name: &str, namespace: &str, data: &Value) -> StoreView {
    let as_u32 = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let spec_replicas = data.pointer("/spec/replicas").and_then(as_u32);
    let serving = data.pointer("/status/replicas").and_then(as_u32);
    let port = data
        .pointer("/spec/port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(kvclient::addr::DEFAULT_PORT);
    let sharding = data
        .pointer("/spec/sharding")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let tls_secret = data
        .pointer("/spec/tls/secretName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let pods = spec_replicas.unwrap_or(0).max(serving.unwrap_or(0)).max(1);
    let tls = tls_secret.is_some();
    let servers = (0..pods)
        .map(|i| kvproto::peer_url_tls(name, namespace, i, port, tls))
        .collect();
    let factor = data
        .pointer("/spec/replication/factor")
        .and_then(as_u32)
        .unwrap_or(1);
    let copies = if factor > 1 {
        (0..pods)
            .map(|i| {
                (0..factor)
                    .map(|k| kvproto::copy_url_tls(name, namespace, k, i, port, tls))
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    StoreView {
        servers,
        tls_secret,
        namespace: namespace.to_owned(),
        serving,
        sharding,
        copies,
    }
}

/// `config` for the store of `view`: under TLS without `--ca-file`, it trusts the `ca.crt` of
/// the store's TLS Secret (which needs `get` on that Secret; the error says so).
pub async fn trusting_store_ca(
    client: &kube::Client,
    view: &StoreView,
    mut config: ClientConfig,
) -> Result<ClientConfig, CliError> {
    let Some(secret) = &view.tls_secret else {
        return Ok(config);
    };
    if config.ca_pem.is_some() {
        return Ok(config);
    }
    let ns = &view.namespace;
    let fail = |why: String| {
        CliError::Failed(format!(
            "the KVStore serves HTTPS with the certificate of Secret {ns}/{secret}: give its \
             ca.crt with --ca-file, or let this client get that Secret ({why})"
        ))
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let found = api.get(secret).await.map_err(|e| match e {
        kube::Error::Api(status) => fail(status.message),
        other => fail(other.to_string()),
    })?;
    let ca = found
        .data
        .and_then(|mut d| d.remove("ca.crt"))
        .map(|b| b.0)
        .ok_or_else(|| fail("it has no ca.crt".to_owned()))?;
    config.ca_pem = Some(ca);
    Ok(config)
}

/// A client from the ambient kubeconfig or in-cluster service account.
pub async fn kube_client() -> Result<kube::Client, CliError> {
    kube::Client::try_default()
        .await
        .map_err(|e| CliError::KubeConfig(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_cover_every_pod_and_use_the_port() {
        let data = json!({"spec": {"replicas": 5, "port": 8080, "sharding": "jump"},
                          "status": {"replicas": 3}});
        let v = view("kv", "dev", &data);
        assert_eq!(v.servers.len(), 5);
        assert_eq!(v.servers[4], "http://kv-4.kv.dev.svc:8080");
        assert_eq!(v.serving, Some(3));
        assert_eq!(v.sharding, Sharding::Jump);
        let bare = view("kv", "dev", &json!({"spec": {}}));
        assert_eq!(bare.servers, vec!["http://kv-0.kv.dev.svc:80".to_string()]);
        assert_eq!(bare.sharding, Sharding::Modulo);
        assert_eq!(bare.tls_secret, None);
        assert!(v.copies.is_empty() && bare.copies.is_empty());
    }

    #[test]
    fn a_replicated_store_lists_every_copy_of_each_shard() {
        let data = json!({"spec": {"replicas": 2, "port": 8080, "replication": {"factor": 3}}});
        let v = view("kv", "dev", &data);
        assert_eq!(v.copies.len(), 2);
        assert_eq!(
            v.copies[1],
            [
                "http://kv-1.kv.dev.svc:8080",
                "http://kv-r1-1.kv.dev.svc:8080",
                "http://kv-r2-1.kv.dev.svc:8080"
            ]
        );
        assert_eq!(v.copies[0][0], v.servers[0]);
    }

    #[test]
    fn a_tls_store_is_reached_over_https() {
        let data = json!({"spec": {"replicas": 2, "port": 8443, "tls": {"secretName": "kv-tls"}}});
        let v = view("kv", "dev", &data);
        assert_eq!(
            v.servers,
            [
                "https://kv-0.kv.dev.svc:8443",
                "https://kv-1.kv.dev.svc:8443"
            ]
        );
        assert_eq!(v.tls_secret.as_deref(), Some("kv-tls"));
        assert_eq!(v.namespace, "dev");
    }
}
