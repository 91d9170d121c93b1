//! Issue 5 on the real cluster: the chapter's experiments, run by the operator.
//! Needs a cluster with the operator installed from its chart and the project's images; without
//! one every test fails with instructions.

use std::time::Duration;

use e2e::namespace::TestNamespace;
use e2e::screen::rounds;
use e2e::{Result, check, cluster, pods, stores};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use operator::KVStore;
use operator::status::Phase;

const STARTUP: Duration = Duration::from_secs(300);

fn ready_since(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// The chapter in order: sequential creation, the client, deleting a pod, stopping and restarting.
#[tokio::test]
async fn book_experiments_on_the_operator() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "book").await?;
    ns.run(|| async {
        stores::create(&ns, &stores::kvstore("server", 3, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, "server", Phase::Available, 3, STARTUP).await?;

        // Sequential creation: 0 became ready before 1, and 1 before 2.
        let shard_pods = stores::shard_pods(&ns, "server").await?;
        let names: Vec<String> = shard_pods.iter().map(|p| p.name_any()).collect();
        check(names == ["server-0", "server-1", "server-2"], || {
            format!("pods {names:?}")
        })?;
        let ready: Vec<_> = shard_pods.iter().map(ready_since).collect();
        check(ready.iter().all(Option::is_some), || {
            format!("not all ready: {ready:?}")
        })?;
        check(ready.windows(2).all(|w| w[0] <= w[1]), || {
            format!("ready out of order: {ready:?}")
        })?;
        let pvcs = stores::pvcs(&ns, "server").await?;
        let bound = pvcs
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            .count();
        check(pvcs.len() == 3 && bound == 3, || {
            format!("{bound} of {} PVCs bound", pvcs.len())
        })?;

        // The book's client reaches every key: first round writes, then 26 hits.
        let args = [
            "server-0.server,server-1.server,server-2.server",
            "--interval",
            "1",
        ];
        let pod = pods::client_pod("client", &cluster::image("kvclient"), &args, None)?;
        pods::start(&ns, &pod).await?;
        pods::wait_for_log(&ns, "client", "26 hits", Duration::from_secs(120), |log| {
            rounds(log).iter().any(|r| r.hits == 26)
        })
        .await?;

        // Deleting a pod: it drains (5), disappears (.), and comes back with its data (h).
        let before = rounds(&pods::logs(&ns.api::<Pod>(), "client").await?).len();
        pods::delete(&ns, "server-1").await?;
        let log = pods::wait_for_log(
            &ns,
            "client",
            "5, then ., then 26 hits again",
            STARTUP,
            |log| {
                let after = &rounds(log)[before.min(rounds(log).len())..];
                let drained = after.iter().position(|r| r.letters.contains('5'));
                let gone = after.iter().position(|r| r.letters.contains('.'));
                let back = after.iter().rposition(|r| r.hits == 26);
                matches!((drained, gone, back), (Some(d), Some(g), Some(b)) if d <= g && g < b)
            },
        )
        .await?;
        let after = &rounds(&log)[before..];
        check(after.iter().all(|r| !r.letters.contains('w')), || {
            "a key had to be rewritten after the pod came back".into()
        })?;

        // Stop the store (replicas 0) and start it again: every key is still there.
        stores::scale(&ns, "server", 0).await?;
        stores::wait_phase(&ns, "server", Phase::Stopped, 3, STARTUP).await?;
        e2e::wait::until(
            "every shard pod to stop",
            STARTUP,
            Duration::from_secs(1),
            || {
                let ns = &ns;
                async move {
                    let left = stores::shard_pods(ns, "server")
                        .await
                        .map_err(|e| e.to_string())?;
                    if left.is_empty() {
                        Ok(Some(()))
                    } else {
                        Err(format!("{} shard pods still running", left.len()))
                    }
                }
            },
        )
        .await?;
        check(stores::pvcs(&ns, "server").await?.len() == 3, || {
            "PVCs were not kept while stopped".into()
        })?;
        let stopped_at = rounds(&pods::logs(&ns.api::<Pod>(), "client").await?).len();
        stores::scale(&ns, "server", 3).await?;
        stores::wait_phase(&ns, "server", Phase::Available, 3, STARTUP).await?;
        let log = pods::wait_for_log(
            &ns,
            "client",
            "26 hits after the restart",
            Duration::from_secs(120),
            |log| {
                rounds(log)[stopped_at.min(rounds(log).len())..]
                    .iter()
                    .any(|r| r.hits == 26)
            },
        )
        .await?;
        let since_stop = &rounds(&log)[stopped_at..];
        check(since_stop.iter().all(|r| !r.letters.contains('w')), || {
            format!("keys were lost across the stop: {since_stop:?}")
        })?;
        Ok(())
    })
    .await
}

async fn gone<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    e2e::wait::until(
        &format!("{name} to be garbage-collected"),
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            let api = api.clone();
            async move {
                match api.get_opt(name).await.map_err(|e| e.to_string())? {
                    None => Ok(Some(())),
                    Some(_) => Err("still there".to_owned()),
                }
            }
        },
    )
    .await
}

/// Deleting a KVStore removes its children; its volumes follow storage.retentionPolicy.
#[tokio::test]
async fn deletion_collects_children_and_honours_the_pvc_policy() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "gc").await?;
    ns.run(|| async {
        let keep = stores::kvstore("keep", 1, serde_json::json!({}))?;
        let drop = stores::kvstore(
            "drop",
            1,
            serde_json::json!({ "storage": { "size": "64Mi", "retentionPolicy": "Delete" } }),
        )?;
        stores::create(&ns, &keep).await?;
        stores::create(&ns, &drop).await?;
        stores::wait_phase(&ns, "keep", Phase::Available, 1, STARTUP).await?;
        stores::wait_phase(&ns, "drop", Phase::Available, 1, STARTUP).await?;
        for name in ["keep", "drop"] {
            ns.api::<KVStore>()
                .delete(name, &DeleteParams::foreground())
                .await?;
        }
        for name in ["keep", "drop"] {
            gone(&ns.api::<KVStore>(), name).await?;
            gone(&ns.api::<StatefulSet>(), name).await?;
            gone(&ns.api::<Service>(), name).await?;
            gone(&ns.api::<PodDisruptionBudget>(), name).await?;
            gone(&ns.api::<Secret>(), &format!("{name}-admin-token")).await?;
        }
        check(stores::pvcs(&ns, "keep").await?.len() == 1, || {
            "Retain policy lost the PVC".into()
        })?;
        gone(
            &ns.api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(),
            "data-drop-0",
        )
        .await?;
        Ok(())
    })
    .await
}

/// A spec the schema accepts but the operator cannot honour is reported, without a crash.
#[tokio::test]
async fn invalid_spec_is_degraded_not_a_crash() -> Result<()> {
    let client = cluster::connect().await?;
    let operators: Api<Pod> = Api::all(client.clone());
    let selector = ListParams::default().labels("app.kubernetes.io/name=kvstore-operator");
    let restarts = |pods: Vec<Pod>| -> i32 {
        pods.iter()
            .flat_map(|p| {
                p.status
                    .clone()
                    .and_then(|s| s.container_statuses)
                    .unwrap_or_default()
            })
            .map(|c| c.restart_count)
            .sum()
    };
    let before = operators.list(&selector).await?.items;
    check(!before.is_empty(), || {
        "no operator pod found (label app.kubernetes.io/name=kvstore-operator)".into()
    })?;
    let restarts_before = restarts(before);
    let ns = TestNamespace::create(&client, "invalid").await?;
    ns.run(|| async {
        let bad = stores::kvstore(
            "bad",
            1,
            serde_json::json!({ "podOverrides": { "labels": { "app.kubernetes.io/instance": "hijack" } } }),
        )?;
        stores::create(&ns, &bad).await?;
        let kvs = stores::wait_condition(&ns, "bad", "Degraded", "True", Duration::from_secs(60)).await?;
        let message = kvs
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Degraded"))
            .map(|c| c.message)
            .unwrap_or_default();
        check(message.contains("app.kubernetes.io/instance"), || format!("Degraded message does not say why: {message}"))?;
        check(stores::statefulset(&ns, "bad").await?.is_none(), || "an invalid store got a StatefulSet".into())?;
        let after = restarts(operators.list(&selector).await?.items);
        check(after == restarts_before, || format!("operator restarted: {restarts_before} -> {after}"))?;
        Ok(())
    })
    .await
}
