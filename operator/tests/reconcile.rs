//! The reconcile's decisions against a scripted API server (tower-test) and a fake shard admin.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::sync::Arc;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kvproto::Sharding;
use operator::KVStore;
use operator::context::Config;
use operator::controller::error_policy;
use operator::crd::RetentionPolicy;
use operator::error::Category;
use operator::status::{Phase, TopologyStatus};
use support::harness::{Harness, kvstore, state as condition};
use support::shards::FakeShards;
use support::{Call, World};

fn serving(kvs: &mut KVStore, shards: i32) {
    kvs.status = Some(support::harness::serving(shards));
}

#[tokio::test]
async fn a_new_store_gets_its_children_by_server_side_apply_and_a_token_once() {
    let h = Harness::new(World::default(), FakeShards::default());
    let action = h.reconcile(kvstore(3)).await.unwrap();
    // Its pods are starting: looked at again soon (a pod that starts changes no watched object).
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(2)));

    for kind in ["services", "poddisruptionbudgets", "statefulsets"] {
        let applies = h.applies_to(kind);
        assert_eq!(applies.len(), 1, "{kind}: {applies:?}");
        let owner = &applies[0].body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "KVStore");
        assert_eq!(owner["controller"], true);
        assert_eq!(
            applies[0].body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kvstore-operator"
        );
    }
    assert_eq!(h.applies_to("statefulsets")[0].body["spec"]["replicas"], 3);

    let created: Vec<Call> = h
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::POST && c.path.ends_with("/secrets"))
        .collect();
    let names: Vec<&str> = created
        .iter()
        .map(|c| c.body["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["demo-admin-token", "demo-peer-token", "demo-data-token"]
    );
    let tokens: Vec<&str> = created
        .iter()
        .map(|c| c.body["stringData"]["token"].as_str().unwrap())
        .collect();
    assert!(tokens.iter().all(|t| t.len() == 48), "{tokens:?}");
    assert!(tokens[0] != tokens[1] && tokens[1] != tokens[2]);

    assert_eq!(
        h.statuses().len(),
        1,
        "the status is written once, at the end"
    );
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.replicas, 0, "no shard map yet");
    assert_eq!(status.topology, None);
    assert_eq!(condition(&status, "Progressing").0, "True");
    assert!(h.shards.pushes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn once_every_pod_is_ready_the_first_map_goes_to_every_server_with_the_kept_token() {
    let world = World {
        statefulset: Some(support::statefulset(3, 3, 3)),
        secret: Some(support::secret("s3cret")),
        ..World::default()
    };
    let h = Harness::new(world, FakeShards::default());
    h.reconcile(kvstore(3)).await.unwrap();

    let pushes = h.shards.pushes.lock().unwrap().clone();
    let urls: Vec<&str> = pushes.iter().map(|(u, _, _)| u.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://demo-0.demo.default.svc:80",
            "http://demo-1.demo.default.svc:80",
            "http://demo-2.demo.default.svc:80"
        ]
    );
    for (_, token, map) in &pushes {
        assert_eq!(token, "s3cret");
        assert_eq!((map.epoch, map.shards, map.migration), (1, 3, None));
    }
    // The pods restart only if the Secret is ever recreated (servers read the token once).
    let sts = &h.applies_to("statefulsets")[0].body;
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"]["kvstore.dev/admin-token-secret-uid"],
        "demo-admin-token-uid"
    );
    // The existing admin Secret is neither recreated nor applied: the token never rotates
    // (the peer and data token Secrets are created, once: tls_reconcile.rs).
    assert!(h.calls().iter().all(|c| !(c.path.contains("/secrets")
        && c.method != Method::GET
        && (c.path.contains("admin-token") || c.body["metadata"]["name"] == "demo-admin-token"))));
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Available));
    assert_eq!(status.replicas, 3);
    assert_eq!(status.ready_replicas, 3);
    assert_eq!(
        status.topology,
        Some(TopologyStatus {
            epoch: 1,
            shards: 3,
            sharding: Sharding::Modulo
        })
    );
    assert_eq!(
        condition(&status, "Available"),
        ("True".into(), "AllShardsReady".into())
    );
}

#[tokio::test]
async fn an_invalid_spec_is_degraded_with_a_warning_event_and_no_child_is_touched() {
    let h = Harness::new(World::default(), FakeShards::default());
    let mut kvs = kvstore(3);
    kvs.spec.port = 8081;
    let err = h.reconcile(kvs.clone()).await.unwrap_err();
    assert_eq!(err.category(), Category::InvalidSpec);
    // No crash loop: the retry waits for the normal requeue (a spec change triggers one anyway).
    assert_eq!(
        error_policy(Arc::new(kvs), &err, h.ctx.clone()),
        Action::requeue(Config::default().requeue)
    );

    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(
        condition(&status, "Degraded"),
        ("True".into(), "InvalidSpec".into())
    );
    let touched: Vec<Call> = h
        .calls()
        .into_iter()
        .filter(|c| {
            c.method != Method::GET
                && !c.path.contains("/kvstores/")
                && !c.path.ends_with("/events")
        })
        .collect();
    assert!(touched.is_empty(), "touched children: {touched:?}");
    let warnings: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| e["type"] == "Warning" && e["reason"] == "InvalidSpec")
        .collect();
    assert!(!warnings.is_empty(), "events: {:?}", h.events());
    let note = warnings[0]["note"].as_str().unwrap();
    assert!(note.starts_with("invalid spec: port 8081"), "{note}");
}

#[tokio::test]
async fn a_paused_store_leaves_its_children_alone() {
    let world = World {
        statefulset: Some(support::statefulset(3, 3, 3)),
        ..World::default()
    };
    let h = Harness::new(world, FakeShards::default());
    let mut kvs = kvstore(5);
    serving(&mut kvs, 3);
    kvs.spec.paused = true;
    h.reconcile(kvs).await.unwrap();

    let writes: Vec<Call> = h
        .calls()
        .into_iter()
        .filter(|c| {
            c.method != Method::GET
                && !c.path.ends_with("/kvstores/demo/status")
                && !c.path.ends_with("/events")
        })
        .collect();
    assert!(writes.is_empty(), "wrote while paused: {writes:?}");
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Paused));
    assert_eq!(condition(&status, "ReconciliationPaused").0, "True");
    assert_eq!(status.replicas, 3, "what the store serves is kept");
    assert!(h.shards.pushes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn scale_to_zero_stops_the_pods_and_keeps_the_map() {
    let world = World {
        statefulset: Some(support::statefulset(0, 0, 0)),
        secret: Some(support::secret("s3cret")),
        ..World::default()
    };
    let h = Harness::new(world, FakeShards::default());
    let mut kvs = kvstore(0);
    serving(&mut kvs, 3);
    h.reconcile(kvs).await.unwrap();

    assert_eq!(h.applies_to("statefulsets")[0].body["spec"]["replicas"], 0);
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Stopped));
    assert_eq!(status.replicas, 3, "clients keep the map that comes back");
    assert_eq!(status.topology.map(|t| (t.epoch, t.shards)), Some((1, 3)));
    // No PVC is deleted by a stop.
    assert!(
        h.calls()
            .iter()
            .all(|c| !c.path.contains("persistentvolumeclaims"))
    );
}

#[tokio::test]
async fn a_refused_push_is_reported_and_retried_with_growing_backoff() {
    let world = World {
        statefulset: Some(support::statefulset(3, 3, 3)),
        secret: Some(support::secret("s3cret")),
        ..World::default()
    };
    let shards = FakeShards::refusing(&["http://demo-1.demo.default.svc:80"]);
    let h = Harness::new(world, shards);
    let kvs = kvstore(3);
    let err = h.reconcile(kvs.clone()).await.unwrap_err();
    assert_eq!(err.category(), Category::Shard);
    assert_eq!(
        h.statuses().len(),
        1,
        "the status is written once, at the end"
    );
    assert!(err.to_string().contains("shard 1"), "{err}");
    let status = h.status();
    assert_eq!(
        condition(&status, "Degraded"),
        ("True".into(), "ShardUnreachable".into())
    );
    assert_eq!(
        status.topology, None,
        "a map not every server took is not recorded"
    );

    let first = error_policy(Arc::new(kvs.clone()), &err, h.ctx.clone());
    let second = error_policy(Arc::new(kvs), &err, h.ctx.clone());
    assert_eq!(first, Action::requeue(std::time::Duration::from_secs(2)));
    assert_eq!(second, Action::requeue(std::time::Duration::from_secs(4)));
}

fn deleting(policy: RetentionPolicy) -> KVStore {
    let mut kvs = kvstore(3);
    kvs.spec.storage.retention_policy = policy;
    kvs.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1_800_000_000).unwrap()));
    kvs
}

#[tokio::test]
async fn deletion_removes_the_volumes_only_under_the_delete_policy() {
    let h = Harness::new(World::default(), FakeShards::default());
    h.reconcile(deleting(RetentionPolicy::Delete))
        .await
        .unwrap();
    let deletes: Vec<Call> = h
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::DELETE)
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(
        deletes[0]
            .path
            .ends_with("/namespaces/default/persistentvolumeclaims")
    );
    assert!(
        deletes[0]
            .query
            .contains("app.kubernetes.io%2Finstance%3Ddemo"),
        "{}",
        deletes[0].query
    );
    // The finalizer is removed afterwards.
    assert!(
        h.calls()
            .iter()
            .any(|c| c.method == Method::PATCH && c.path.ends_with("/kvstores/demo"))
    );

    let h = Harness::new(World::default(), FakeShards::default());
    h.reconcile(deleting(RetentionPolicy::Retain))
        .await
        .unwrap();
    assert!(h.calls().iter().all(|c| c.method != Method::DELETE));
}

#[tokio::test]
async fn a_statefulset_change_the_api_refuses_is_reported_as_degraded() {
    let world = World {
        statefulset: Some(support::statefulset(3, 3, 3)),
        secret: Some(support::secret("s3cret")),
        reject_statefulset: true,
        ..World::default()
    };
    let h = Harness::new(world, FakeShards::default());
    let mut kvs = kvstore(3);
    serving(&mut kvs, 3);
    let err = h.reconcile(kvs.clone()).await.unwrap_err();
    assert_eq!(err.category(), Category::Rejected);
    assert_eq!(
        error_policy(Arc::new(kvs), &err, h.ctx.clone()),
        Action::requeue(Config::default().requeue)
    );
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let (state, reason) = condition(&status, "Degraded");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "ChangeRejected")
    );
    assert_eq!(
        status.topology.map(|t| t.shards),
        Some(3),
        "the served map is kept"
    );
    assert!(h.shards.pushes.lock().unwrap().is_empty());
    assert!(h.events().iter().any(|e| e["reason"] == "Rejected"));
}

/// A world where shard `i`'s claim is bound to a local volume on node `n{i}`, with `nodes` in
/// the cluster and the last of three pods not ready.
fn local_volumes(nodes: &[&str]) -> World {
    let mut world = World::running(3, 3, 2);
    for i in 0..3 {
        world.claims.insert(
            format!("data-demo-{i}"),
            serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": format!("data-demo-{i}")},
                "spec": {"volumeName": format!("local-pv-{i}")}}),
        );
        world.volumes.insert(
            format!("local-pv-{i}"),
            serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": format!("local-pv-{i}")},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [format!("n{i}")]}
            ]}]}}}}),
        );
    }
    world.nodes = nodes.iter().map(|n| (*n).to_owned()).collect();
    world
}

/// Issue 15, factor 1: a node deleted for good took shard 2's only copy. The store says so,
/// naming the shard, its claim and the node, and deletes nothing on its own.
#[tokio::test]
async fn a_shard_whose_only_volume_was_on_a_deleted_node_is_reported_and_nothing_is_deleted() {
    let h = Harness::new(local_volumes(&["n0", "n1"]), FakeShards::default());
    let mut kvs = kvstore(3);
    serving(&mut kvs, 3);
    h.reconcile(kvs).await.unwrap();
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let (state, reason) = condition(&status, "Degraded");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "ShardVolumeLost")
    );
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap()
        .message;
    for part in ["demo-2", "data-demo-2", "local-pv-2", "n2"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(!message.contains("demo-1'"), "{message}");
    assert!(h.calls().iter().all(|c| c.method != Method::DELETE));

    // The node is only down (it still exists): an ordinary not-ready shard.
    let h = Harness::new(local_volumes(&["n0", "n1", "n2"]), FakeShards::default());
    let mut kvs = kvstore(3);
    serving(&mut kvs, 3);
    h.reconcile(kvs).await.unwrap();
    let (_, reason) = condition(&h.status(), "Degraded");
    assert_eq!(reason, "ShardsNotReady");
}
