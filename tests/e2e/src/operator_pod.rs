//! The operator's own pod, wherever its Helm chart installed it (found by the chart's label in
//! any namespace): its process SIGKILLed by cgroup on the node, as a crash would, and the
//! Deployment's pod back with a new, Ready container. Needs root on the cluster's node.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::{Error, Result, host, replicas, wait};

/// The chart's pod label.
pub const SELECTOR: &str = "app.kubernetes.io/name=kvstore-operator";
/// The chart's container.
pub const CONTAINER: &str = "operator";

/// A killed operator: where it ran and what was killed.
#[derive(Debug, Clone)]
pub struct Killed {
    pub namespace: String,
    pub pod: String,
    pub container_id: String,
    pub pids: Vec<u32>,
    /// Their process names, for the report.
    pub comms: Vec<String>,
}

/// The one operator pod that is not terminating (the chart runs one replica).
pub async fn current(client: &Client) -> Result<Pod> {
    let lp = ListParams::default().labels(SELECTOR);
    let mut pods: Vec<Pod> = Api::<Pod>::all(client.clone())
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    match pods.len() {
        1 => Ok(pods.remove(0)),
        n => Err(Error::Check(format!(
            "expected one operator pod (label {SELECTOR}), found {n}: {:?}",
            pods.iter()
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                .collect::<Vec<_>>()
        ))),
    }
}

/// SIGKILLs every process of the operator's container.
pub async fn kill9(client: &Client) -> Result<Killed> {
    let pod = current(client).await?;
    let container_id = host::container_id(&pod, CONTAINER)?;
    let pids = host::container_pids(&pod, CONTAINER)?;
    let comms = pids.iter().map(|&p| host::comm(p)).collect();
    host::sigkill(&pids)?;
    Ok(Killed {
        namespace: pod.namespace().unwrap_or_default(),
        pod: pod.name_any(),
        container_id,
        pids,
        comms,
    })
}

/// Waits (at most `limit`) until the operator runs again: a Ready pod whose operator container
/// is not the one killed (restarted in place, or a new pod of the Deployment).
pub async fn wait_back(client: &Client, killed: &Killed, limit: Duration) -> Result<Pod> {
    wait::until(
        &format!(
            "the operator back after the kill of {}/{} (container {})",
            killed.namespace, killed.pod, killed.container_id
        ),
        limit,
        Duration::from_millis(500),
        || async move {
            let pod = current(client).await.map_err(|e| e.to_string())?;
            let id = host::container_id(&pod, CONTAINER).unwrap_or_default();
            let ready = replicas::is_ready(&pod);
            if !id.is_empty() && id != killed.container_id && ready {
                Ok(Some(pod))
            } else {
                Err(format!(
                    "pod {} container {id:?}, ready {ready}",
                    pod.name_any()
                ))
            }
        },
    )
    .await
}
