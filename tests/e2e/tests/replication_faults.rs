//! Issue 14's long fault cases on the real local cluster (docs/replication.md section 10, `make
//! faults` and `make e2e`), each on a factor-3 store of 3 shards of its own, with the three client
//! pods of `e2e::replication_suite` (load, history checked by Porcupine, screen) run through it:
//!
//! 6. a shard leader's pod cut off the network (iptables drop rules inside its network
//!    namespace, loopback exempt) for about 10 s while the clients keep writing through the other
//!    pods, then restored: another copy is elected in a later term, and the cut copy is back in
//!    sync; a client that retries within 5 s fails nothing;
//! 7. the operator SIGKILLed (a) right after a shard leader's kill -9, during the failover, under
//!    a client that retries within 5 s, and (b) during a roll to a retagged image, once
//!    `status.roll` has a pod in flight, under kvclient's default retries: the restarted
//!    operator takes over, and the roll still replaces every pod, one copy of a shard at a time;
//! 8. a leader that cannot come back (what a lost node looks like on a one-node cluster): its node
//!    cordoned, its pod deleted, the replacement Pending for 60 s while the shard serves from the
//!    other two copies, then the node uncordoned; the pod schedules and catches up. A client with
//!    the default retries fails nothing. The node is uncordoned whatever happens.
//!
//! Each case prints one `REPLICATION case=<n> ...` line. Needs root on the cluster's node (kill -9
//! and iptables in a pod's network namespace), `/usr/sbin/iptables` and `/usr/bin/nsenter` there,
//! and the Go toolchain (the checker).

use std::time::{Duration, Instant};

use e2e::cordon::Cordon;
use e2e::netcut::NetCut;
use e2e::operator_pod::{self, Killed};
use e2e::replicas::{Incarnation, Leader};
use e2e::replication_suite::{
    DEFAULT_RETRIES, FACTOR, KVSERVER, LONG, RETRY_WITHIN, SHARDS, STORE, Suite, kill9,
    on_a_new_store, shard_view,
};
use e2e::{Error, Result, check, cluster, pods, replicas, rolls, stores, wait};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use operator::KVStore;

/// Case 6's client: retries within 5 s as in cases 1 and 3, each attempt bounded by 2 s
/// (kvclient's default; the load pods' is 5 s). A request sent to the cut-off leader gets no
/// answer at all, and an attempt as long as the budget could never be retried on another copy.
const RETRY_WITHIN_2S_ATTEMPTS: [&str; 4] = ["--retry-within", "5s", "--timeout", "2"];
/// How long the leader stays cut off (at least; the checks during the cut may take longer).
const CUT_FOR: Duration = Duration::from_secs(10);
/// How long case 8's replacement pod must stay Pending.
const PENDING_FOR: Duration = Duration::from_secs(60);

/// Case 6: shard 0's leader cut off the network for ~10 s, then restored.
async fn case6_leader_cut_off(s: &Suite<'_>) -> Result<()> {
    const SHARD: u32 = 0;
    let ns = s.ns;
    let old = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    let running = s.start(6, &RETRY_WITHIN_2S_ATTEMPTS).await?;
    let pod = ns.api::<Pod>().get(&old.pod).await?;
    let before = replicas::incarnation(ns, &old.pod).await?;
    let started = Instant::now();
    let cut = NetCut::cut(&pod, KVSERVER).await?;
    let during = async {
        // Proof that the rules took: the node no longer reaches the pod.
        let answer = s.probe.status(&pod).await;
        check(answer.is_err(), || {
            format!("{} still answers through the cut: {answer:?}", old.pod)
        })?;
        let next = s.next_leader(SHARD, &old).await?;
        check(next.pod != old.pod, || {
            format!("the cut-off {} leads again in term {}", old.pod, next.term)
        })?;
        tokio::time::sleep(CUT_FOR.saturating_sub(started.elapsed())).await;
        Ok::<_, Error>(next)
    }
    .await;
    // Healed whatever the checks said, before their verdict.
    let healed = cut.heal().await;
    let cut_secs = started.elapsed().as_secs_f64();
    let next = during?;
    healed?;
    let after = s.settled().await?;
    let view = shard_view(&after, SHARD)?;
    let back = view
        .status_of(&old.pod)
        .ok_or_else(|| Error::Check(format!("no status of {} after the heal", old.pod)))?;
    let restarted = replicas::incarnation(ns, &old.pod).await? != before;
    s.finish(
        running,
        &[SHARD],
        &format!(
            "shard {SHARD}'s leader {} (term {}) cut off for {cut_secs:.1}s (iptables drop in its \
             network namespace); elected {} (term {}); after the heal {} is {:?} in term {}, \
             applied {:?}, kvserver restarted meanwhile: {restarted}; leader once in sync: {}",
            old.pod,
            old.term,
            next.pod,
            next.term,
            old.pod,
            back.state,
            back.term,
            back.applied,
            view.leader.pod
        ),
    )
    .await
    .map(drop)
}

/// Waits until `status.replication` names `leader` as `shard`'s leader.
async fn wait_status_names_leader(s: &Suite<'_>, shard: u32, leader: &str) -> Result<()> {
    let api = replicas::kvstore_api(s.ns);
    wait::until(
        &format!("status.replication to name {leader} as shard {shard}'s leader"),
        LONG,
        Duration::from_secs(1),
        || {
            let api = api.clone();
            async move {
                let object = api.get(STORE).await.map_err(|e| e.to_string())?;
                let named = replicas::replication_of(&object)
                    .map_err(|e| e.to_string())?
                    .and_then(|r| r.shards.into_iter().find(|x| x.shard == shard))
                    .and_then(|x| x.leader);
                if named.as_deref() == Some(leader) {
                    Ok(Some(()))
                } else {
                    Err(format!("it names {named:?}"))
                }
            }
        },
    )
    .await
}

/// Case 7a: kill -9 of shard 2's leader, then at once of the operator: the shard elects on its
/// own, and the restarted operator finds the new leader; the retrying client fails nothing.
async fn case7_operator_killed_in_failover(s: &Suite<'_>) -> Result<()> {
    const SHARD: u32 = 2;
    let ns = s.ns;
    let old = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    let running = s.start(7, &RETRY_WITHIN).await?;
    let before = replicas::incarnation(ns, &old.pod).await?;
    let pids = kill9(ns, &old.pod).await?;
    let operator = operator_pod::kill9(&ns.client).await?;
    let next = s.next_leader(SHARD, &old).await?;
    operator_pod::wait_back(&ns.client, &operator, LONG).await?;
    replicas::wait_replaced(ns, &old.pod, &before, LONG).await?;
    let after = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    // The dead operator's last status named the old leader: the new one must have looked.
    wait_status_names_leader(s, SHARD, &after.pod).await?;
    s.finish(
        running,
        &[SHARD],
        &format!(
            "kill -9 of kvserver {pids:?} in shard {SHARD}'s leader {} (term {}), then of the \
             operator {:?} {:?} in {}/{}; elected {} (term {}); the restarted operator names \
             leader {}{}",
            old.pod,
            old.term,
            operator.pids,
            operator.comms,
            operator.namespace,
            operator.pod,
            next.pod,
            next.term,
            after.pod,
            if after.pod == old.pod {
                " (the old leader again: status not proven fresh)"
            } else {
                ""
            }
        ),
    )
    .await
    .map(drop)
}

fn roll_pods(kvs: &KVStore) -> Option<Vec<String>> {
    kvs.status.as_ref().and_then(|s| s.roll.as_ref()).map(|r| {
        r.pods
            .iter()
            .map(|p| format!("{}:{:?}", p.pod, p.step))
            .collect()
    })
}

/// Once `status.roll` has a pod in flight, SIGKILLs the operator and waits for it to be back;
/// answers what was killed and the pods in flight at the kill.
async fn kill_operator_mid_roll(s: &Suite<'_>) -> Result<(Killed, Vec<String>)> {
    let ns = s.ns;
    stores::wait_until(ns, STORE, "status.roll with a pod in flight", LONG, |kvs| {
        roll_pods(kvs).is_some_and(|p| !p.is_empty())
    })
    .await?;
    let operator = operator_pod::kill9(&ns.client).await?;
    // Read after the kill: no operator writes status now, so this is the roll it left (its
    // pods may be between two steps, but the roll must still be under way).
    let left = roll_pods(&ns.api::<KVStore>().get(STORE).await?).ok_or_else(|| {
        Error::Check("the operator was killed after the roll was over (status.roll cleared)".into())
    })?;
    operator_pod::wait_back(&ns.client, &operator, LONG).await?;
    Ok((operator, left))
}

/// Case 7b: a roll to a retagged image with the operator SIGKILLed while a pod is in flight:
/// the restarted operator resumes from `status.roll`; every pod is replaced, never two copies
/// of a shard out at once; a client with the default retries fails nothing.
async fn case7_operator_killed_in_roll(s: &Suite<'_>) -> Result<()> {
    let ns = s.ns;
    s.settled().await?;
    let before = replicas::copy_pods(ns, STORE).await?;
    let image = cluster::retag(&cluster::image("kvserver"), "e2e-roll-opkill")?;
    let running = s.start(7, &DEFAULT_RETRIES).await?;
    let patch = serde_json::json!({ "spec": { "image": image } });
    replicas::kvstore_api(ns)
        .patch(STORE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let (roll, (operator, in_flight)) = tokio::try_join!(
        rolls::watch(ns, STORE, &before, (SHARDS, FACTOR), &image, LONG * 2),
        kill_operator_mid_roll(s),
    )?;
    stores::wait_until(ns, STORE, "status.roll cleared", LONG, |kvs| {
        kvs.status.as_ref().is_some_and(|st| st.roll.is_none())
    })
    .await?;
    s.settled().await?;
    for shard in 0..SHARDS {
        let most = roll.most_out.get(&shard).copied().unwrap_or_default();
        let replaced = roll.order.get(&shard).map_or(0, Vec::len);
        check(most <= 1 && replaced == FACTOR as usize, || {
            format!(
                "shard {shard}: {replaced} pods replaced, at most {most} copies out at once: \
                 {roll:?}"
            )
        })?;
    }
    s.finish(
        running,
        &[],
        &format!(
            "spec.image -> {image}; operator {:?} {:?} in {}/{} SIGKILLed with {in_flight:?} in \
             flight; {} pods rolled in {:.1}s, at most one copy of a shard out, order {:?}",
            operator.pids,
            operator.comms,
            operator.namespace,
            operator.pod,
            before.len(),
            roll.took.as_secs_f64(),
            roll.order
        ),
    )
    .await
    .map(drop)
}

/// What case 8 saw while the node was cordoned.
struct KeptOut {
    elected: Leader,
    leader_at_end: Leader,
    unschedulable: String,
}

fn phase_and_node(pod: &Pod) -> (String, Option<String>) {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    (phase, node)
}

/// Deletes `old`'s pod (its node is cordoned), waits for the shard's next leader and for the
/// replacement pod, and requires that pod to stay Pending, unscheduled, for [`PENDING_FOR`].
async fn kept_pending(
    s: &Suite<'_>,
    shard: u32,
    old: &Leader,
    before: &Incarnation,
) -> Result<KeptOut> {
    let ns = s.ns;
    let api = ns.api::<Pod>();
    pods::delete(ns, &old.pod).await?;
    let elected = s.next_leader(shard, old).await?;
    let replacement = wait::until(
        &format!("a replacement pod {} (the old one gone)", old.pod),
        LONG,
        Duration::from_millis(500),
        || {
            let api = api.clone();
            async move {
                let pod = api.get_opt(&old.pod).await.map_err(|e| e.to_string())?;
                match pod.and_then(|p| p.uid()) {
                    Some(uid) if uid != before.uid => Ok(Some(uid)),
                    uid => Err(format!("pod uid {uid:?}")),
                }
            }
        },
    )
    .await?;
    let started = Instant::now();
    let mut unschedulable = String::new();
    while started.elapsed() < PENDING_FOR {
        let pod = api.get(&old.pod).await?;
        let (phase, node) = phase_and_node(&pod);
        let uid = pod.uid().unwrap_or_default();
        check(
            uid == replacement && phase == "Pending" && node.is_none(),
            || {
                format!(
                    "{:.0}s into the window, pod {} (uid {uid}, replacement {replacement}) is \
                     {phase} on {node:?}, not Pending unscheduled",
                    started.elapsed().as_secs_f64(),
                    old.pod
                )
            },
        )?;
        unschedulable = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let leader_at_end = s
        .probe
        .leaders(ns)
        .await?
        .get(&shard)
        .cloned()
        .ok_or_else(|| {
            Error::Check(format!("shard {shard} has no leader after {PENDING_FOR:?}"))
        })?;
    check(
        leader_at_end.pod != old.pod && leader_at_end.term >= elected.term,
        || {
            format!(
                "shard {shard}'s leader after the window: {leader_at_end:?}, elected {elected:?}"
            )
        },
    )?;
    Ok(KeptOut {
        elected,
        leader_at_end,
        unschedulable,
    })
}

/// Case 8: shard 1's leader cannot come back for 60 s (its node cordoned, its pod deleted).
async fn case8_leader_cannot_return(s: &Suite<'_>) -> Result<()> {
    const SHARD: u32 = 1;
    let ns = s.ns;
    let old = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    let running = s.start(8, &DEFAULT_RETRIES).await?;
    let pod = ns.api::<Pod>().get(&old.pod).await?;
    let (_, node) = phase_and_node(&pod);
    let node = node.ok_or_else(|| Error::Check(format!("pod {} is on no node", old.pod)))?;
    let before = replicas::incarnation(ns, &old.pod).await?;
    let cordon = Cordon::node(&ns.client, &node).await?;
    let kept = kept_pending(s, SHARD, &old, &before).await;
    // Uncordoned whatever the window showed, before its verdict.
    let released = cordon.release().await;
    let kept = kept?;
    released?;
    let uncordoned = Instant::now();
    replicas::wait_replaced(ns, &old.pod, &before, LONG).await?;
    let ready_secs = uncordoned.elapsed().as_secs_f64();
    let after = shard_view(&s.settled().await?, SHARD)?.leader.clone();
    s.finish(
        running,
        &[SHARD],
        &format!(
            "node {node} cordoned, shard {SHARD}'s leader {} (term {}) deleted; elected {} (term \
             {}); the replacement Pending for {}s ({}), leader at its end {} (term {}); \
             uncordoned: Ready after {ready_secs:.1}s; leader once in sync: {}",
            old.pod,
            old.term,
            kept.elected.pod,
            kept.elected.term,
            PENDING_FOR.as_secs(),
            kept.unschedulable,
            kept.leader_at_end.pod,
            kept.leader_at_end.term,
            after.pod
        ),
    )
    .await
    .map(drop)
}

/// Case 6 (make faults): a leader cut off the network, then restored.
#[tokio::test]
async fn replicated_store_keeps_every_write_through_a_leader_cut_off() -> Result<()> {
    on_a_new_store("repl-netcut", async |suite: &Suite<'_>| {
        case6_leader_cut_off(suite).await
    })
    .await
}

/// Case 7a (make faults): the operator killed during a leader's failover.
#[tokio::test]
async fn replicated_store_keeps_every_write_when_the_operator_dies_in_a_failover() -> Result<()> {
    on_a_new_store("repl-opkill", async |suite: &Suite<'_>| {
        case7_operator_killed_in_failover(suite).await
    })
    .await
}

/// Case 7b (make faults): the operator killed during a roll.
#[tokio::test]
async fn replicated_store_keeps_every_write_when_the_operator_dies_in_a_roll() -> Result<()> {
    on_a_new_store("repl-opkill-roll", async |suite: &Suite<'_>| {
        case7_operator_killed_in_roll(suite).await
    })
    .await
}

/// Case 8 (make faults): a leader that cannot come back for 60 s. Runs last in this file (test
/// names run in order): a node left cordoned would hold every later pod Pending.
#[tokio::test]
async fn replicated_store_keeps_every_write_while_a_leader_cannot_return() -> Result<()> {
    on_a_new_store("repl-cordon", async |suite: &Suite<'_>| {
        case8_leader_cannot_return(suite).await
    })
    .await
}
