//! A node cordoned for a test (`spec.unschedulable: true`, as `kubectl cordon`), and always
//! uncordoned after it: by [`Cordon::release`], which reports errors, or else when the guard is
//! dropped (best effort), since the suites after this one run on the same cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::{Error, Result, check, wait};

/// A cordoned node, uncordoned when released or dropped.
pub struct Cordon {
    client: Client,
    node: String,
    released: bool,
}

fn schedulable(node: &Node) -> bool {
    !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// Sets `spec.unschedulable` (`None` removes it, as `kubectl uncordon` does).
async fn set(client: &Client, node: &str, unschedulable: Option<bool>) -> Result<Node> {
    let patch = serde_json::json!({ "spec": { "unschedulable": unschedulable } });
    Ok(Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

impl Cordon {
    /// Cordons `node`; refuses a node already cordoned (it is not ours to uncordon after).
    pub async fn node(client: &Client, node: &str) -> Result<Cordon> {
        let now = Api::<Node>::all(client.clone()).get(node).await?;
        check(schedulable(&now), || {
            format!("node {node} is already cordoned: uncordon it first (kubectl uncordon {node})")
        })?;
        let cordon = Cordon {
            client: client.clone(),
            node: node.to_owned(),
            released: false,
        };
        let after = set(client, node, Some(true)).await?;
        check(!schedulable(&after), || {
            format!("node {node} is still schedulable after the cordon")
        })?;
        Ok(cordon)
    }

    pub fn name(&self) -> &str {
        &self.node
    }

    /// Uncordons the node, retrying for a minute; the guard is then done.
    pub async fn release(mut self) -> Result<()> {
        let (client, node) = (&self.client, self.node.as_str());
        wait::until(
            &format!("node {node} uncordoned"),
            Duration::from_secs(60),
            Duration::from_secs(1),
            || async move {
                match set(client, node, None).await {
                    Ok(n) if schedulable(&n) => Ok(Some(())),
                    Ok(_) => Err("still unschedulable".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        self.released = true;
        Ok(())
    }
}

impl Drop for Cordon {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Drop cannot await, and the test's client is bound to its (blocked) runtime: a thread
        // with a runtime and a client of its own uncordons.
        let node = self.node.clone();
        let done = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = Client::try_default()
                    .await
                    .map_err(|e| Error::NoCluster(e.to_string()))?;
                set(&client, &node, None).await.map(drop)
            })
        })
        .join();
        match done {
            Ok(Ok(())) => eprintln!("cordon: uncordoned node {} on drop", self.node),
            Ok(Err(e)) => eprintln!(
                "cordon: could not uncordon node {} (run kubectl uncordon {}): {e}",
                self.node, self.node
            ),
            Err(_) => eprintln!(
                "cordon: the uncordon thread panicked (run kubectl uncordon {})",
                self.node
            ),
        }
    }
}
