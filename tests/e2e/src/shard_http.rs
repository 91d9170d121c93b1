//! One shard's pod IP, from the test process, bypassing routing clients: to read its topology,
//! to count its keys, or to write a key to its owner and see that server's own status code and
//! body (e.g. 507 `storage_full` on a full disk). Pod IPs are reachable from the local cluster's
//! node, where the fault suite runs.
//!
//! Topology and key counts go through kvclient's [`ServerClient`]; `put` and `get` stay raw HTTP
//! because the fault cases assert on the exact status code and error body, which the typed
//! client turns into errors (and, on some codes, retries).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kvclient::{ClientConfig, RetryPolicy, ServerClient};
use kvproto::topology::Topology;

use crate::namespace::TestNamespace;
use crate::{Error, Result, stores};

/// Per-request deadline of every call to a shard.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One shard server, addressed directly.
#[derive(Debug, Clone)]
pub struct Shard {
    pub ordinal: u32,
    pub pod: String,
    server: ServerClient,
    http: reqwest::Client,
}

fn http_error(what: &str, e: reqwest::Error) -> Error {
    Error::Check(format!("{what}: {e}"))
}

/// The base URL (pod IP and data port) of a running kvserver pod, reachable from the node.
pub fn address(pod: &Pod) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.clone()?;
    let port = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("http"))?
        .container_port;
    Some(format!("http://{ip}:{port}"))
}

/// What the typed client does here: the raw client's deadline, and no retries, so each call
/// is one request, as a raw one is.
fn config() -> ClientConfig {
    ClientConfig {
        timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        retry: RetryPolicy::NONE,
        ..ClientConfig::default()
    }
}

/// Every shard pod of `store` that has an IP, ordered by ordinal.
pub async fn shards(ns: &TestNamespace, store: &str) -> Result<Vec<Shard>> {
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| http_error("http client", e))?;
    let mut out = Vec::new();
    for pod in stores::shard_pods(ns, store).await? {
        let name = pod.name_any();
        let ordinal = name
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Check(format!("pod {name} has no ordinal")))?;
        let base = address(&pod)
            .ok_or_else(|| Error::Check(format!("pod {name} has no IP or http port yet")))?;
        out.push(Shard {
            ordinal,
            pod: name,
            server: ServerClient::new(&base, config())?,
            http: http.clone(),
        });
    }
    Ok(out)
}

impl Shard {
    /// The topology this server holds.
    pub async fn topology(&self) -> Result<Topology> {
        self.server
            .topology()
            .await?
            .ok_or_else(|| Error::Check(format!("{}/v1/topology: no topology", self.server.base())))
    }

    /// Keys this server holds under `prefix` (all pages).
    pub async fn count_keys(&self, prefix: &str) -> Result<usize> {
        Ok(self.server.list_all(Some(prefix)).await?.len())
    }

    /// `PUT /v1/keys/{key}`: the status code and body this server answered.
    pub async fn put(&self, key: &str, value: &str) -> Result<(u16, String)> {
        let url = self.key_url(key);
        self.raw(&url, self.http.put(&url).body(value.to_owned()))
            .await
    }

    /// `GET /v1/keys/{key}`: the status code and the value (or error body).
    pub async fn get(&self, key: &str) -> Result<(u16, String)> {
        let url = self.key_url(key);
        self.raw(&url, self.http.get(&url)).await
    }

    /// `DELETE /v1/keys/{key}`: the status code and body this server answered.
    pub async fn delete(&self, key: &str) -> Result<(u16, String)> {
        let url = self.key_url(key);
        self.raw(&url, self.http.delete(&url)).await
    }

    /// `POST /v1/admin/import?mode=if-absent` with `fence_query` (`&epoch=E&phase=P`, or empty)
    /// and the admin `token`: what a (possibly deposed) operator's copy batch gets.
    pub async fn import(
        &self,
        token: &str,
        fence_query: &str,
        records: &[kvproto::bulk::BulkRecord],
    ) -> Result<(u16, String)> {
        let url = format!(
            "{}/v1/admin/import?mode=if-absent{fence_query}",
            self.server.base()
        );
        let body = kvproto::bulk::BulkCodec::encode_all(records);
        let request = self
            .http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", kvproto::bulk::CONTENT_TYPE)
            .body(body);
        self.raw(&url, request).await
    }

    /// `GET /readyz` on the ops port: the status code and body.
    pub async fn readyz(&self) -> Result<(u16, String)> {
        let base = self.server.base().to_string();
        let host = base
            .trim_start_matches("http://")
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let url = format!("http://{host}:{}/readyz", kvproto::wire::DEFAULT_OPS_PORT);
        self.raw(&url, self.http.get(&url)).await
    }

    fn key_url(&self, key: &str) -> String {
        format!("{}/v1/keys/{key}", self.server.base())
    }

    /// Sends `request` once: the status code and body, whatever the status.
    async fn raw(&self, url: &str, request: reqwest::RequestBuilder) -> Result<(u16, String)> {
        let resp = request.send().await.map_err(|e| http_error(url, e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok((status, body))
    }
}

/// Total keys under `prefix` over all shards.
pub async fn total_keys(ns: &TestNamespace, store: &str, prefix: &str) -> Result<usize> {
    let mut total = 0;
    for shard in shards(ns, store).await? {
        total += shard.count_keys(prefix).await?;
    }
    Ok(total)
}

/// `count` keys `PREFIX<n>` that `shard` owns under `topology`.
pub fn keys_owned_by(topology: &Topology, shard: u32, prefix: &str, count: usize) -> Vec<String> {
    if shard >= topology.shards {
        return Vec::new();
    }
    (0u64..)
        .map(|n| format!("{prefix}{n}"))
        .filter(|k| topology.owner(k.as_bytes()) == shard)
        .take(count)
        .collect()
}
