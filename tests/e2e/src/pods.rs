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

/// Deletes a pod without waiting.
pub async fn delete(ns: &TestNamespace, name: &str) -> Result<()> {
    ns.api::<Pod>()
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Creates a ServiceAccount `kvclient` allowed to read KVStores, for topology-following clients.
pub async fn follower_account(ns: &TestNamespace) -> Result<&'static str> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let name = "kvclient";
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name }
    }))?;
    let role: Role = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": name },
        "rules": [{ "apiGroups": ["kvstore.dev"], "resources": ["kvstores"], "verbs": ["get", "list", "watch"] }]
    }))?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": ns.name }]
    }))?;
    let pp = PostParams::default();
    ns.api::<ServiceAccount>().create(&pp, &sa).await?;
    ns.api::<Role>().create(&pp, &role).await?;
    ns.api::<RoleBinding>().create(&pp, &binding).await?;
    Ok(name)
}

/// Follows a pod's log from the start, so nothing is lost when the pod goes away.
pub struct LogCapture {
    task: tokio::task::JoinHandle<String>,
}

impl LogCapture {
    pub async fn start(ns: &TestNamespace, name: &str) -> Result<Self> {
        use futures::{AsyncBufReadExt, TryStreamExt};
        let params = LogParams {
            follow: true,
            ..LogParams::default()
        };
        let stream = ns.api::<Pod>().log_stream(name, &params).await?;
        let task = tokio::spawn(async move {
            let mut text = String::new();
            let mut lines = stream.lines();
            while let Ok(Some(line)) = lines.try_next().await {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        Ok(LogCapture { task })
    }

    /// Waits for the log to end (the container exited), for at most `limit`.
    pub async fn finish(self, limit: Duration) -> Result<String> {
        match tokio::time::timeout(limit, self.task).await {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(crate::Error::Check(format!("log capture failed: {e}"))),
            Err(_) => Err(crate::Error::Timeout {
                what: "the pod's log to end".into(),
                secs: limit.as_secs(),
                last: String::new(),
            }),
        }
    }
}

/// Asks a pod to stop (SIGTERM, with `grace` seconds before SIGKILL).
pub async fn stop(ns: &TestNamespace, name: &str, grace: u32) -> Result<()> {
    let dp = DeleteParams {
        grace_period_seconds: Some(grace),
        ..DeleteParams::default()
    };
    ns.api::<Pod>().delete(name, &dp).await?;
    Ok(())
}
