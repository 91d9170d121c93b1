//! Client pods: the book-mode and topology-following kvclient, run where the servers are.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};

use crate::namespace::TestNamespace;
use crate::{Result, wait};

/// A pod running one container of `image` with `args`, as non-root with nothing writable but /tmp.
pub fn client_pod(
    name: &str,
    image: &str,
    args: &[&str],
    service_account: Option<&str>,
) -> Result<Pod> {
    let mut spec = serde_json::json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
        "containers": [{
            "name": "client",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": args,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"] }
            }
        }]
    });
    if let Some(sa) = service_account {
        spec["serviceAccountName"] = serde_json::Value::from(sa);
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/name": "kvclient" } },
        "spec": spec,
    }))?)
}

/// Creates the pod and waits until its container has started.
pub async fn start(ns: &TestNamespace, pod: &Pod) -> Result<()> {
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), pod).await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    wait::until(
        &format!("pod {name} to start"),
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let pods = pods.clone();
            let name = name.clone();
            async move {
                let p = pods.get(&name).await.map_err(|e| e.to_string())?;
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                match phase.as_str() {
                    "Running" | "Succeeded" | "Failed" => Ok(Some(())),
                    other => Err(format!("phase {other}")),
                }
            }
        },
    )
    .await
}

/// The whole log of a pod's only container.
pub async fn logs(pods: &Api<Pod>, name: &str) -> Result<String> {
    Ok(pods.logs(name, &LogParams::default()).await?)
}

/// Waits until the pod's log satisfies `done`, returning the log.
pub async fn wait_for_log(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String> {
    let pods = ns.api::<Pod>();
    wait::until(what, limit, Duration::from_secs(1), || {
        let pods = pods.clone();
        let done = &done;
        async move {
            let log = logs(&pods, name).await.map_err(|e| e.to_string())?;
            if done(&log) {
                Ok(Some(log))
            } else {
                Err(log.lines().rev().take(3).collect::<Vec<_>>().join(" / "))
            }
        }
    })
    .await
}

/// Waits until the pod has exited, returning its exit code and log.
pub async fn wait_for_exit(
    ns: &TestNamespace,
    name: &str,
    limit: Duration,
) -> Result<(i32, String)> {
    let pods = ns.api::<Pod>();
    let code = wait::until(
        &format!("pod {name} to finish"),
        limit,
        Duration::from_secs(2),
        || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.map_err(|e| e.to_string())?;
                let terminated = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .and_then(|cs| cs.into_iter().next())
                    .and_then(|c| c.state)
                    .and_then(|st| st.terminated);
                match terminated {
                    Some(t) => Ok(Some(t.exit_code)),
                    None => Err("still running".to_owned()),
                }
            }
        },
    )
    .await?;
    Ok((code, logs(&pods, name).await?))
}

/// Deletes a pod without waiting.
pub async fn delete(ns: &TestNamespace, name: &str) -> Result<()> {
    ns.api::<Pod>()
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}
