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
use std::path::PathBuf;
use std::time::Duration;

use e2e::load::{self, Load, LoadReport, LoadSpec};
use e2e::namespace::TestNamespace;
use e2e::pods::LogCapture;
use e2e::replicas::{self, Leader, RaftProbe, ShardRaft};
use e2e::screen::rounds;
use e2e::summary::record;
use e2e::{
    Error, Result, check, cluster, host, linearizability, pods, rolls, shard_http, stores, wait,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kvproto::topology::Topology;
use operator::status::Phase;

const STORE: &str = "kv";
const SHARDS: u32 = 3;
const FACTOR: u32 = 3;
const LONG: Duration = Duration::from_secs(300);
/// Load before the fault, so it hits a store under way, and after recovery, so the recovered
/// shard also takes writes before the read-back.
const BEFORE_FAULT: Duration = Duration::from_secs(8);
const AFTER_RECOVERY: Duration = Duration::from_secs(8);
/// The client of cases 1 and 3: it may retry, for 5 s after each request's first attempt.
const RETRY_WITHIN: [&str; 2] = ["--retry-within", "5s"];
/// The client of case 0: one attempt per request, no retry of any kind.
const NO_RETRY: [&str; 2] = ["--retries", "0"];
/// The client of case 2: kvclient's default retries (a few attempts, moving to another copy),
/// what a user's client does (docs/replication.md section 10); no time budget.
const DEFAULT_RETRIES: [&str; 0] = [];
const HOT_KEYS: u32 = 6;
const KVSERVER: &str = operator::labels::KVSERVER_CONTAINER;

/// What every case shares.
struct Suite<'a> {
    ns: &'a TestNamespace,
    account: &'a str,
    probe: RaftProbe,
    checker: PathBuf,
}

/// The client pods of a case.
struct Running {
    case: u32,
    load: Load,
    history: Load,
    screen: LogCapture,
}

/// Starts the topology-following screen `screen-<case>` (a–z, a round a second) with the
/// client retry flags `retry`, and waits until it sees all 26 keys.
async fn start_screen(
    ns: &TestNamespace,
    account: &str,
    case: u32,
    retry: &[&str],
) -> Result<LogCapture> {
    let name = format!("screen-{case}");
    let mut args = vec!["--kvstore", STORE, "--interval", "1"];
    args.extend_from_slice(retry);
    let pod = pods::client_pod(&name, &cluster::image("kvclient"), &args, Some(account))?;
    pods::start(ns, &pod).await?;
    let capture = LogCapture::start(ns, &name).await?;
    pods::wait_for_log(
        ns,
        &name,
        "the screen to see 26 hits",
        Duration::from_secs(120),
        |log| rounds(log).iter().any(|r| r.hits == 26),
    )
    .await?;
    Ok(capture)
}

/// Stops the screen of `case`; answers its rounds from the first with 26 hits on, and those
/// that show anything but hits (`.` unreachable, a digit for an HTTP error, `m`/`w` a miss,
/// `x` a wrong value).
async fn stop_screen(
    ns: &TestNamespace,
    case: u32,
    screen: LogCapture,
) -> Result<(usize, Vec<String>)> {
    pods::stop(ns, &format!("screen-{case}"), 1).await?;
    let log = screen.finish(Duration::from_secs(60)).await?;
    let all = rounds(&log);
    let first_full = all.iter().position(|r| r.hits == 26).unwrap_or(all.len());
    let after = &all[first_full..];
    let bad = after
        .iter()
        .filter(|r| r.letters.chars().any(|c| c != 'h'))
        .map(|r| r.letters.clone())
        .collect();
    Ok((after.len(), bad))
}

impl Suite<'_> {
    /// Starts case `case`'s load (its own keys `c<case>-`) and history client with the client
    /// retry flags `retry`, waits for the prefill, and lets them run for a while.
    async fn start(&self, case: u32, retry: &[&str]) -> Result<Running> {
        let ns = self.ns;
        let spec = LoadSpec {
            keys: 3000,
            concurrency: 8,
            write_ratio: 0.5,
        };
        let screen = start_screen(ns, self.account, case, retry).await?;
        let load = load::start_with(
            ns,
            &format!("load-{case}"),
            STORE,
            self.account,
            spec,
            &format!("c{case}-"),
            retry,
        )
        .await?;
        let topology = topology(ns).await?;
        let prefix = linearizability::hot_prefix(&topology, &format!("h{case}-"), HOT_KEYS)?;
        let hot = HOT_KEYS.to_string();
        let mut args = vec![
            "--hot-keys",
            &hot,
            "--cas-ratio",
            "0.3",
            "--history",
            "/dev/stdout",
        ];
        args.extend_from_slice(retry);
        let history_spec = LoadSpec {
            keys: 1,
            concurrency: 4,
            write_ratio: 0.5,
        };
        let history = load::start_with(
            ns,
            &format!("hist-{case}"),
            STORE,
            self.account,
            history_spec,
            &prefix,
            &args,
        )
        .await?;
        load.wait_prefilled(ns, STORE).await?;
        tokio::time::sleep(BEFORE_FAULT).await;
        Ok(Running {
            case,
            load,
            history,
            screen,
        })
    }

    /// Lets the load run on the recovered store, stops both pods (each reads back what it
    /// wrote), checks the history, prints the case's line, and requires 0 failed requests.
    /// `faulted`: the shards the fault hit, whose longest write gap is the line's `gap_ms`.
    async fn finish(&self, running: Running, faulted: &[u32], note: &str) -> Result<LoadReport> {
        let ns = self.ns;
        let case = running.case;
        tokio::time::sleep(AFTER_RECOVERY).await;
        let (report, (history_report, log), (screen_rounds, screen_bad)) = tokio::try_join!(
            running.load.stop(ns),
            running.history.stop_with_log(ns),
            stop_screen(ns, case, running.screen)
        )?;
        // The line is printed whatever the verdict, so a failing case still shows its figures.
        let (ops, verdict) = match linearizability::extract(&log) {
            Ok(history) => {
                let ops = history.lines().count();
                let checker = self.checker.clone();
                let name = format!("{}-case{case}", ns.name);
                let verdict = tokio::task::spawn_blocking(move || {
                    linearizability::check(&checker, &name, &history)
                })
                .await
                .map_err(|e| Error::Check(format!("the checker's thread: {e}")))
                .and_then(|v| v);
                (ops, verdict)
            }
            Err(e) => (0, Err(e)),
        };
        let gap = if faulted.is_empty() {
            report.write_gap_max_ms
        } else {
            faulted
                .iter()
                .filter_map(|s| report.write_gap_ms_by_shard.get(&s.to_string()))
                .fold(0.0, |a: f64, b| a.max(*b))
        };
        let v = &report.verify;
        record(&format!(
            "REPLICATION case={case} requests={} errors={} retries={} p99_ms={:.1} max_ms={:.1} \
             gap_ms={gap:.0} lost={} wrong={} stale={} keys={} unknown_writes={} \
             history_ops={ops} history_errors={} history={} screen_rounds={screen_rounds} \
             screen_bad={}; {note}",
            report.requests,
            report.errors,
            report.retries,
            report.p99_ms,
            report.max_ms,
            v.lost,
            v.wrong,
            v.stale_reads,
            v.keys_checked,
            report.unknown_outcome_writes,
            history_report.errors,
            match &verdict {
                Ok(v) => v.label(),
                Err(_) => "NOT-linearizable",
            },
            screen_bad.len(),
        ))?;
        eprintln!("checker: {}", verdict?.into_result()?);
        check(report.errors == 0, || {
            format!(
                "case {case}: {} requests failed ({:?}): {report:?}",
                report.errors, report.errors_by_letter
            )
        })?;
        check(screen_bad.is_empty(), || {
            format!("case {case}: screen rounds other than all hits: {screen_bad:?}")
        })?;
        Ok(report)
    }

    /// The shards, once every one has one leader and all copies in sync, and the operator
    /// says so too.
    async fn settled(&self) -> Result<BTreeMap<u32, ShardRaft>> {
        self.settled_at(SHARDS).await
    }

    /// [`Self::settled`] for a store of `shards` shards.
    async fn settled_at(&self, shards: u32) -> Result<BTreeMap<u32, ShardRaft>> {
        let views = self
            .probe
            .wait_leaders(self.ns, shards, FACTOR, LONG)
            .await?;
        replicas::wait_replication_healthy(self.ns, STORE, shards, FACTOR, LONG).await?;
        Ok(views)
    }

    /// Waits until `shard` has a leader in a later term than `old` (an election happened).
    async fn next_leader(&self, shard: u32, old: &Leader) -> Result<Leader> {
        wait::until(
            &format!(
                "shard {shard} to elect a leader after {} (term {})",
                old.pod, old.term
            ),
            LONG,
            Duration::from_millis(200),
            || async move {
                let leaders = self
                    .probe
                    .leaders(self.ns)
                    .await
                    .map_err(|e| e.to_string())?;
                match leaders.get(&shard) {
                    Some(l) if l.term > old.term => Ok(Some(l.clone())),
                    other => Err(format!("leader {other:?}")),
                }
            },
        )
        .await
    }
}

/// The store's topology, as shard 0's copy 0 holds it.
async fn topology(ns: &TestNamespace) -> Result<Topology> {
    shard_http::shards(ns, STORE)
        .await?
        .first()
        .ok_or_else(|| Error::Check("no shard pod with an IP".into()))?
        .topology()
        .await
}

fn shard_view(shards: &BTreeMap<u32, ShardRaft>, shard: u32) -> Result<&ShardRaft> {
    shards
        .get(&shard)
        .ok_or_else(|| Error::Check(format!("no view of shard {shard}")))
}

/// SIGKILLs the kvserver process of pod `name` (found by its container's cgroup on the node).
async fn kill9(ns: &TestNamespace, name: &str) -> Result<Vec<u32>> {
    let pod = ns.api::<Pod>().get(name).await?;
    let pids = host::container_pids(&pod, KVSERVER)?;
    let comms: Vec<String> = pids.iter().map(|&p| host::comm(p)).collect();
    check(comms.iter().all(|c| c == "kvserver"), || {
        format!("the kvserver container of {name} runs {comms:?}, not only kvserver")
    })?;
    host::sigkill(&pids)?;
    Ok(pids)
}

/// Creates the store and waits for the operator to make its admin token and the copies'
/// StatefulSets (failing early, with the reason, when the installed operator does not
/// replicate).
async fn create_store(ns: &TestNamespace) -> Result<()> {
    replicas::create(ns, STORE, SHARDS as i32, FACTOR).await?;
    let copies: Vec<String> = (1..FACTOR).map(|k| format!("{STORE}-r{k}")).collect();
    wait::until(
        &format!("the operator to create StatefulSets {copies:?}"),
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            let copies = &copies;
            async move {
                let mut missing = Vec::new();
                if stores::admin_token(ns, STORE).await.is_err() {
                    missing.push(operator::labels::token_secret(STORE));
                }
                for name in copies {
                    if stores::statefulset(ns, name)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_none()
                    {
                        missing.push(name.clone());
                    }
                }
                if missing.is_empty() {
                    Ok(Some(()))
                } else {
                    Err(format!("missing {missing:?}"))
                }
            }
        },
    )
    .await
}

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

/// Runs `cases` in order on one new factor-3 store (each case starts from a settled store).
async fn on_a_new_store<F>(ns_name: &str, cases: F) -> Result<()>
where
    F: AsyncFnOnce(&Suite<'_>) -> Result<()>,
{
    host::require_root()?;
    let checker = tokio::task::spawn_blocking(linearizability::build_checker)
        .await
        .map_err(|e| Error::Check(format!("building the checker: {e}")))??;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, ns_name).await?;
    ns.run(|| async {
        create_store(&ns).await?;
        let account = pods::follower_account(&ns).await?;
        let suite = Suite {
            ns: &ns,
            account,
            probe: RaftProbe::new(&ns, STORE).await?,
            checker,
        };
        cases(&suite).await
    })
    .await
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
