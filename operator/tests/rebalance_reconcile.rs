//! The rebalance branch of the reconcile against a scripted API server (tower-test) and a fake
//! shard admin: what is persisted before what, and what a failing shard does to the move.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::sync::{Arc, Mutex};

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kvproto::{MigrationPhase, Sharding};
use operator::context::{Config, Context};
use operator::controller::{FINALIZER, reconcile};
use operator::error::Category;
use operator::metrics::Metrics;
use operator::status::{KVStoreStatus, Phase, RebalancePhase, RebalanceStatus, TopologyStatus};
use operator::{KVStore, KVStoreSpec};
use support::{Call, FakeShards, World};

struct Harness {
    world: Arc<Mutex<World>>,
    shards: Arc<FakeShards>,
    ctx: Arc<Context>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn new(sts: (i32, i32, i32), shards: FakeShards) -> Self {
        let world = World {
            statefulset: Some(support::statefulset(sts.0, sts.1, sts.2)),
            secret: Some(support::secret("s3cret")),
            ..World::default()
        };
        let world = Arc::new(Mutex::new(world));
        let (client, server) = support::client(world.clone());
        let shards = Arc::new(shards);
        let ctx = Arc::new(Context::new(
            client,
            Some("test".into()),
            Arc::new(Metrics::default()),
            Config::default(),
            shards.clone(),
        ));
        Harness {
            world,
            shards,
            ctx,
            server,
        }
    }

    async fn reconcile(&self, kvs: KVStore) -> operator::Result<kube::runtime::controller::Action> {
        self.world.lock().unwrap().kvstore = serde_json::to_value(&kvs).unwrap();
        reconcile(Arc::new(kvs), self.ctx.clone()).await
    }

    fn calls(&self) -> Vec<Call> {
        self.world.lock().unwrap().calls.clone()
    }

    fn statuses(&self) -> Vec<KVStoreStatus> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.ends_with("/kvstores/demo/status"))
            .map(|c| serde_json::from_value(c.body["status"].clone()).unwrap())
            .collect()
    }

    fn status(&self) -> KVStoreStatus {
        self.statuses().pop().expect("no status written")
    }

    fn statefulset_replicas(&self) -> Vec<i64> {
        self.calls()
            .into_iter()
            .filter(|c| c.is_operator_apply() && c.path.contains("/statefulsets/"))
            .map(|c| c.body["spec"]["replicas"].as_i64().unwrap())
            .collect()
    }

    fn event_reasons(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == Method::POST && c.path.ends_with("/events"))
            .map(|c| c.body["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A store asking for `replicas`, serving `shards` at epoch 1, with `rebalance` in flight.
fn store(replicas: i32, shards: i32, rebalance: Option<RebalanceStatus>) -> KVStore {
    let mut spec: KVStoreSpec = serde_json::from_value(serde_json::json!({})).unwrap();
    spec.replicas = replicas;
    KVStore {
        metadata: ObjectMeta {
            name: Some("demo".into()),
            namespace: Some("default".into()),
            uid: Some("7a5d1b52-0000-4000-8000-000000000001".into()),
            generation: Some(2),
            finalizers: Some(vec![FINALIZER.into()]),
            ..ObjectMeta::default()
        },
        spec,
        status: Some(KVStoreStatus {
            replicas: shards,
            phase: Some(Phase::Available),
            topology: Some(TopologyStatus {
                epoch: 1,
                shards,
                sharding: Sharding::Modulo,
            }),
            rebalance,
            ..KVStoreStatus::default()
        }),
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

fn condition(status: &KVStoreStatus, type_: &str) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn starting_a_rebalance_persists_scaling_up_before_touching_the_statefulset() {
    let h = Harness::new((3, 3, 3), FakeShards::default());
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
    assert!(
        h.shards.pushes.lock().unwrap().is_empty(),
        "nothing pushed yet"
    );
}

#[tokio::test]
async fn a_growth_runs_every_phase_in_order_and_commits_the_next_epoch() {
    let h = Harness::new((5, 5, 5), FakeShards::default());
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
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Available));
    assert_eq!(status.rebalance, None);
    assert_eq!(status.replicas, 5);
    assert_eq!(status.topology.map(|t| (t.epoch, t.shards)), Some((2, 5)));
    // Pushed in order: the current map to the new pods, then Handoff, Copy and stable to all.
    let pushes = h.shards.pushes.lock().unwrap().clone();
    let kinds: Vec<(u64, Option<MigrationPhase>, usize)> = pushes
        .iter()
        .map(|(_, _, t)| (t.epoch, t.migration.map(|m| m.phase), t.peers.len()))
        .collect();
    let mut expected = vec![(1, None, 3); 2];
    expected.extend(vec![(2, Some(MigrationPhase::Handoff), 5); 5]);
    expected.extend(vec![(2, Some(MigrationPhase::Copy), 5); 5]);
    expected.extend(vec![(2, None, 5); 5]);
    assert_eq!(kinds, expected);
    for phase in ["Handoff", "Copy", "Commit", "Cleanup", "Rebalanced"] {
        assert!(h.event_reasons().contains(&phase.to_owned()), "{phase}");
    }
}

#[tokio::test]
async fn an_unreachable_shard_during_a_shrink_is_degraded_and_nothing_shrinks() {
    let shards = FakeShards {
        refuse: vec!["http://demo-3.demo.default.svc:80".into()],
        ..FakeShards::default()
    };
    let h = Harness::new((4, 4, 3), shards);
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
    let h = Harness::new((4, 4, 4), FakeShards::default());
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
    let h2 = Harness::new((2, 2, 2), FakeShards::default());
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
    let h = Harness::new((5, 3, 3), FakeShards::default());
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
    let h = Harness::new((5, 5, 5), FakeShards::default());
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
    let h2 = Harness::new((0, 0, 0), FakeShards::default());
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
