//! Issue 14 on the real local cluster (docs/replication.md section 10): one KVStore with
//! `spec.replication.factor: 3` and 3 shards (9 kvserver pods), and on it, in sequence:
//!
//! 0. the store forms: 3 copies per shard on the pods the contract names, one leader each,
//!    every copy in sync, `status.replication` healthy, `x-kv-leader` on every copy's answers;
//! 1. kill -9 of a shard leader's kvserver, under a client that retries within 5 s;
//! 2. `kubectl delete pod` of a leader (it hands leadership over first), under a client with
//!    kvclient's default retries;
//! 3. kill -9 of a follower, then a follower whose PVC and pod are deleted (rebuilt from its
//!    peers with a new node ID), under a client that retries within 5 s;
//! 4. a rolling upgrade: `spec.image` changed to a retagged image; the operator replaces every
//!    pod, one copy of a shard at a time and its leader last, under the default retries;
//! 5. `kubectl scale` 3 → 5 → 2 shards, under a client with the default retries (on a store
//!    of its own).
//!
//! Each case runs three client pods through it, all with the case's retry flags:
//! `kvclient load --kvstore` (3 000 keys of its own, 8 workers, half writes), which reads back
//! every key at the end (0 lost, 0 wrong, 0 stale, and 0 failed requests); a history client (4
//! workers racing reads, writes and compare-and-sets on 6 hot keys spread over every shard)
//! whose history the Porcupine checker must find linearizable; and the topology-following
//! screen over a–z, which must show nothing but hits. Each case prints one
//! `REPLICATION case=<n> ...` line (appended to `$FAULTS_SUMMARY` when set).
//!
//! Cases 0–2 and 4 share one store and run in `make test`; cases 3 and 5 each have a store of
//! their own and run in `make faults` and `make e2e`. Needs root on the cluster's node (kill -9
//! of a container's process) and the Go toolchain (the checker).

use std::collections::{BTreeMap, BTreeSet};

use e2e::replication_suite::{
    DEFAULT_RETRIES, FACTOR, LONG, NO_RETRY, RETRY_WITHIN, SHARDS, STORE, Suite, kill9,
    on_a_new_store, shard_view, topology,
};
use e2e::{Error, Result, check, cluster, pods, replicas, rolls, shard_http, stores, wait};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use operator::status::Phase;
use std::time::Duration;

/// Case 0: the store forms as the contract says; a load with no fault and no retry fails nothing.
async fn case0_the_store_forms(s: &Suite<'_>) -> Result<()> {
    let ns = s.ns;
    let shards = s.settled().await?;
    let copies = replicas::copy_pods(ns, STORE).await?;
    let names: Vec<String> = copies.iter().map(replicas::CopyPod::name).collect();
    let want: Vec<String> = (0..SHARDS)
        .flat_map(|i| (0..FACTOR).map(move |k| replicas::pod_name(STORE, k, i)))
        .collect();
    check(names == want, || {
        format!("the store's pods are {names:?}, not {want:?}")
    })?;
    for c in &copies {
        let label = c.pod.labels().get(stores::COPY_LABEL).cloned();
        let want_label = (c.copy > 0).then(|| c.copy.to_string());
        let owner: Vec<String> = c
            .pod
            .owner_references()
            .iter()
            .map(|o| o.name.clone())
            .collect();
        let want_owner = match c.copy {
            0 => STORE.to_owned(),
            k => format!("{STORE}-r{k}"),
        };
        let claims: Vec<String> = c
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|p| p.claim_name.clone())
            })
            .collect();
        let own_claim = format!("data-{}", c.name());
        check(
            label == want_label && owner == [want_owner.clone()] && claims.contains(&own_claim),
            || {
                format!(
                    "pod {}: label {}={label:?} (want {want_label:?}), owners {owner:?} (want \
                     {want_owner}), claims {claims:?} (want {own_claim})",
                    c.name(),
                    stores::COPY_LABEL
                )
            },
        )?;
    }
    let book: Vec<String> = stores::shard_pods(ns, STORE)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let want_book: Vec<String> = (0..SHARDS).map(|i| format!("{STORE}-{i}")).collect();
    check(book == want_book, || {
        format!("the shard pods (copy 0) listed are {book:?}, not {want_book:?}")
    })?;
    let pvcs: Vec<String> = stores::pvcs(ns, STORE)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    check(pvcs.len() == SHARDS as usize, || {
        format!("the shard PVCs (copy 0) listed are {pvcs:?}")
    })?;

    // status.replication names the leaders the copies report, and every copy's answers carry
    // the leader (the store is idle and healthy: no election is expected meanwhile). Each copy
    // is asked for a key of its own shard, so that no cross-shard forward answers instead.
    let topology = topology(ns).await?;
    let probes: Vec<String> = (0..SHARDS)
        .map(|i| shard_http::keys_owned_by(&topology, i, "probe-", 1).concat())
        .collect();
    let api = replicas::kvstore_api(ns);
    let copies_ref = &copies;
    let probes_ref = &probes;
    let leaders = wait::until(
        "status.replication and x-kv-leader to name the leaders the copies report",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let api = api.clone();
            async move {
                let raft = s.probe.leaders(ns).await.map_err(|e| e.to_string())?;
                let object = api.get(STORE).await.map_err(|e| e.to_string())?;
                let status = replicas::replication_of(&object)
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                let mut seen = BTreeMap::new();
                for shard in 0..SHARDS {
                    let leader = raft.get(&shard).map(|l| l.pod.clone());
                    let in_status = status
                        .shards
                        .iter()
                        .find(|x| x.shard == shard)
                        .and_then(|x| x.leader.clone());
                    if leader.is_none() || in_status != leader {
                        return Err(format!(
                            "shard {shard}: raft {leader:?}, status {in_status:?}"
                        ));
                    }
                    for c in copies_ref.iter().filter(|c| c.shard == shard) {
                        let named = s
                            .probe
                            .leader_named_by(&c.pod, &probes_ref[shard as usize])
                            .await
                            .map_err(|e| e.to_string())?;
                        if named != leader {
                            return Err(format!("{} answers x-kv-leader {named:?}", c.name()));
                        }
                    }
                    seen.insert(shard, leader.unwrap_or_default());
                }
                Ok(Some(seen))
            }
        },
    )
    .await?;
    let terms: Vec<u64> = shards.values().map(|v| v.leader.term).collect();
    let running = s.start(0, &NO_RETRY).await?;
    s.finish(
        running,
        &[],
        &format!(
            "formed: {} pods, leaders {leaders:?} (terms {terms:?}); no fault, no retry",
            copies.len()
        ),
    )
    .await
    .map(drop)
}

/// Case 1: kill -9 of shard 1's leader: another copy is elected, the killed one restarts on its
/// volume and catches up; the retrying client fails nothing.
async fn case1_leader_kill9(s: &Suite<'_>) -> Result<()> {
    const SHARD: u32 = 1;
    let ns = s.ns;
    let old = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    let running = s.start(1, &RETRY_WITHIN).await?;
    let before = replicas::incarnation(ns, &old.pod).await?;
    let pids = kill9(ns, &old.pod).await?;
    let next = s.next_leader(SHARD, &old).await?;
    replicas::wait_replaced(ns, &old.pod, &before, LONG).await?;
    let after = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    s.finish(
        running,
        &[SHARD],
        &format!(
            "kill -9 of kvserver {pids:?} in shard {SHARD}'s leader {} (term {}); elected {} \
             (term {}); leader once in sync: {}",
            old.pod, old.term, next.pod, next.term, after.pod
        ),
    )
    .await
    .map(drop)
}

/// Case 2: `kubectl delete pod` of shard 2's leader: it hands leadership over before it stops, a
/// new pod takes its volume and catches up; a client with the default retries fails nothing.
async fn case2_leader_pod_deleted(s: &Suite<'_>) -> Result<()> {
    const SHARD: u32 = 2;
    let ns = s.ns;
    let old = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    let running = s.start(2, &DEFAULT_RETRIES).await?;
    let before = replicas::incarnation(ns, &old.pod).await?;
    pods::delete(ns, &old.pod).await?;
    let next = s.next_leader(SHARD, &old).await?;
    let now = replicas::wait_replaced(ns, &old.pod, &before, LONG).await?;
    check(now.uid != before.uid, || {
        format!("pod {} was not replaced (uid {})", old.pod, now.uid)
    })?;
    s.settled().await?;
    s.finish(
        running,
        &[SHARD],
        &format!(
            "deleted pod {} (shard {SHARD}'s leader, term {}); leader after it: {} (term {})",
            old.pod, old.term, next.pod, next.term
        ),
    )
    .await
    .map(drop)
}

/// Case 3: kill -9 of a follower of shard 0 (it restarts on its volume and catches up), then a
/// follower of shard 1 (copy ≥ 1) loses its PVC and pod: the new pod starts on an empty volume
/// with a new node ID, is rebuilt from its peers and replaces the old ID in the membership.
async fn case3_follower_faults(s: &Suite<'_>) -> Result<()> {
    let ns = s.ns;
    let shards = s.settled().await?;
    let killed = shard_view(&shards, 0)?
        .followers()
        .next()
        .map(|(c, _)| c.name())
        .ok_or_else(|| Error::Check("shard 0 has no follower".into()))?;
    let (lost, old_id) = shard_view(&shards, 1)?
        .followers()
        .find(|(c, _)| c.copy >= 1)
        .map(|(c, st)| (c.name(), st.node_id))
        .ok_or_else(|| Error::Check("shard 1 has no follower of copy >= 1".into()))?;
    let claim = format!("data-{lost}");
    let pvcs = ns.api::<PersistentVolumeClaim>();
    let old_claim_uid = pvcs.get(&claim).await?.uid();

    let running = s.start(3, &RETRY_WITHIN).await?;
    let before = replicas::incarnation(ns, &killed).await?;
    let pids = kill9(ns, &killed).await?;
    replicas::wait_replaced(ns, &killed, &before, LONG).await?;
    s.probe.wait_leaders(ns, SHARDS, FACTOR, LONG).await?;

    let before = replicas::incarnation(ns, &lost).await?;
    // As `kubectl delete pvc --wait=false` then `kubectl delete pod`: the claim goes with the pod.
    pvcs.delete(&claim, &DeleteParams::default()).await?;
    pods::delete(ns, &lost).await?;
    replicas::wait_replaced(ns, &lost, &before, LONG).await?;
    let new_claim_uid = pvcs.get(&claim).await?.uid();
    check(new_claim_uid != old_claim_uid, || {
        format!("{claim} was not replaced (uid {new_claim_uid:?})")
    })?;
    let after = s.settled().await?;
    let new_id = shard_view(&after, 1)?
        .status_of(&lost)
        .map(|st| st.node_id)
        .ok_or_else(|| Error::Check(format!("no status of {lost}")))?;
    check(new_id != old_id, || {
        format!("{lost} on a new volume kept node ID {old_id}")
    })?;
    s.finish(
        running,
        &[0, 1],
        &format!(
            "kill -9 of kvserver {pids:?} in follower {killed} (shard 0); follower {lost} \
             (shard 1) lost {claim} and its pod: rebuilt as node {new_id} (was {old_id}), in sync"
        ),
    )
    .await
    .map(drop)
}

/// Case 4: a rolling upgrade of every pod: `spec.image` changed to a retagged image. The
/// operator rolls each shard one copy at a time, followers first, and hands leadership over
/// before the old leader goes; a client with the default retries fails nothing.
async fn case4_rolling_upgrade(s: &Suite<'_>) -> Result<()> {
    let ns = s.ns;
    let leaders: BTreeMap<u32, String> = s
        .settled()
        .await?
        .iter()
        .map(|(shard, v)| (*shard, v.leader.pod.clone()))
        .collect();
    let before = replicas::copy_pods(ns, STORE).await?;
    let image = cluster::retag(&cluster::image("kvserver"), "e2e-roll")?;
    let running = s.start(4, &DEFAULT_RETRIES).await?;
    let patch = serde_json::json!({ "spec": { "image": image } });
    replicas::kvstore_api(ns)
        .patch(STORE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let roll = rolls::watch(ns, STORE, &before, (SHARDS, FACTOR), &image, LONG * 2).await?;
    stores::wait_until(ns, STORE, "status.roll cleared", LONG, |kvs| {
        kvs.status.as_ref().is_some_and(|st| st.roll.is_none())
    })
    .await?;
    let after = s.settled().await?;
    for (shard, most) in &roll.most_out {
        check(*most <= 1, || {
            format!("shard {shard} had {most} copies out at once during the roll: {roll:?}")
        })?;
    }
    for (shard, leader) in &leaders {
        let order = roll.order.get(shard).cloned().unwrap_or_default();
        let leader_last = order.len() == FACTOR as usize && order.last() == Some(leader);
        check(leader_last, || {
            format!(
                "shard {shard}: pods replaced in the order {order:?}, its leader {leader} not last"
            )
        })?;
    }
    let new_leaders: BTreeMap<u32, String> = after
        .iter()
        .map(|(shard, v)| (*shard, v.leader.pod.clone()))
        .collect();
    s.finish(
        running,
        &[],
        &format!(
            "spec.image -> {image}: {} pods rolled in {:.1}s, at most one copy of a shard out, \
             order {:?}; leaders before {leaders:?}, after {new_leaders:?}",
            before.len(),
            roll.took.as_secs_f64(),
            roll.order
        ),
    )
    .await
    .map(drop)
}

/// Case 5: `kubectl scale` 3 → 5 → 2 shards under load: keys move between replicated shards
/// (each shard's leader takes the moves, every copy applies them), the new shards' copies form
/// their groups, the drained shards' copies and every one of their claims go; a client with the
/// default retries fails nothing.
async fn case5_scale(s: &Suite<'_>) -> Result<()> {
    let ns = s.ns;
    s.settled().await?;
    let running = s.start(5, &DEFAULT_RETRIES).await?;
    let mut steps = Vec::new();
    for shards in [5u32, 2] {
        let started = std::time::Instant::now();
        let n = i32::try_from(shards).map_err(|e| Error::Check(e.to_string()))?;
        stores::scale(ns, STORE, n).await?;
        stores::wait_phase(ns, STORE, Phase::Available, n, LONG).await?;
        let available = started.elapsed().as_secs_f64();
        s.settled_at(shards).await?;
        steps.push(format!(
            "to {shards}: Available in {available:.1}s, in sync in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    }
    let report = s.finish(running, &[], &steps.join("; ")).await?;
    let prefix = format!("data-{STORE}-");
    let claims: BTreeSet<String> = ns
        .api::<PersistentVolumeClaim>()
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|p| p.name_any())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let want: BTreeSet<String> = (0..FACTOR)
        .flat_map(|k| (0..2).map(move |i| format!("data-{}", replicas::pod_name(STORE, k, i))))
        .collect();
    check(claims == want, || {
        format!("after 5 -> 2 the claims are {claims:?}, want {want:?}")
    })?;
    check(report.verify.keys_checked > 0, || {
        "the load read nothing back".to_owned()
    })
}

/// Cases 0–2 and 4 (make test): the store forms, a leader killed, a leader's pod deleted, then
/// every pod rolled to a new image.
#[tokio::test]
async fn replicated_store_keeps_every_write_through_leader_faults() -> Result<()> {
    on_a_new_store("replication", async |suite: &Suite<'_>| {
        case0_the_store_forms(suite).await?;
        case1_leader_kill9(suite).await?;
        case2_leader_pod_deleted(suite).await?;
        case4_rolling_upgrade(suite).await
    })
    .await
}

/// Case 3 (make faults): a follower killed, and a follower rebuilt from its peers.
#[tokio::test]
async fn replicated_store_keeps_every_write_through_follower_faults() -> Result<()> {
    on_a_new_store("replication-followers", async |suite: &Suite<'_>| {
        case3_follower_faults(suite).await
    })
    .await
}

/// Case 5 (make faults): the shard count changed under load, 3 → 5 → 2.
#[tokio::test]
async fn replicated_store_keeps_every_write_through_rescaling() -> Result<()> {
    on_a_new_store("replication-scale", async |suite: &Suite<'_>| {
        case5_scale(suite).await
    })
    .await
}
