//! Issue 8, fault injection on the real local cluster (`make faults`): every case runs the
//! topology-following load generator (`kvclient load --kvstore`, 3 000 keys, 8 workers, half
//! writes) in a client pod, injects one fault, waits for the store to recover, then stops the
//! load, which reads back every key: no acknowledged write may be lost or changed. Failed
//! requests during the fault are allowed and reported.
//!
//! Cases: kill -9 of a kvserver; a kvserver pod deleted; a node-level crash of every kvserver pod
//! (with kubelet and containerd); the operator killed in the copy phase of a rebalance; one
//! shard's disk full. Each prints one `FAULTS <case>: ...` line (appended to `$FAULTS_SUMMARY`
//! when set). They need root on the cluster's node (host processes, tmpfs mounts); see
//! docs/faults.md.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::load::{self, Load, LoadReport, LoadSpec};
use e2e::namespace::TestNamespace;
use e2e::shard_http::{self, Shard};
use e2e::summary::record;
use e2e::volumes::{self, TmpfsVolumes};
use e2e::{Error, Result, check, cluster, host, pods, stores, wait};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use operator::KVStore;
use operator::rebalance::hooks::COPY_BATCH_PAUSE;
use operator::status::Phase;

const STORE: &str = "kv";
const SHARDS: i32 = 3;
const LONG: Duration = Duration::from_secs(300);
/// Load before the fault, so it hits a store under way, and after recovery, so the recovered
/// store also takes writes before the read-back.
const BEFORE_FAULT: Duration = Duration::from_secs(8);
const AFTER_RECOVERY: Duration = Duration::from_secs(8);
const OPERATOR_NS: &str = "kvstore-system";

fn load_spec() -> LoadSpec {
    LoadSpec {
        keys: 3000,
        concurrency: 8,
        write_ratio: 0.5,
    }
}

/// A store of `SHARDS` shards (with `extra` spec fields), Available, with the load running and
/// its prefill done.
async fn store_under_load(ns: &TestNamespace, extra: serde_json::Value) -> Result<Load> {
    stores::create(ns, &stores::kvstore(STORE, SHARDS, extra)?).await?;
    stores::wait_phase(ns, STORE, Phase::Available, SHARDS, LONG).await?;
    let account = pods::follower_account(ns).await?;
    let load = load::start(ns, "load", STORE, account, load_spec()).await?;
    load.wait_prefilled(ns, STORE).await?;
    tokio::time::sleep(BEFORE_FAULT).await;
    Ok(load)
}

/// Stops the load, checks nothing acknowledged was lost, and records the case's line.
async fn finish(ns: &TestNamespace, case: &str, load: Load, note: &str) -> Result<LoadReport> {
    tokio::time::sleep(AFTER_RECOVERY).await;
    let report = load.stop(ns).await?;
    let mut line = load::summary(&report, case);
    if !note.is_empty() {
        line.push_str("; ");
        line.push_str(note);
    }
    record(&line)?;
    Ok(report)
}

async fn pod(ns: &TestNamespace, name: &str) -> Result<Pod> {
    Ok(ns.api::<Pod>().get(name).await?)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Each shard pod's current kvserver container ID (a restart or a new pod changes it).
async fn container_ids(ns: &TestNamespace) -> Result<BTreeMap<String, String>> {
    let mut ids = BTreeMap::new();
    for p in stores::shard_pods(ns, STORE).await? {
        ids.insert(p.name_any(), host::container_id(&p, "kvserver")?);
    }
    Ok(ids)
}

/// Waits until every pod in `before` runs a new kvserver container and is Ready again, then
/// until the store is Available with all shards.
async fn wait_restarted(ns: &TestNamespace, before: &BTreeMap<String, String>) -> Result<()> {
    wait::until(
        &format!("new, Ready kvserver containers in {:?}", before.keys()),
        LONG,
        Duration::from_millis(500),
        || async move {
            let mut waiting = Vec::new();
            for (name, old) in before {
                let p = pod(ns, name).await.map_err(|e| e.to_string())?;
                let id = host::container_id(&p, "kvserver").unwrap_or_default();
                if id.is_empty() || &id == old || !is_ready(&p) {
                    waiting.push(name.clone());
                }
            }
            if waiting.is_empty() {
                Ok(Some(()))
            } else {
                Err(format!("waiting for {waiting:?}"))
            }
        },
    )
    .await?;
    stores::wait_phase(ns, STORE, Phase::Available, SHARDS, LONG).await?;
    Ok(())
}

/// 1. kill -9 of one kvserver process under write load: the container restarts on its volume.
#[tokio::test]
async fn kill9_kvserver_under_load() -> Result<()> {
    host::require_root()?;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "faults-kill9").await?;
    ns.run(|| async {
        let load = store_under_load(&ns, serde_json::json!({})).await?;
        let victim = pod(&ns, &format!("{STORE}-1")).await?;
        let before =
            BTreeMap::from([(victim.name_any(), host::container_id(&victim, "kvserver")?)]);
        let pids = host::container_pids(&victim, "kvserver")?;
        let names: Vec<String> = pids.iter().map(|&p| host::comm(p)).collect();
        check(names.iter().all(|n| n == "kvserver"), || {
            format!("the container's processes are not all kvserver: {names:?}")
        })?;
        host::sigkill(&pids)?;
        wait_restarted(&ns, &before).await?;
        finish(
            &ns,
            "kill9_kvserver",
            load,
            &format!("SIGKILL of kvserver pid {pids:?} in {STORE}-1"),
        )
        .await
        .map(drop)
    })
    .await
}

/// 2. A kvserver pod deleted under load (`kubectl delete pod`: drain hook, SIGTERM, a new pod
/// on the same PVC).
#[tokio::test]
async fn kvserver_pod_deleted_under_load() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "faults-delete").await?;
    ns.run(|| async {
        let load = store_under_load(&ns, serde_json::json!({})).await?;
        let name = format!("{STORE}-2");
        let old_uid = pod(&ns, &name).await?.uid();
        let before = BTreeMap::from([(
            name.clone(),
            host::container_id(&pod(&ns, &name).await?, "kvserver")?,
        )]);
        pods::delete(&ns, &name).await?;
        wait_restarted(&ns, &before).await?;
        let new_uid = pod(&ns, &name).await?.uid();
        check(new_uid != old_uid, || {
            format!("pod {name} was not replaced (uid {new_uid:?})")
        })?;
        finish(&ns, "pod_deleted", load, &format!("deleted pod {name}"))
            .await
            .map(drop)
    })
    .await
}

/// 3. A node crash for the store: every process of every kvserver pod (sandboxes included),
/// kubelet and containerd are SIGKILLed in one kill(1); containerd and kubelet start again and
/// recreate the pods' sandboxes and containers on the same volumes.
#[tokio::test]
async fn node_crash_restarts_every_kvserver_pod() -> Result<()> {
    host::require_root()?;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "faults-node").await?;
    ns.run(|| async {
        let mut load = store_under_load(&ns, serde_json::json!({})).await?;
        let before = container_ids(&ns).await?;
        let mut pids = Vec::new();
        for p in stores::shard_pods(&ns, STORE).await? {
            pids.extend(host::pod_pids(&p)?);
        }
        let comms: Vec<String> = pids.iter().map(|&p| host::comm(p)).collect();
        let servers = comms.iter().filter(|c| *c == "kvserver").count();
        check(servers == SHARDS as usize, || {
            format!("expected {SHARDS} kvserver processes among {comms:?}")
        })?;
        let args: Vec<String> = pids.iter().map(u32::to_string).collect();
        // Blocking for a few seconds: off the test's runtime thread.
        tokio::task::spawn_blocking(move || {
            host::run_script("tests/cluster/restart-node.sh", &args)
        })
        .await
        .map_err(|e| Error::Check(format!("restart-node.sh: {e}")))??;
        wait_restarted(&ns, &before).await?;
        load.reattach(&ns).await?;
        finish(
            &ns,
            "node_crash",
            load,
            &format!(
                "SIGKILL of kubelet, containerd and {} pod processes ({comms:?})",
                pids.len()
            ),
        )
        .await
        .map(drop)
    })
    .await
}

/// The operator's pod (the chart runs one replica).
async fn operator_pod(client: &Client) -> Result<Pod> {
    let lp = ListParams::default().labels("app.kubernetes.io/name=kvstore-operator");
    let mut list = Api::<Pod>::namespaced(client.clone(), OPERATOR_NS)
        .list(&lp)
        .await?
        .items;
    list.retain(|p| p.metadata.deletion_timestamp.is_none());
    match list.len() {
        1 => Ok(list.remove(0)),
        n => Err(Error::Check(format!(
            "expected one operator pod in {OPERATOR_NS}, found {n}"
        ))),
    }
}

fn rebalance_phase(kvs: &KVStore) -> Option<String> {
    kvs.status
        .as_ref()
        .and_then(|s| s.rebalance.as_ref())
        .map(|r| format!("{:?}", r.phase))
}

/// 4. The operator is SIGKILLed while `status.rebalance` is in Copy (3 → 4 shards, load running):
/// the restarted operator resumes the rebalance and it converges.
#[tokio::test]
async fn operator_killed_during_copy() -> Result<()> {
    host::require_root()?;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "faults-operator").await?;
    ns.run(|| async {
        let load = store_under_load(&ns, serde_json::json!({})).await?;
        // Pace the copy so it is still running when the operator comes back.
        stores::annotate(&ns, STORE, COPY_BATCH_PAUSE, Some("2000")).await?;
        stores::scale(&ns, STORE, SHARDS + 1).await?;
        stores::wait_rebalance_phase(&ns, STORE, "Copy", LONG).await?;
        // Past the first paced batches (status counts keys only once the copy is done).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let op = operator_pod(&client).await?;
        let old = host::container_id(&op, "operator")?;
        let pids = host::container_pids(&op, "operator")?;
        host::sigkill(&pids)?;
        let at_kill = ns.api::<KVStore>().get(STORE).await?;
        let phase_at_kill = rebalance_phase(&at_kill);
        check(phase_at_kill.as_deref() == Some("Copy"), || {
            format!("the rebalance left Copy before the kill: {phase_at_kill:?}")
        })?;
        let progress_at_kill = at_kill
            .status
            .as_ref()
            .and_then(|s| s.rebalance.as_ref())
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .unwrap_or_default();
        wait::until(
            "a new, Ready operator container",
            LONG,
            Duration::from_millis(500),
            || {
                let client = client.clone();
                let old = old.clone();
                async move {
                    let p = operator_pod(&client).await.map_err(|e| e.to_string())?;
                    let id = host::container_id(&p, "operator").unwrap_or_default();
                    if !id.is_empty() && id != old && is_ready(&p) {
                        Ok(Some(()))
                    } else {
                        Err(format!("container {id:?}, ready {}", is_ready(&p)))
                    }
                }
            },
        )
        .await?;
        // The old process is gone, so whatever happens to the rebalance now is the new one's.
        let resumed_in = rebalance_phase(&ns.api::<KVStore>().get(STORE).await?);
        stores::annotate(&ns, STORE, COPY_BATCH_PAUSE, None).await?;
        let done = stores::wait_phase(&ns, STORE, Phase::Available, SHARDS + 1, LONG).await?;
        let epoch = done.status.and_then(|s| s.topology).map(|t| t.epoch);
        check(epoch == Some(2), || {
            format!("one rebalance should end at epoch 2, got {epoch:?}")
        })?;
        finish(
            &ns,
            "operator_killed_in_copy",
            load,
            &format!(
                "SIGKILL of operator pid {pids:?} in rebalance {progress_at_kill}; the new \
                 operator found the rebalance in {resumed_in:?} and converged to {} shards",
                SHARDS + 1
            ),
        )
        .await
        .map(drop)
    })
    .await
}

/// Puts `value` to each key at its owner; returns the keys acknowledged and the first refusal.
async fn put_until_refused(
    shard: &Shard,
    keys: &[String],
    value: &str,
) -> Result<(Vec<String>, Option<(u16, String)>)> {
    let mut acked = Vec::new();
    for key in keys {
        let (status, body) = shard.put(key, value).await?;
        if (200..300).contains(&status) {
            acked.push(key.clone());
        } else {
            return Ok((acked, Some((status, body))));
        }
    }
    Ok((acked, None))
}

/// 5. One shard's disk is full: its writes get 507 (or 503), its reads still work, the other
/// shards keep taking writes; once the space is freed writes work again, the shard survives a
/// restart (journal replay after the failed writes), and no acknowledged write is lost.
#[tokio::test]
async fn disk_full_on_one_shard() -> Result<()> {
    host::require_root()?;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "faults-diskfull").await?;
    let vols = TmpfsVolumes::create(&client, &ns.name, STORE, SHARDS as u32, 32).await?;
    let outcome = ns
        .run(|| async {
            let extra = serde_json::json!({
                "storage": { "size": "32Mi", "storageClassName": volumes::STORAGE_CLASS }
            });
            let load = store_under_load(&ns, extra).await?;
            let note = fill_and_recover(&ns, &vols).await?;
            finish(&ns, "disk_full", load, &note).await.map(drop)
        })
        .await;
    let cleaned = vols.teardown().await;
    outcome?;
    cleaned
}

/// The disk-full scenario proper; returns what it observed, for the summary line.
async fn fill_and_recover(ns: &TestNamespace, vols: &TmpfsVolumes) -> Result<String> {
    const FULL: u32 = 1;
    let shards = shard_http::shards(ns, STORE).await?;
    let topology = shards
        .first()
        .ok_or_else(|| Error::Check("no shard pods".into()))?
        .topology()
        .await?;
    let shard = |i: u32| {
        shards
            .iter()
            .find(|s| s.ordinal == i)
            .ok_or_else(|| Error::Check(format!("no shard {i}")))
    };
    let full = shard(FULL)?;
    let probes = shard_http::keys_owned_by(&topology, FULL, "probe-", 2000);
    let (before, refused) = put_until_refused(full, &probes[..5], "before").await?;
    check(refused.is_none() && before.len() == 5, || {
        format!("shard {FULL} refused writes before its disk was filled: {refused:?}")
    })?;

    let filled = vols.fill(FULL)?;
    // The server's open journal page may still take a few writes: write until it refuses.
    let (acked_full, refused) = put_until_refused(full, &probes[5..], "during").await?;
    let (status, body) = refused.ok_or_else(|| {
        Error::Check(format!(
            "shard {FULL} accepted {} writes on a full disk",
            acked_full.len()
        ))
    })?;
    check(status == 507 || status == 503, || {
        format!("a write to the full shard got {status} {body}, not 507/503")
    })?;
    check(status != 507 || body.contains("storage_full"), || {
        format!("a 507 that does not say storage_full: {body}")
    })?;
    // And keeps refusing while the disk is full.
    let mut refusals = vec![status];
    for key in &probes[probes.len() - 5..] {
        let (s, b) = full.put(key, "refused").await?;
        check(s == 507 || s == 503, || {
            format!("a write to the full shard got {s} {b}, not 507/503")
        })?;
        refusals.push(s);
    }
    // Reads of its keys still work.
    let prefilled = shard_http::keys_owned_by(&topology, FULL, load::PREFIX, 20);
    for key in &prefilled {
        let (s, b) = full.get(key).await?;
        check(s == 200, || {
            format!("reading {key} from the full shard got {s} {b}")
        })?;
    }
    // The other shards keep taking writes.
    for other in shards.iter().filter(|s| s.ordinal != FULL) {
        let keys = shard_http::keys_owned_by(&topology, other.ordinal, "other-", 5);
        let (acked, refused) = put_until_refused(other, &keys, "ok").await?;
        check(refused.is_none() && acked.len() == keys.len(), || {
            format!("shard {} refused a write: {refused:?}", other.ordinal)
        })?;
    }
    // The load keeps running against the full disk for a while.
    tokio::time::sleep(Duration::from_secs(5)).await;

    vols.free(FULL)?;
    let recovered_key = probes[probes.len() - 6].clone();
    let recovered_status = wait::until(
        "writes to the freed shard to work again",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let key = recovered_key.clone();
            async move {
                let (s, b) = full.put(&key, "after").await.map_err(|e| e.to_string())?;
                if (200..300).contains(&s) {
                    Ok(Some(s))
                } else {
                    Err(format!("{s} {b}"))
                }
            }
        },
    )
    .await?;

    // Restart the shard: its journal, written around the failed writes, must replay cleanly.
    let victim = pod(ns, &format!("{STORE}-{FULL}")).await?;
    let before_restart =
        BTreeMap::from([(victim.name_any(), host::container_id(&victim, "kvserver")?)]);
    host::sigkill(&host::container_pids(&victim, "kvserver")?)?;
    wait_restarted(ns, &before_restart).await?;

    // Every probe write acknowledged before and during the full disk reads back.
    let full = shard_http::shards(ns, STORE)
        .await?
        .into_iter()
        .find(|s| s.ordinal == FULL)
        .ok_or_else(|| Error::Check(format!("no shard {FULL} after the restart")))?;
    for (keys, value) in [(&before, "before"), (&acked_full, "during")] {
        for key in keys {
            let (s, b) = full.get(key).await?;
            check(s == 200 && b == value, || {
                format!("acknowledged probe {key}={value} reads back as {s} {b}")
            })?;
        }
    }
    let (s, b) = full.get(&recovered_key).await?;
    check(s == 200 && b == "after", || {
        format!("the write after recovery reads back as {s} {b}")
    })?;
    Ok(format!(
        "filled shard {FULL}'s 32 MiB tmpfs with {} KiB; {} more writes fit, then refusals \
         {refusals:?} (first: {status} {}); \
         reads and other shards OK; writes back after freeing ({recovered_status}); kill -9 + \
         journal replay OK",
        filled / 1024,
        acked_full.len(),
        body.trim()
    ))
}
