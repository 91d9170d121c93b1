//! The rebalance branch of the reconcile against a scripted API server (tower-test) and a fake
//! shard admin: what is persisted before what, and what a failing shard does to the move.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use kvproto::{MigrationPhase, Sharding, Topology};
use operator::KVStore;
use operator::context::Config;
use operator::controller::error_policy;
use operator::error::Category;
use operator::status::{KVStoreStatus, Phase, RebalancePhase, RebalanceStatus};
use support::World;
use support::harness::{Harness, condition, kvstore};
use support::shards::FakeShards;

/// A store asking for `replicas`, serving `shards` at epoch 1, with `rebalance` in flight.
fn store(replicas: i32, shards: i32, rebalance: Option<RebalanceStatus>) -> KVStore {
    let mut kvs = kvstore(replicas);
    kvs.metadata.generation = Some(2);
    KVStore {
        status: Some(KVStoreStatus {
            rebalance,
            ..support::harness::serving(shards)
        }),
        ..kvs
    }
}

fn moving(from: i32, to: i32, phase: RebalancePhase) -> RebalanceStatus {
    RebalanceStatus {
        from,
        to,
        phase,
        epoch: 2,
        keys_moved: 0,
        keys_total: 0,
        started_at: None,
        message: None,
    }
}

#[tokio::test]
async fn starting_a_rebalance_persists_scaling_up_before_touching_the_statefulset() {
    let h = Harness::new(World::running(3, 3, 3), FakeShards::default());
    h.reconcile(store(5, 3, None)).await.unwrap();

    let calls = h.calls();
    let first_status = calls
        .iter()
        .position(|c| c.path.ends_with("/kvstores/demo/status"))
        .expect("status written");
    let first_sts = calls
        .iter()
        .position(|c| c.is_operator_apply() && c.path.contains("/statefulsets/"))
        .expect("statefulset applied");
    assert!(first_status < first_sts, "the phase is persisted first");
    let persisted: KVStoreStatus =
        serde_json::from_value(calls[first_status].body["status"].clone()).unwrap();
    let r = persisted.rebalance.expect("rebalance persisted");
    assert_eq!(
        (r.from, r.to, r.phase, r.epoch),
        (3, 5, RebalancePhase::ScalingUp, 2)
    );
    assert!(r.started_at.is_some());

    // The StatefulSet grows; the new pods are not ready yet, so the move waits in ScalingUp.
    assert_eq!(h.statefulset_replicas(), [5]);
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Rebalancing));
    assert_eq!(status.replicas, 3, "clients route over the old count");
    assert_eq!(
        status.rebalance.as_ref().unwrap().phase,
        RebalancePhase::ScalingUp
    );
    assert_eq!(condition(&status, "Progressing").1, "ScalingUp");
    assert!(h.event_reasons().contains(&"ScalingUp".to_owned()));
    // Only the current map, to the pods that run (the new ones get it once started).
    let pushes = h.shards.pushes.lock().unwrap().clone();
    assert!(
        pushes
            .iter()
            .all(|(_, _, t)| (t.epoch, t.migration, t.peers.len()) == (1, None, 3)),
        "a new map pushed before Handoff: {pushes:?}"
    );
}

#[tokio::test]
async fn a_growth_runs_every_phase_in_order_and_commits_the_next_epoch() {
    let h = Harness::new(World::running(5, 5, 5), FakeShards::default());
    let kvs = store(5, 3, Some(moving(3, 5, RebalancePhase::ScalingUp)));
    h.reconcile(kvs).await.unwrap();

    let phases: Vec<RebalancePhase> = h
        .statuses()
        .iter()
        .filter_map(|s| s.rebalance.as_ref().map(|r| r.phase))
        .collect();
    assert_eq!(
        phases,
        [
            RebalancePhase::Handoff,
            RebalancePhase::Copy,
            RebalancePhase::Commit,
            RebalancePhase::Cleanup
        ]
    );
    // One checkpoint per phase entered, then the one write at the end.
    assert_eq!(h.statuses().len(), 5);
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Available));
    assert_eq!(status.rebalance, None);
    assert_eq!(status.replicas, 5);
    assert_eq!(status.topology.map(|t| (t.epoch, t.shards)), Some((2, 5)));
    // Pushed in order: the current map to every started pod (the old ones hold it already, the
    // new ones need it to become ready), then Handoff, Copy and stable to all.
    let pushes = h.shards.pushes.lock().unwrap().clone();
    let kinds: Vec<(u64, Option<MigrationPhase>, usize)> = pushes
        .iter()
        .map(|(_, _, t)| (t.epoch, t.migration.map(|m| m.phase), t.peers.len()))
        .collect();
    let mut expected = vec![(1, None, 3); 5];
    expected.extend(vec![(2, Some(MigrationPhase::Handoff), 5); 5]);
    expected.extend(vec![(2, Some(MigrationPhase::Copy), 5); 5]);
    expected.extend(vec![(2, None, 5); 5]);
    assert_eq!(kinds, expected);
    for phase in ["Handoff", "Copy", "Commit", "Cleanup", "Rebalanced"] {
        assert!(h.event_reasons().contains(&phase.to_owned()), "{phase}");
    }
}

/// Issue 16: right after a new pod is Ready its name may not resolve yet. A healthy scale must
/// not flap to Degraded (it would page someone): the move waits for the shard, saying why,
/// and is Degraded only once the shard has failed for the whole grace.
#[tokio::test]
async fn a_shard_briefly_unreachable_in_a_move_is_waited_for_not_degraded() {
    let grace = Duration::from_millis(300);
    let config = Config {
        unreachable_grace: grace,
        ..Config::default()
    };
    let shards = FakeShards::refusing(&["http://demo-3.demo.default.svc:80"]);
    let h = Harness::with_config(World::running(4, 4, 3), shards, config);
    let kvs = store(2, 4, Some(moving(4, 2, RebalancePhase::Handoff)));
    let action = h.reconcile(kvs.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let status = h.status();
    assert_ne!(status.phase, Some(Phase::Degraded));
    let rebalance = status.rebalance.clone().unwrap();
    let message = rebalance.message.unwrap_or_default();
    assert!(
        message.contains("demo-3") && message.contains("retrying"),
        "{message}"
    );
    assert!(
        !h.event_reasons()
            .iter()
            .any(|r| r == "Degraded" || r == "ShardError")
    );

    // Still refusing once the grace has passed: now it is Degraded, as before.
    tokio::time::sleep(grace + Duration::from_millis(50)).await;
    let mut kvs = kvs;
    kvs.status = Some(status);
    let err = h.reconcile(kvs).await.unwrap_err();
    assert_eq!(err.category(), Category::Shard);
    let (state, reason, _) = condition(&h.status(), "Degraded");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "ShardUnreachable")
    );
}

#[tokio::test]
async fn an_unreachable_shard_during_a_shrink_is_degraded_and_nothing_shrinks() {
    let shards = FakeShards::refusing(&["http://demo-3.demo.default.svc:80"]);
    let h = Harness::new(World::running(4, 4, 3), shards);
    let kvs = store(2, 4, Some(moving(4, 2, RebalancePhase::Handoff)));
    let err = h.reconcile(kvs).await.unwrap_err();
    assert_eq!(err.category(), Category::Shard);

    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let (state, reason, message) = condition(&status, "Degraded");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "ShardUnreachable")
    );
    assert!(message.contains("demo-3"), "{message}");
    assert_eq!(
        status.rebalance.map(|r| r.phase),
        Some(RebalancePhase::Handoff),
        "the phase is kept for the retry"
    );
    assert!(h.statefulset_replicas().iter().all(|&n| n == 4));
    assert!(
        h.calls()
            .iter()
            .all(|c| !c.path.contains("persistentvolumeclaims"))
    );
    assert!(h.event_reasons().contains(&"ShardError".to_owned()));
}

#[tokio::test]
async fn a_shrink_removes_pods_only_after_cleanup_then_deletes_only_their_volumes() {
    // Resumed at Cleanup: every server holds the committed map of epoch 2.
    let urls: Vec<String> = (0..4)
        .map(|i| format!("http://demo-{i}.demo.default.svc:80"))
        .collect();
    let committed = Topology::stable(2, Sharding::Modulo, urls[..2].to_vec());
    let h = Harness::new(
        World::running(4, 4, 4),
        FakeShards::holding(&urls, &committed),
    );
    let kvs = store(2, 4, Some(moving(4, 2, RebalancePhase::Cleanup)));
    // Pods 2 and 3 are still running after the shrink: the move waits in ScalingDown.
    h.reconcile(kvs).await.unwrap();
    assert_eq!(h.statefulset_replicas(), [4, 2]);
    let status = h.status();
    assert_eq!(
        status.rebalance.as_ref().map(|r| r.phase),
        Some(RebalancePhase::ScalingDown)
    );
    assert!(
        h.calls()
            .iter()
            .all(|c| !c.path.contains("persistentvolumeclaims"))
    );

    // Once they are gone, their volumes (and only theirs) are deleted and the move ends.
    let h2 = Harness::new(World::running(2, 2, 2), FakeShards::default());
    let mut kvs = store(2, 2, None);
    kvs.status = Some(status);
    h2.reconcile(kvs).await.unwrap();
    assert_eq!(h2.statefulset_replicas(), [2]);
    let deleted: Vec<String> = h2
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::DELETE)
        .map(|c| c.path)
        .collect();
    assert_eq!(
        deleted,
        [
            "/api/v1/namespaces/default/persistentvolumeclaims/data-demo-2",
            "/api/v1/namespaces/default/persistentvolumeclaims/data-demo-3"
        ]
    );
    let status = h2.status();
    assert_eq!(status.phase, Some(Phase::Available));
    assert_eq!(status.rebalance, None);
    assert_eq!(status.replicas, 2);
}

#[tokio::test]
async fn back_to_the_old_count_during_scaling_up_cancels_the_move() {
    let h = Harness::new(World::running(5, 3, 3), FakeShards::default());
    let kvs = store(3, 3, Some(moving(3, 5, RebalancePhase::ScalingUp)));
    h.reconcile(kvs).await.unwrap();
    assert_eq!(h.statefulset_replicas(), [3]);
    let status = h.status();
    assert_eq!(status.rebalance, None);
    assert_eq!(status.topology.map(|t| t.epoch), Some(1));
    assert!(
        h.shards
            .pushes
            .lock()
            .unwrap()
            .iter()
            .all(|(_, _, t)| t.epoch == 1)
    );
}

#[tokio::test]
async fn scale_to_zero_mid_move_stops_the_pods_and_keeps_the_move_for_later() {
    let h = Harness::new(World::running(5, 5, 5), FakeShards::default());
    let kvs = store(0, 3, Some(moving(3, 5, RebalancePhase::Copy)));
    h.reconcile(kvs).await.unwrap();
    assert_eq!(h.statefulset_replicas(), [0]);
    let status = h.status();
    assert_eq!(
        status.rebalance.as_ref().map(|r| r.phase),
        Some(RebalancePhase::Copy)
    );
    assert!(h.shards.pushes.lock().unwrap().is_empty());

    // Started again: the StatefulSet grows back to max(from, to) and the move waits for its pods.
    let h2 = Harness::new(World::running(0, 0, 0), FakeShards::default());
    let mut kvs = store(5, 3, None);
    kvs.status = Some(status);
    h2.reconcile(kvs).await.unwrap();
    assert_eq!(h2.statefulset_replicas(), [5]);
    let status = h2.status();
    let r = status.rebalance.unwrap();
    assert_eq!(r.phase, RebalancePhase::Copy);
    assert!(r.message.unwrap().contains("waiting for pods"));
    assert!(h2.shards.pushes.lock().unwrap().is_empty());
}

/// Issue 13 item 3: a deposed operator, still running a move it read at Copy, must not write its
/// stale status over the one another operator moved on to Commit.
#[tokio::test]
async fn a_status_write_from_a_stale_read_never_rolls_the_move_back() {
    let h = Harness::new(World::running(5, 5, 5), FakeShards::default());
    let mut read = store(5, 3, Some(moving(3, 5, RebalancePhase::Copy)));
    read.metadata.resource_version = Some("7".into());
    let mut stored = store(5, 3, Some(moving(3, 5, RebalancePhase::Commit)));
    stored.metadata.resource_version = Some("8".into());
    let err = h.reconcile_stale(read, stored).await.unwrap_err();
    assert!(
        err.to_string().contains("changed under another writer"),
        "{err}"
    );
    let kept = h.stored_status().and_then(|s| s.rebalance).map(|r| r.phase);
    assert_eq!(kept, Some(RebalancePhase::Commit), "rolled back");
    // A watch cache one write behind does this in every normal move: not a failure to page on.
    let reasons = h.event_reasons();
    assert!(
        !reasons.iter().any(|r| r == "ApiError"),
        "a stale read announced as a failure: {reasons:?}"
    );
    let retry = error_policy(Arc::new(store(5, 3, None)), &err, h.ctx.clone());
    assert_eq!(retry, Action::requeue(Duration::from_secs(1)));
}

/// A conflict that only a spec or metadata change caused is written again on the fresh object.
#[tokio::test]
async fn a_status_write_after_an_unrelated_change_is_retried_on_the_fresh_version() {
    let h = Harness::new(World::running(3, 3, 3), FakeShards::default());
    let mut read = store(3, 3, None);
    read.metadata.resource_version = Some("7".into());
    let mut stored = read.clone();
    stored.metadata.resource_version = Some("9".into());
    h.reconcile_stale(read, stored).await.unwrap();
    assert_eq!(
        h.stored_status().and_then(|s| s.phase),
        Some(Phase::Available)
    );
}
