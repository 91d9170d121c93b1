//! Plain HTTP from the test process to one shard's pod IP, bypassing routing clients: to count a
//! shard's keys, or to write a key to its owner and see that server's own status code (e.g. 507
//! on a full disk). Pod IPs are reachable from the local cluster's node, where the fault suite
//! runs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kvproto::topology::Topology;
use kvproto::wire::KeyPage;

use crate::namespace::TestNamespace;
use crate::{Error, Result, stores};

/// One shard server, addressed directly.
#[derive(Debug, Clone)]
pub struct Shard {
    pub ordinal: u32,
    pub pod: String,
    base: String,
    http: reqwest::Client,
}

fn http_error(what: &str, e: reqwest::Error) -> Error {
    Error::Check(format!("{what}: {e}"))
}

/// The data port and IP of a running shard pod.
fn address(pod: &Pod) -> Option<String> {
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

/// Every shard pod of `store` that has an IP, ordered by ordinal.
pub async fn shards(ns: &TestNamespace, store: &str) -> Result<Vec<Shard>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
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
            base,
            http: http.clone(),
        });
    }
    Ok(out)
}

impl Shard {
    fn key_url(&self, key: &str) -> String {
        format!("{}/v1/keys/{key}", self.base)
    }

    /// The topology this server holds.
    pub async fn topology(&self) -> Result<Topology> {
        let url = format!("{}/v1/topology", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(&url, e))?;
        let resp = resp.error_for_status().map_err(|e| http_error(&url, e))?;
        resp.json().await.map_err(|e| http_error(&url, e))
    }

    /// Keys this server holds under `prefix` (all pages).
    pub async fn count_keys(&self, prefix: &str) -> Result<usize> {
        let mut count = 0;
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("prefix", prefix.to_owned()), ("limit", "10000".into())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let url = format!("{}/v1/keys", self.base);
            let page: KeyPage = self
                .http
                .get(&url)
                .query(&query)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| http_error(&url, e))?
                .json()
                .await
                .map_err(|e| http_error(&url, e))?;
            count += page.keys.len();
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(count),
            }
        }
    }

    /// `PUT /v1/keys/{key}`: the status code and body this server answered.
    pub async fn put(&self, key: &str, value: &str) -> Result<(u16, String)> {
        let url = self.key_url(key);
        let resp = self
            .http
            .put(&url)
            .body(value.to_owned())
            .send()
            .await
            .map_err(|e| http_error(&url, e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok((status, body))
    }

    /// `GET /v1/keys/{key}`: the status code and the value (or error body).
    pub async fn get(&self, key: &str) -> Result<(u16, String)> {
        let url = self.key_url(key);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(&url, e))?;
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
