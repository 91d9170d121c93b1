//! Issue 6 on the real cluster: `kubectl scale` moves keys with no lost write, no wrong value,
//! no miss and no write freeze, also when the operator or a shard dies in the middle.
//!
//! Every scenario runs two clients the whole time: the topology-following book screen over a–z
//! (`kvclient --kvstore NAME`) and the load generator over 10 000 more keys, which verifies every
//! acknowledged write when it is stopped.

use std::time::Duration;

use e2e::namespace::TestNamespace;
use e2e::pods::LogCapture;
use e2e::screen::rounds;
use e2e::{Result, check, cluster, pods, stores};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use operator::rebalance::hooks::{COPY_BATCH_PAUSE, PAUSE_BEFORE_PHASE};
use operator::status::{Phase, RebalancePhase};

const STORE: &str = "rb";
const LONG: Duration = Duration::from_secs(600);

/// The two clients of a scenario.
struct Clients {
    follow: LogCapture,
    load: LogCapture,
}

async fn start_store_and_clients(ns: &TestNamespace, replicas: i32) -> Result<Clients> {
    start_store_with_spec_and_clients(ns, replicas, serde_json::json!({})).await
}

async fn start_store_with_spec_and_clients(
    ns: &TestNamespace,
    replicas: i32,
    extra_spec: serde_json::Value,
) -> Result<Clients> {
    stores::create(ns, &stores::kvstore(STORE, replicas, extra_spec)?).await?;
    stores::wait_phase(ns, STORE, Phase::Available, replicas, LONG).await?;
    let account = pods::follower_account(ns).await?;
    let image = cluster::image("kvclient");
    let follow = pods::client_pod(
        "follow",
        &image,
        &["--kvstore", STORE, "--interval", "1"],
        Some(account),
    )?;
    pods::start(ns, &follow).await?;
    let follow = LogCapture::start(ns, "follow").await?;
    let load_args = [
        "load",
        "--kvstore",
        STORE,
        "--keys",
        "10000",
        "--concurrency",
        "8",
        "--duration",
        "2h",
        "--write-ratio",
        "0.3",
        "--prefill",
        "--json",
        "--timeout",
        "5",
    ];
    let load = pods::client_pod("load", &image, &load_args, Some(account))?;
    pods::start(ns, &load).await?;
    let load = LogCapture::start(ns, "load").await?;
    // The follower has written a–z once and reads all 26 back.
    pods::wait_for_log(
        ns,
        "follow",
        "the follower to see 26 hits",
        Duration::from_secs(120),
        |log| rounds(log).iter().any(|r| r.hits == 26),
    )
    .await?;
    Ok(Clients { follow, load })
}

/// Stops both clients and checks the invariants. `tolerate_unreachable` allows `.` and HTTP
/// error digits (a shard pod was deleted or cut off); misses and wrong values are never allowed.
async fn stop_and_verify(
    ns: &TestNamespace,
    clients: Clients,
    tolerate_unreachable: bool,
) -> Result<()> {
    pods::stop(ns, "load", 120).await?;
    pods::stop(ns, "follow", 1).await?;
    let load_log = clients.load.finish(Duration::from_secs(180)).await?;
    let follow_log = clients.follow.finish(Duration::from_secs(60)).await?;

    let report_line = load_log
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let report: serde_json::Value = match report_line {
        Some(line) => serde_json::from_str(line)?,
        None => {
            return Err(e2e::Error::Check(format!(
                "the load generator printed no report:\n{load_log}"
            )));
        }
    };
    eprintln!("load report: {report}");
    for field in ["lost", "wrong", "unreadable", "stale_reads"] {
        check(report["verify"][field] == 0, || {
            format!("{field} != 0: {report}")
        })?;
    }
    check(
        report["verify"]["keys_checked"].as_u64().unwrap_or(0) >= 10_000,
        || format!("too few keys checked: {report}"),
    )?;
    check(report["puts"].as_u64().unwrap_or(0) > 0, || {
        format!("no writes: {report}")
    })?;
    if !tolerate_unreachable {
        check(report["errors"] == 0, || {
            format!("requests failed during the move: {report}")
        })?;
    }

    let all = rounds(&follow_log);
    let first_full = all.iter().position(|r| r.hits == 26).unwrap_or(all.len());
    let after = &all[first_full..];
    check(!after.is_empty(), || {
        format!("the follower never saw 26 hits:\n{follow_log}")
    })?;
    for round in after {
        let bad = round.letters.chars().any(|c| match c {
            'h' => false,
            '.' | '0'..='9' => !tolerate_unreachable,
            _ => true, // w = a miss that had to be rewritten, m = miss, x = wrong value
        });
        check(!bad, || {
            format!(
                "follower round {:?} breaks the invariants:\n{follow_log}",
                round.letters
            )
        })?;
    }
    Ok(())
}

async fn scale_and_wait(ns: &TestNamespace, to: i32) -> Result<()> {
    stores::scale(ns, STORE, to).await?;
    stores::wait_phase(ns, STORE, Phase::Available, to, LONG).await?;
    // Drained shards' PVCs are deleted by the operator; one still mounted by a stopping pod
    // lingers (pvc-protection) until that pod is gone.
    let expected: Vec<String> = (0..to).map(|i| format!("data-{STORE}-{i}")).collect();
    e2e::wait::until(
        &format!("the PVCs of {to} shards"),
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            let expected = &expected;
            async move {
                let pvcs = stores::pvcs(ns, STORE).await.map_err(|e| e.to_string())?;
                let mut names: Vec<String> = pvcs.iter().map(|p| p.name_any()).collect();
                names.sort();
                if &names == expected {
                    Ok(Some(()))
                } else {
                    Err(format!("PVCs {names:?}"))
                }
            }
        },
    )
    .await
}

/// 1. Scale 3→5, 5→2, 2→3 under load.
#[tokio::test]
async fn scale_up_down_up_under_load() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "scale").await?;
    ns.run(|| async {
        let clients = start_store_and_clients(&ns, 3).await?;
        for to in [5, 2, 3] {
            scale_and_wait(&ns, to).await?;
        }
        let kvs = stores::wait_phase(&ns, STORE, Phase::Available, 3, LONG).await?;
        let epoch = kvs.status.and_then(|s| s.topology).map(|t| t.epoch);
        check(epoch == Some(4), || {
            format!("three moves should end at epoch 4, got {epoch:?}")
        })?;
        // Each move is announced with its own figures (not folded into the first one's Event).
        let events = ns
            .api::<k8s_openapi::api::events::v1::Event>()
            .list(&ListParams::default())
            .await?;
        let mut moves: Vec<String> = events
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Rebalanced"))
            .filter_map(|e| e.note.clone())
            .collect();
        moves.sort();
        for (from, to) in [(3, 5), (5, 2), (2, 3)] {
            let prefix = format!("moved keys from {from} to {to} shards");
            check(moves.iter().any(|m| m.starts_with(&prefix)), || {
                format!("no Rebalanced event for {from}→{to}; Rebalanced notes: {moves:?}")
            })?;
        }
        stop_and_verify(&ns, clients, false).await
    })
    .await
}

async fn kill_operator(client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().labels("app.kubernetes.io/name=kvstore-operator");
    let list = pods.list(&lp).await?;
    check(!list.items.is_empty(), || "no operator pod to kill".into())?;
    for pod in list {
        let ns = pod.namespace().unwrap_or_default();
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        Api::<Pod>::namespaced(client.clone(), &ns)
            .delete(&pod.name_any(), &dp)
            .await?;
    }
    Ok(())
}

/// 2. The operator is killed in every phase of the state machine; it resumes and converges.
#[tokio::test]
async fn operator_killed_in_every_phase() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "opkill").await?;
    ns.run(|| async {
        let clients = start_store_and_clients(&ns, 3).await?;
        stores::annotate(&ns, STORE, PAUSE_BEFORE_PHASE, Some("4")).await?;
        // Growing passes ScalingUp..Cleanup; shrinking also ScalingDown and DeletingPVCs.
        let moves: [(i32, &[&str]); 2] = [
            (4, &["ScalingUp", "Handoff", "Copy", "Commit", "Cleanup"]),
            (
                2,
                &[
                    "Handoff",
                    "Copy",
                    "Commit",
                    "Cleanup",
                    "ScalingDown",
                    "DeletingPVCs",
                ],
            ),
        ];
        for (to, phases) in moves {
            stores::scale(&ns, STORE, to).await?;
            for phase in phases {
                stores::wait_rebalance_phase(&ns, STORE, phase, LONG).await?;
                kill_operator(&client).await?;
            }
            stores::wait_phase(&ns, STORE, Phase::Available, to, LONG).await?;
        }
        stores::annotate(&ns, STORE, PAUSE_BEFORE_PHASE, None).await?;
        stop_and_verify(&ns, clients, false).await
    })
    .await
}

/// 3. A shard pod is deleted in the middle of the copy; the rebalance waits, retries, converges.
#[tokio::test]
async fn shard_pod_deleted_during_copy() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "podkill").await?;
    ns.run(|| async {
        let clients = start_store_and_clients(&ns, 3).await?;
        stores::annotate(&ns, STORE, COPY_BATCH_PAUSE, Some("500")).await?;
        stores::scale(&ns, STORE, 5).await?;
        stores::wait_rebalance_phase(&ns, STORE, "Copy", LONG).await?;
        pods::delete(&ns, &format!("{STORE}-1")).await?;
        stores::wait_phase(&ns, STORE, Phase::Available, 5, LONG).await?;
        stores::annotate(&ns, STORE, COPY_BATCH_PAUSE, None).await?;
        stop_and_verify(&ns, clients, true).await
    })
    .await
}

/// 4. replicas changes again during a rebalance (3→5, then 2 before it finishes): converges to 2.
#[tokio::test]
async fn replicas_changed_during_a_rebalance() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "retarget").await?;
    ns.run(|| async {
        let clients = start_store_and_clients(&ns, 3).await?;
        stores::annotate(&ns, STORE, COPY_BATCH_PAUSE, Some("300")).await?;
        stores::scale(&ns, STORE, 5).await?;
        stores::wait_rebalance_phase(&ns, STORE, "Copy", LONG).await?;
        // The copy's progress is known while it runs: moved out of a total counted up front.
        let what = "the copy's progress: 0 < keysTotal, keysMoved <= keysTotal";
        stores::wait_until(&ns, STORE, what, LONG, |kvs| {
            stores::rebalance(kvs).is_some_and(|r| r.keys_total > 0 && r.keys_moved <= r.keys_total)
        })
        .await?;
        stores::scale(&ns, STORE, 2).await?;
        stores::annotate(&ns, STORE, COPY_BATCH_PAUSE, None).await?;
        scale_and_wait(&ns, 2).await?;
        stop_and_verify(&ns, clients, false).await
    })
    .await
}

async fn set_unschedulable(client: &kube::Client, unschedulable: bool) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes.list(&ListParams::default()).await? {
        let patch = serde_json::json!({ "spec": { "unschedulable": unschedulable } });
        nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    Ok(())
}

/// 5. A shard is unreachable for a long time during a scale-down: the operator does not shrink,
/// reports Degraded with a reason, and finishes once the shard is back.
#[tokio::test]
async fn unreachable_shard_blocks_scale_down() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "unreach").await?;
    let outcome = ns
        .run(|| async {
            let clients = start_store_and_clients(&ns, 4).await?;
            stores::annotate(&ns, STORE, PAUSE_BEFORE_PHASE, Some("3")).await?;
            stores::scale(&ns, STORE, 2).await?;
            stores::wait_rebalance_phase(&ns, STORE, "Handoff", LONG).await?;
            // Cut shard 3 off: it cannot come back while the node takes no new pods.
            set_unschedulable(&client, true).await?;
            pods::delete(&ns, &format!("{STORE}-3")).await?;
            let kvs = stores::wait_condition(&ns, STORE, "Degraded", "True", LONG).await?;
            let message = kvs
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_default();
            check(
                message.contains(&format!("{STORE}-3")) || message.contains("shard 3"),
                || format!("Degraded does not name the unreachable shard: {message}"),
            )?;
            let sts = stores::statefulset(&ns, STORE).await?;
            let replicas = sts.and_then(|s| s.spec).and_then(|s| s.replicas);
            check(replicas == Some(4), || {
                format!("the StatefulSet shrank over a shard it could not drain: {replicas:?}")
            })?;
            set_unschedulable(&client, false).await?;
            stores::annotate(&ns, STORE, PAUSE_BEFORE_PHASE, None).await?;
            scale_and_wait(&ns, 2).await?;
            stop_and_verify(&ns, clients, true).await
        })
        .await;
    // Never leave the node cordoned for the next test.
    set_unschedulable(&client, false).await?;
    outcome
}

/// 4b. A scale-up retargeted while its new pods are still starting (3→5, then 4 before the
/// move reaches Handoff): the move follows the new count, and the volume of the shard that never
/// served (`data-STORE-4`) is deleted once the store is stable, not left behind. Parallel pod
/// management, so that both new pods (and their claims) exist while the node takes no pods.
#[tokio::test]
async fn scale_up_retargeted_before_handoff_leaves_no_volume() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "retarget-up").await?;
    let outcome = ns
        .run(|| async {
            let spec = serde_json::json!({ "podManagementPolicy": "Parallel" });
            let clients = start_store_with_spec_and_clients(&ns, 3, spec).await?;
            // New pods stay Pending (their claims exist), so the move cannot leave ScalingUp.
            set_unschedulable(&client, true).await?;
            stores::scale(&ns, STORE, 5).await?;
            stores::wait_rebalance_phase(&ns, STORE, "ScalingUp", LONG).await?;
            e2e::wait::until(
                "the claims of both new shards",
                LONG,
                Duration::from_secs(1),
                || async {
                    let pvcs = stores::pvcs(&ns, STORE).await.map_err(|e| e.to_string())?;
                    let names: Vec<String> = pvcs.iter().map(|p| p.name_any()).collect();
                    if names.contains(&format!("data-{STORE}-4")) {
                        Ok(Some(()))
                    } else {
                        Err(format!("PVCs {names:?}"))
                    }
                },
            )
            .await?;
            stores::scale(&ns, STORE, 4).await?;
            let what = "the move to follow the new count (to 4, still ScalingUp)";
            stores::wait_until(&ns, STORE, what, LONG, |kvs| {
                stores::rebalance(kvs)
                    .is_some_and(|r| r.to == 4 && r.phase == RebalancePhase::ScalingUp)
            })
            .await?;
            set_unschedulable(&client, false).await?;
            scale_and_wait(&ns, 4).await?;
            stop_and_verify(&ns, clients, true).await
        })
        .await;
    set_unschedulable(&client, false).await?;
    outcome
}

/// 6. The book-mode client with a fixed server list keeps the book's picture through a move:
/// every server forwards keys it does not own, so all 26 keys stay hits.
#[tokio::test]
async fn book_client_with_fixed_list_through_a_move() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "bookfix").await?;
    ns.run(|| async {
        stores::create(&ns, &stores::kvstore(STORE, 3, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, STORE, Phase::Available, 3, LONG).await?;
        let list = format!("{STORE}-0.{STORE},{STORE}-1.{STORE},{STORE}-2.{STORE}");
        let pod = pods::client_pod(
            "book",
            &cluster::image("kvclient"),
            &[&list, "--interval", "1"],
            None,
        )?;
        pods::start(&ns, &pod).await?;
        let capture = LogCapture::start(&ns, "book").await?;
        pods::wait_for_log(&ns, "book", "26 hits", Duration::from_secs(120), |log| {
            rounds(log).iter().any(|r| r.hits == 26)
        })
        .await?;
        scale_and_wait(&ns, 5).await?;
        pods::stop(&ns, "book", 1).await?;
        let log = capture.finish(Duration::from_secs(60)).await?;
        let all = rounds(&log);
        let first_full = all.iter().position(|r| r.hits == 26).unwrap_or(all.len());
        // The header names server ord(c) % 3 for each key, as in the book.
        check(
            log.contains(&format!("{:>46}", "12012012012012012012012012")),
            || format!("book header missing:\n{log}"),
        )?;
        for round in &all[first_full..] {
            check(round.hits == 26, || {
                format!(
                    "book client lost hits during the move: {:?}\n{log}",
                    round.letters
                )
            })?;
        }
        Ok(())
    })
    .await
}
