//! Issue 15 on the local cluster of several nodes (`KVSTORE_NODES=3 make cluster-up`; run by
//! `KVSTORE_NODES=3 E2E_SUITES=nodes tests/e2e/run.sh`): shards spread over the nodes, and a
//! node lost for good with one copy per shard. The suite needs that cluster and fails loudly
//! on a cluster of one node.

use std::time::Duration;

use e2e::namespace::TestNamespace;
use e2e::{Error, Result, check, cluster, host, stores};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use operator::status::Phase;

const STORE: &str = "kv";
const SHARDS: i32 = 3;
const LONG: Duration = Duration::from_secs(300);

/// The node count the cluster was started with; at least 3, or the suite cannot run.
fn nodes() -> Result<u32> {
    let n: u32 = std::env::var("KVSTORE_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    check(n >= 3, || {
        format!("needs the cluster of 3 nodes (KVSTORE_NODES=3 make cluster-up); KVSTORE_NODES={n}")
    })?;
    Ok(n)
}

async fn run_script(script: &'static str, args: Vec<String>) -> Result<()> {
    tokio::task::spawn_blocking(move || host::run_script(script, &args))
        .await
        .map_err(|e| Error::Check(format!("{script}: {e}")))?
}

/// With one copy per shard, a node deleted for good takes that shard's only volume: the store
/// is Degraded/ShardVolumeLost naming the shard, and the operator deletes no claim. The node is
/// then restored and the shard serves its data again.
#[tokio::test]
async fn a_node_lost_for_good_is_reported_naming_its_shard_and_nothing_is_deleted() -> Result<()> {
    host::require_root()?;
    nodes()?;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "nodes-lost").await?;
    ns.run(|| async {
        stores::create(&ns, &stores::kvstore(STORE, SHARDS, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, STORE, Phase::Available, SHARDS, LONG).await?;
        let pods = stores::shard_pods(&ns, STORE).await?;
        let placed: Vec<(String, String)> = pods
            .iter()
            .map(|p| {
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                (p.name_any(), node)
            })
            .collect();
        eprintln!("shards on nodes: {placed:?}");
        let mut distinct: Vec<&String> = placed.iter().map(|(_, n)| n).collect();
        distinct.sort();
        distinct.dedup();
        check(distinct.len() == SHARDS as usize, || {
            format!("shards are not spread over the nodes: {placed:?}")
        })?;
        // A shard on a node other than node 1 (which runs the control plane's kube-proxy).
        let (victim, node) = placed
            .iter()
            .find_map(|(pod, node)| {
                let n: u32 = node.rsplit_once("-")?.1.parse().ok()?;
                (n > 1).then(|| (pod.clone(), n))
            })
            .ok_or_else(|| Error::Check(format!("no shard off node 1: {placed:?}")))?;
        let pod = pods.iter().find(|p| p.name_any() == victim).cloned();
        let pids = host::pod_pids(&pod.ok_or_else(|| Error::Check("victim pod".into()))?)?;
        let mut args = vec!["--node".to_owned(), node.to_string()];
        args.extend(pids.iter().map(u32::to_string));
        run_script("tests/cluster/lose-node.sh", args).await?;

        let reported = async {
            let what = format!("Degraded/ShardVolumeLost naming {victim}");
            let kvs = stores::wait_until(&ns, STORE, &what, LONG, |kvs| {
                kvs.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Degraded"
                            && c.status == "True"
                            && c.reason == "ShardVolumeLost"
                            && c.message.contains(&victim)
                    })
                })
            })
            .await?;
            let claims = ns.api::<PersistentVolumeClaim>();
            for i in 0..SHARDS {
                let claim = format!("data-{STORE}-{i}");
                check(claims.get_opt(&claim).await?.is_some(), || {
                    format!("claim {claim} was deleted")
                })?;
            }
            Ok::<_, Error>(kvs)
        }
        .await;
        // Whatever was seen, the node comes back for the tests after this one.
        let restored = run_script(
            "tests/cluster/lose-node.sh",
            vec!["--restore".into(), "--node".into(), node.to_string()],
        )
        .await;
        let kvs = reported?;
        restored?;
        eprintln!("status while node {node} was gone: {:?}", kvs.status);
        stores::wait_phase(&ns, STORE, Phase::Available, SHARDS, LONG).await?;
        Ok(())
    })
    .await
}
