//! A namespace per test, so tests never see each other's objects. On failure it prints pods,
//! events, KVStores and the logs of every container, then the namespace is deleted.

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::{Client, ResourceExt};
use rand::Rng;

use crate::Result;
use operator::KVStore;

pub struct TestNamespace {
    pub client: Client,
    pub name: String,
    created: std::time::Instant,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let suffix: u32 = rand::rng().random_range(0..1_000_000);
        let name = format!("e2e-{prefix}-{suffix:06}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": name, "labels": { "kvstore.dev/e2e": "true" } }
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(TestNamespace {
            client: client.clone(),
            name,
            created: std::time::Instant::now(),
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Prints everything useful for a post-mortem.
    pub async fn dump(&self) {
        eprintln!("----- state of namespace {} -----", self.name);
        if let Ok(list) = self.api::<KVStore>().list(&ListParams::default()).await {
            for kvs in list {
                eprintln!(
                    "kvstore {}: spec.replicas={} status={}",
                    kvs.name_any(),
                    kvs.spec.replicas,
                    serde_json::to_string(&kvs.status).unwrap_or_default()
                );
            }
        }
        let pods = self.api::<Pod>();
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for pod in list {
                let status = pod.status.clone().unwrap_or_default();
                eprintln!("pod {} phase={:?}", pod.name_any(), status.phase);
                for cs in status.container_statuses.unwrap_or_default() {
                    eprintln!(
                        "  container {} ready={} restarts={} state={:?}",
                        cs.name, cs.ready, cs.restart_count, cs.state
                    );
                }
                let params = LogParams {
                    tail_lines: Some(40),
                    ..LogParams::default()
                };
                if let Ok(log) = pods.logs(&pod.name_any(), &params).await {
                    for line in log.lines() {
                        eprintln!("  | {line}");
                    }
                }
            }
        }
        if let Ok(list) = self.api::<Event>().list(&ListParams::default()).await {
            for ev in list.items.iter().rev().take(40) {
                eprintln!(
                    "event {} {}/{}: {}",
                    ev.reason.clone().unwrap_or_default(),
                    ev.involved_object.kind.clone().unwrap_or_default(),
                    ev.involved_object.name.clone().unwrap_or_default(),
                    ev.message.clone().unwrap_or_default()
                );
            }
        }
        eprintln!("----- end of namespace {} -----", self.name);
    }

    /// Deletes the namespace (and so everything in it).
    pub async fn delete(&self) -> Result<()> {
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await?;
        Ok(())
    }

    /// Runs a test body; dumps the namespace when it fails; deletes the namespace either way
    /// unless `E2E_KEEP=1`.
    pub async fn run<F, Fut>(&self, body: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let outcome = body().await;
        if outcome.is_err() {
            self.dump().await;
        }
        if std::env::var("E2E_KEEP").as_deref() != Ok("1") {
            let _ = self.delete().await;
        }
        self.record_time(outcome.is_ok());
        outcome
    }

    /// Appends "test  seconds  ok|failed" to `$E2E_TIMINGS`, if set (tests/e2e/run.sh prints
    /// them: the CI budget is planned from these). libtest names each test's thread after it.
    fn record_time(&self, ok: bool) {
        use std::io::Write;
        let Some(path) = std::env::var_os("E2E_TIMINGS") else {
            return;
        };
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let line = format!(
            "{test}\t{:.0}\t{}\n",
            self.created.elapsed().as_secs_f64(),
            if ok { "ok" } else { "failed" }
        );
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }
}
