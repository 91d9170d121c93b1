//! The replication step of the reconcile (docs/replication.md section 7) against a scripted API
//! server (tower-test) and fake Raft groups behind the `ShardAdmin` fake (`support/groups.rs`):
//! the membership changes actually sent, in order, reconcile after reconcile; the release of
//! the copies' objects; and `status.replication` with its conditions in the one status write.
//! Node IDs: 10 + copy for a copy's first volume, 90 + copy for a replacement (shard 1: +100).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use http::Method;
use kvproto::raft::{GroupId, Role};
use operator::KVStore;
use operator::build;
use operator::shards::RaftChange;
use operator::status::{Phase, ShardPhase};
use operator::validate::validate;
use serde_json::{Value, json};
use support::World;
use support::groups::{LEARNER_LAG, group, member, url};
use support::harness::{Harness, condition, kvstore, serving};
use support::shards::FakeShards;

/// A KVStore `demo` of `shards` shards at `factor`, serving them already unless `new`.
fn store(shards: i32, factor: i32, new: bool) -> KVStore {
    let mut kvs = kvstore(shards);
    kvs.spec.replication.factor = factor;
    if !new {
        kvs.status = Some(serving(shards));
    }
    kvs
}

/// Copy 0's StatefulSet with every pod ready, and copies `1..copies` as the operator applied
/// them (owned by the store, `shards` pods each, all running).
fn world(kvs: &KVStore, copies: u32) -> World {
    let shards = kvs.spec.replicas;
    let mut world = World::running(shards, shards, shards);
    // The copies' objects are the store's own, as a factor-3 reconcile applied them.
    let mut at_three = kvs.clone();
    at_three.spec.replication.factor = 3;
    let inst = validate(&at_three).unwrap();
    for k in 1..copies {
        let sts = build::copy_statefulset(&inst, k, shards, None);
        let name = format!("demo-r{k}");
        world
            .copies
            .insert(name, serde_json::to_value(sts).unwrap());
    }
    world
}

/// The next reconcile sees the status this one wrote.
fn next(h: &Harness, kvs: &mut KVStore) {
    kvs.status = h.stored_status();
}

/// The changes received since `from`.
fn sent_since(h: &Harness, from: usize) -> Vec<(String, GroupId, RaftChange)> {
    h.shards.groups.changes().split_off(from)
}

/// One reconcile of `kvs`, which then sees the status it wrote: the changes it sent (those
/// after the first `seen`, which moves past them) and shard 0's phase.
async fn reconcile_once(
    h: &Harness,
    kvs: &mut KVStore,
    seen: &mut usize,
) -> (Vec<(String, GroupId, RaftChange)>, ShardPhase) {
    h.reconcile(kvs.clone()).await.unwrap();
    next(h, kvs);
    let sent = sent_since(h, *seen);
    *seen += sent.len();
    let phase = h.status().replication.unwrap().shards[0].phase;
    (sent, phase)
}

/// The one status patch body of the last reconcile's end.
fn status_body(h: &Harness) -> Value {
    h.calls()
        .into_iter()
        .rev()
        .find(|c| c.path.ends_with("/kvstores/demo/status"))
        .expect("a status write")
        .body["status"]
        .clone()
}

#[tokio::test]
async fn a_new_store_forms_a_group_with_every_copy_voting_once_all_of_them_answer() {
    let kvs = store(2, 3, true);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    // Shard 0: every copy answers. Shard 1: copy 2 does not answer yet.
    for copy in 0..3 {
        h.shards.groups.start(0, copy, 10 + u64::from(copy));
    }
    h.shards.groups.start(1, 0, 110);
    h.shards.groups.start(1, 1, 111);
    h.reconcile(kvs).await.unwrap();

    let voters = vec![member(0, 0, 10), member(0, 1, 11), member(0, 2, 12)];
    assert_eq!(
        h.shards.groups.changes(),
        [(url(0, 0), group(0), RaftChange::Init { voters })],
        "one init, to copy 0, with every copy; shard 1 waits"
    );
    // Only the formed shard gets the first map: no write reaches shard 1 outside its group.
    let pushed: Vec<String> = h
        .shards
        .pushes
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.0.clone())
        .collect();
    assert_eq!(pushed, [url(0, 0)]);

    let r = h.status().replication.unwrap();
    assert_eq!(r.shards[0].phase, ShardPhase::Initializing);
    assert_eq!(r.shards[0].voters, ["demo-0", "demo-r1-0", "demo-r2-0"]);
    assert_eq!(r.shards[1].phase, ShardPhase::Initializing);
    assert_eq!(
        r.shards[1].message.as_deref(),
        Some("a new store's group forms with every copy: waiting for demo-r2-1 to answer")
    );
    assert!(r.shards[1].voters.is_empty());
}

#[tokio::test]
async fn one_to_three_on_a_live_store_inits_copy_0_alone_adds_learners_then_promotes_them() {
    let mut kvs = store(1, 3, false);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    for copy in 0..3 {
        h.shards.groups.start(0, copy, 10 + u64::from(copy));
    }
    let leader = url(0, 0);
    let mut seen = 0;
    let mut step = async |kvs: &mut KVStore| reconcile_once(&h, kvs, &mut seen).await;

    // 1. Copy 0 alone: its records become the group's first snapshot.
    let init = RaftChange::Init {
        voters: vec![member(0, 0, 10)],
    };
    assert_eq!(
        step(&mut kvs).await,
        (
            vec![(leader.clone(), group(0), init)],
            ShardPhase::Initializing
        )
    );
    // 2 and 3. One learner per reconcile, through the leader.
    for copy in [1, 2] {
        let add = RaftChange::AddLearner {
            member: member(0, copy, 10 + u64::from(copy)),
        };
        assert_eq!(
            step(&mut kvs).await,
            (
                vec![(leader.clone(), group(0), add)],
                ShardPhase::AddingLearner
            )
        );
    }
    // 4. Learners far behind: nothing is sent; the store says it converges.
    assert_eq!(step(&mut kvs).await, (vec![], ShardPhase::CatchingUp));
    let status = h.status();
    let r = status.replication.as_ref().unwrap();
    assert_eq!((r.factor, r.summary.as_str()), (3, "1/3"));
    assert_eq!(r.shards[0].learners, ["demo-r1-0", "demo-r2-0"]);
    assert_eq!(
        r.shards[0].max_lag,
        Some(i64::try_from(LEARNER_LAG).unwrap())
    );
    let (state, reason, message) = condition(&status, "Progressing");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "ReplicationConverging")
    );
    assert_eq!(
        message,
        format!(
            "shard demo-0: CatchingUp (catching up: demo-r1-0 ({LEARNER_LAG} entries behind), \
             demo-r2-0 ({LEARNER_LAG} entries behind))"
        )
    );
    // 5. Caught up: one joint change to three voters.
    h.shards.groups.catch_up(0);
    let promote = RaftChange::SetVoters {
        voters: vec![member(0, 0, 10), member(0, 1, 11), member(0, 2, 12)],
    };
    assert_eq!(
        step(&mut kvs).await,
        (vec![(leader, group(0), promote)], ShardPhase::Promoting)
    );
    // 6. Stable: nothing more is sent, every copy in sync.
    assert_eq!(step(&mut kvs).await, (vec![], ShardPhase::Stable));
    let status = h.status();
    assert_eq!(status.replication.as_ref().unwrap().summary, "3/3");
    assert_eq!(condition(&status, "Progressing").0, "False");
    assert_eq!(condition(&status, "Degraded").0, "False");
    assert_eq!(status.phase, Some(Phase::Available));
    let voters: Vec<Role> = h
        .shards
        .groups
        .members(0)
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(voters, [Role::Voter; 3]);
}

#[tokio::test]
async fn three_to_one_moves_leadership_to_copy_0_lowers_the_voters_then_releases_the_copies() {
    let mut kvs = store(1, 1, false);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    h.shards.groups.formed(0, &[(0, 10), (1, 11), (2, 12)]);
    h.shards.groups.elect(0, 12);

    // 1. Copy 2 leads: leadership to copy 0 first.
    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    let transfer = RaftChange::TransferLeader {
        to: Some(member(0, 0, 10)),
    };
    assert_eq!(sent_since(&h, 0), [(url(0, 2), group(0), transfer)]);
    assert_eq!(
        h.status().replication.unwrap().shards[0].phase,
        ShardPhase::TransferringLeader
    );
    assert_eq!(h.shards.groups.leader(0).as_deref(), Some("demo-0"));

    // 2. The others leave the voters in one change, sent to copy 0.
    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    let lower = RaftChange::SetVoters {
        voters: vec![member(0, 0, 10)],
    };
    assert_eq!(sent_since(&h, 1), [(url(0, 0), group(0), lower)]);
    assert_eq!(
        h.shards.groups.members(0),
        [("demo-0".to_owned(), Role::Voter)]
    );
    assert!(h.calls().iter().all(|c| c.method != Method::DELETE));

    // 3. No group counts the copies: their StatefulSets scale to 0 first, nothing deleted.
    let before = h.calls().len();
    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    let calls = h.calls().split_off(before);
    let scaled: Vec<(String, i64)> = calls
        .iter()
        .filter(|c| c.is_operator_apply() && c.path.contains("/statefulsets/demo-r"))
        .map(|c| {
            let name = c.body["metadata"]["name"].as_str().unwrap().to_owned();
            (name, c.body["spec"]["replicas"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        scaled,
        [("demo-r1".to_owned(), 0), ("demo-r2".to_owned(), 0)]
    );
    assert!(
        calls.iter().all(|c| c.method != Method::DELETE),
        "{calls:?}"
    );
    assert_eq!(sent_since(&h, 2), [], "no further change to the group");

    // 4. Pods gone: the claims, then the store-wide budget back and the per-shard ones gone,
    // last the StatefulSets.
    let before = h.calls().len();
    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    let calls = h.calls().split_off(before);
    let at = |what: &dyn Fn(&support::Call) -> bool| -> Vec<usize> {
        calls
            .iter()
            .enumerate()
            .filter(|(_, c)| what(c))
            .map(|(i, _)| i)
            .collect()
    };
    let claims = at(&|c| c.method == Method::DELETE && c.path.ends_with("/persistentvolumeclaims"));
    let selectors: Vec<String> = claims
        .iter()
        .map(|i| support::label_selector(&calls[*i].query))
        .collect();
    assert_eq!(
        selectors,
        [
            "app.kubernetes.io/instance=demo,kvstore.dev/copy=1",
            "app.kubernetes.io/instance=demo,kvstore.dev/copy=2"
        ]
    );
    let store_pdb =
        at(&|c| c.is_operator_apply() && c.path.ends_with("/poddisruptionbudgets/demo"));
    let shard_pdb_gone =
        at(&|c| c.method == Method::DELETE && c.path.ends_with("/poddisruptionbudgets/demo-s0"));
    let sts_gone = at(&|c| c.method == Method::DELETE && c.path.contains("/statefulsets/demo-r"));
    assert_eq!(sts_gone.len(), 2, "{calls:?}");
    let last_claim = *claims.last().unwrap();
    let pdb_back = *store_pdb
        .iter()
        .find(|i| **i > last_claim)
        .expect("budget back");
    let pdb_gone = *shard_pdb_gone.last().expect("per-shard budget deleted");
    assert!(last_claim < pdb_back && pdb_back < pdb_gone && pdb_gone < sts_gone[0]);
    assert!(h.world.lock().unwrap().copies.is_empty());

    // 5. An unreplicated store again: the store-wide budget only, summary "-".
    h.reconcile(kvs.clone()).await.unwrap();
    let world = h.world.lock().unwrap();
    assert_eq!(world.pdbs.keys().collect::<Vec<_>>(), ["demo"]);
    drop(world);
    let r = h.status().replication.unwrap();
    assert_eq!((r.factor, r.summary.as_str()), (1, "-"));
    assert!(r.shards.is_empty());
}

#[tokio::test]
async fn a_copy_back_with_a_new_node_id_leaves_under_its_old_id_before_joining_again() {
    let mut kvs = store(1, 3, false);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    h.shards.groups.formed(0, &[(0, 10), (1, 11), (2, 12)]);
    // Copy 2's volume was replaced: its process answers with node ID 92 and no membership.
    h.shards.groups.start(0, 2, 92);

    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    let remove = RaftChange::SetVoters {
        voters: vec![member(0, 0, 10), member(0, 1, 11)],
    };
    assert_eq!(sent_since(&h, 0), [(url(0, 0), group(0), remove)]);
    let shard = &h.status().replication.unwrap().shards[0];
    assert_eq!(shard.phase, ShardPhase::Replacing);
    let note = shard.message.clone().unwrap();
    assert!(
        note.starts_with("removing replaced node 12 (demo-r2-0"),
        "{note}"
    );

    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    let add = RaftChange::AddLearner {
        member: member(0, 2, 92),
    };
    assert_eq!(sent_since(&h, 1), [(url(0, 0), group(0), add)]);

    h.shards.groups.catch_up(0);
    h.reconcile(kvs.clone()).await.unwrap();
    let promote = RaftChange::SetVoters {
        voters: vec![member(0, 0, 10), member(0, 1, 11), member(0, 2, 92)],
    };
    assert_eq!(sent_since(&h, 2), [(url(0, 0), group(0), promote)]);
}

/// The shard map pushes to `url` so far.
fn pushes_to(h: &Harness, url: &str) -> usize {
    let pushes = h.shards.pushes.lock().unwrap();
    pushes.iter().filter(|p| p.0 == url).count()
}

#[tokio::test]
async fn a_copy_0_on_a_new_volume_joins_replaces_its_old_id_and_gets_leadership_back() {
    let mut kvs = store(1, 3, false);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    h.shards.groups.formed(0, &[(0, 10), (1, 11), (2, 12)]);
    // Copy 0 (the leader) lost its volume: copy 1 was elected, and copy 0 came back with node
    // ID 90, in no group (copy 0 has no raft flags).
    h.shards.groups.elect(0, 11);
    h.shards.groups.start(0, 0, 90);
    let (copy0, leader) = (url(0, 0), url(0, 1));
    let mut seen = 0;
    let mut step = async |kvs: &mut KVStore| reconcile_once(&h, kvs, &mut seen).await;

    // 1. Join, to copy 0 itself, with the entry add-learner will name.
    let join = RaftChange::Join {
        member: member(0, 0, 90),
    };
    assert_eq!(
        step(&mut kvs).await,
        (vec![(copy0.clone(), group(0), join)], ShardPhase::Replacing)
    );
    // 2. On the leader: the old ID out of the voters first.
    let remove = RaftChange::SetVoters {
        voters: vec![member(0, 1, 11), member(0, 2, 12)],
    };
    assert_eq!(
        step(&mut kvs).await,
        (
            vec![(leader.clone(), group(0), remove)],
            ShardPhase::Replacing
        )
    );
    // 3. Then the new entry as a learner.
    let add = RaftChange::AddLearner {
        member: member(0, 0, 90),
    };
    assert_eq!(
        step(&mut kvs).await,
        (
            vec![(leader.clone(), group(0), add)],
            ShardPhase::AddingLearner
        )
    );
    // Outside its group, copy 0 got no shard map: it served nothing outside the group.
    assert_eq!(pushes_to(&h, &copy0), 0);
    // 4. Catching up: nothing is sent; a member now, copy 0 gets the map again.
    assert_eq!(step(&mut kvs).await, (vec![], ShardPhase::CatchingUp));
    assert_eq!(pushes_to(&h, &copy0), 1);
    // 5. Caught up: voters with it.
    h.shards.groups.catch_up(0);
    let promote = RaftChange::SetVoters {
        voters: vec![member(0, 1, 11), member(0, 2, 12), member(0, 0, 90)],
    };
    assert_eq!(
        step(&mut kvs).await,
        (
            vec![(leader.clone(), group(0), promote)],
            ShardPhase::Promoting
        )
    );
    // 6. In sync: leadership back to copy 0.
    let transfer = RaftChange::TransferLeader {
        to: Some(member(0, 0, 90)),
    };
    assert_eq!(
        step(&mut kvs).await,
        (
            vec![(leader, group(0), transfer)],
            ShardPhase::TransferringLeader
        )
    );
    assert_eq!(step(&mut kvs).await, (vec![], ShardPhase::Stable));
    assert_eq!(h.shards.groups.leader(0).as_deref(), Some("demo-0"));
    let status = h.status();
    assert_eq!(status.replication.unwrap().summary, "3/3");
    assert_eq!(status.phase, Some(Phase::Available));
}

#[tokio::test]
async fn a_copy_0_whose_join_is_refused_is_degraded_until_its_claim_is_deleted() {
    let mut kvs = store(1, 3, false);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    h.shards.groups.formed(0, &[(0, 10), (1, 11), (2, 12)]);
    h.shards.groups.elect(0, 11);
    // Copy 0 came back empty and took writes before its join (it held a map): refused.
    h.shards.groups.start(0, 0, 90);
    h.shards.groups.write_outside(0, 0, 3);
    let join = (
        url(0, 0),
        group(0),
        RaftChange::Join {
            member: member(0, 0, 90),
        },
    );
    for round in 0..2 {
        let before = h.shards.groups.changes().len();
        h.reconcile(kvs.clone()).await.unwrap();
        next(&h, &mut kvs);
        // Only the join is sent (again: it is idempotent); the leader is left alone.
        assert_eq!(
            sent_since(&h, before),
            std::slice::from_ref(&join),
            "round {round}"
        );
        let status = h.status();
        assert_eq!(status.phase, Some(Phase::Degraded));
        let (state, reason, message) = condition(&status, "Degraded");
        assert_eq!((state.as_str(), reason.as_str()), ("True", "JoinRefused"));
        assert!(
            message.starts_with("shard demo-0: copy demo-0 refused to join its group (")
                && message.contains("holds 3 keys of its own")
                && message.ends_with("delete its claim data-demo-0 to rebuild it empty"),
            "{message}"
        );
        let shard = &status.replication.unwrap().shards[0];
        assert_eq!(shard.phase, ShardPhase::Replacing);
        assert!(
            shard
                .message
                .as_deref()
                .unwrap()
                .starts_with("copy demo-0 refused")
        );
    }
    assert_eq!(pushes_to(&h, &url(0, 0)), 0);
    // The claim deleted: copy 0 comes back empty with another node ID, and joins.
    h.shards.groups.start(0, 0, 91);
    let before = h.shards.groups.changes().len();
    h.reconcile(kvs.clone()).await.unwrap();
    let join = RaftChange::Join {
        member: member(0, 0, 91),
    };
    assert_eq!(sent_since(&h, before), [(url(0, 0), group(0), join)]);
    let status = h.status();
    assert_eq!(condition(&status, "Degraded").0, "False");
}

#[tokio::test]
async fn a_shard_below_quorum_is_degraded_and_one_converging_is_progressing_in_one_write() {
    let kvs = store(2, 3, false);
    let h = Harness::new(world(&kvs, 3), FakeShards::default());
    // Shard 0: both followers 2000 entries behind, so one voter of three is in sync.
    h.shards.groups.formed(0, &[(0, 10), (1, 11), (2, 12)]);
    h.shards.groups.lag_all(0, 2_000);
    // Shard 1: copy 2 is a learner catching up.
    h.shards.groups.formed(1, &[(0, 110), (1, 111)]);
    h.shards.groups.start(1, 2, 112);
    let add = RaftChange::AddLearner {
        member: member(1, 2, 112),
    };
    h.shards.groups.change(&url(1, 0), &group(1), &add).unwrap();
    let before = h.shards.groups.changes().len();

    h.reconcile(kvs).await.unwrap();
    assert_eq!(sent_since(&h, before), [], "lagging voters are waited for");
    assert_eq!(h.statuses().len(), 1, "the status is written once");
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(
        condition(&status, "Degraded"),
        (
            "True".into(),
            "ShardBelowQuorum".into(),
            "shard demo-0: 1 of 3 voters in sync, quorum 2".into()
        )
    );
    assert_eq!(
        condition(&status, "Progressing"),
        (
            "True".into(),
            "ReplicationConverging".into(),
            format!(
                "shard demo-1: CatchingUp (catching up: demo-r2-1 ({LEARNER_LAG} entries behind))"
            )
        )
    );
    // The status patch as sent: status.replication's wire names and values.
    let body = status_body(&h);
    assert_eq!(
        body["replication"],
        json!({
            "factor": 3,
            "summary": "1/3",
            "shards": [
                {"shard": 0, "leader": "demo-0", "inSync": 1,
                 "voters": ["demo-0", "demo-r1-0", "demo-r2-0"], "maxLag": 2000,
                 "phase": "Stable"},
                {"shard": 1, "leader": "demo-1", "inSync": 2,
                 "voters": ["demo-1", "demo-r1-1"], "learners": ["demo-r2-1"],
                 "maxLag": LEARNER_LAG, "phase": "CatchingUp",
                 "message": format!("catching up: demo-r2-1 ({LEARNER_LAG} entries behind)")}
            ]
        })
    );
}

/// Copy 0's StatefulSet of `kvs` as the API server holds it: the store's own, `shards` pods
/// ready, at update revision `demo-new`.
fn copy0(kvs: &KVStore, shards: i32) -> Value {
    let inst = validate(kvs).unwrap();
    let mut sts = serde_json::to_value(build::statefulset(&inst, shards, None)).unwrap();
    sts["status"] = json!({"replicas": shards, "readyReplicas": shards,
                           "updateRevision": "demo-new"});
    sts
}

/// One shard of `kvs` at factor 3 whose copy 0 (the leader) runs the new template and both
/// followers the old one, copy 2 lagging most.
fn outdated_followers(kvs: &KVStore) -> Harness {
    let mut world = world(kvs, 3);
    world.statefulset = Some(copy0(kvs, 1));
    for k in [1, 2] {
        world
            .revisions
            .insert(format!("demo-r{k}"), format!("demo-r{k}-new"));
    }
    world.pods = vec![
        support::pod("demo-0", 0, "demo-new", true),
        support::pod("demo-r1-0", 1, "demo-r1-old", true),
        support::pod("demo-r2-0", 2, "demo-r2-old", true),
    ];
    let h = Harness::new(world, FakeShards::default());
    h.shards.groups.formed(0, &[(0, 10), (1, 11), (2, 12)]);
    h.shards.groups.lag(0, 11, 5);
    h.shards.groups.lag(0, 12, 40);
    h
}

/// The pods deleted by the calls since `from`.
fn deleted_since(h: &Harness, from: usize) -> Vec<String> {
    h.calls()
        .split_off(from)
        .iter()
        .filter(|c| c.method == Method::DELETE && c.path.contains("/pods/"))
        .map(|c| c.path.rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_store_waiting_for_a_roll_slot_says_so_and_rolls_once_the_slot_is_free() {
    let mut kvs = store(1, 3, false);
    let h = outdated_followers(&kvs);
    // Another store holds the one slot (--max-concurrent-rolls 1).
    assert!(h.ctx.may_roll("other/store", false));

    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    assert_eq!(deleted_since(&h, 0), Vec::<String>::new());
    let status = h.status();
    let message = "waiting for a roll slot: 1 store rolls at once (--max-concurrent-rolls)";
    assert_eq!(
        serde_json::to_value(&status.roll).unwrap(),
        json!({"revision": "demo-new,demo-r1-new,demo-r2-new", "phase": "Waiting",
               "message": message})
    );
    assert_eq!(
        condition(&status, "Progressing"),
        (
            "True".into(),
            "Rolling".into(),
            format!("a roll to revision demo-new,demo-r1-new,demo-r2-new waits: {message}")
        )
    );
    assert_eq!(status.phase, Some(Phase::Available));

    // Still taken: a queued roll is no roll under way, so it does not resume past the limit.
    let before = h.calls().len();
    h.reconcile(kvs.clone()).await.unwrap();
    next(&h, &mut kvs);
    assert_eq!(deleted_since(&h, before), Vec::<String>::new());

    // The slot freed: the most lagged follower goes, and Progressing names it.
    h.ctx.roll_done("other/store");
    let before = h.calls().len();
    h.reconcile(kvs.clone()).await.unwrap();
    assert_eq!(deleted_since(&h, before), ["demo-r2-0"]);
    let status = h.status();
    assert_eq!(
        status.roll.as_ref().unwrap().phase,
        operator::status::RollPhase::Rolling
    );
    let (state, reason, message) = condition(&status, "Progressing");
    assert_eq!((state.as_str(), reason.as_str()), ("True", "Rolling"));
    assert_eq!(
        message,
        "rolling the pods to revision demo-new,demo-r1-new,demo-r2-new: demo-r2-0 Deleting"
    );
}

#[tokio::test]
async fn an_outdated_follower_is_deleted_after_its_step_is_written_and_the_roll_resumes_from_it() {
    let mut kvs = store(1, 3, false);
    let h = outdated_followers(&kvs);

    let action = h.reconcile(kvs.clone()).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(2))
    );
    let calls = h.calls();
    let deleted = calls
        .iter()
        .position(|c| c.method == Method::DELETE && c.path.contains("/pods/"))
        .expect("a pod deleted");
    // The most lagged follower, named with its uid (a pod recreated meanwhile is left alone).
    assert!(
        calls[deleted].path.ends_with("/pods/demo-r2-0"),
        "{:?}",
        calls[deleted]
    );
    assert_eq!(
        calls[deleted].body["preconditions"]["uid"],
        "demo-r2-0-demo-r2-old"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.method == Method::DELETE && c.path.contains("/pods/"))
            .count(),
        1,
        "one pod per shard at a time"
    );
    // status.roll was written before the delete.
    let written = calls[..deleted]
        .iter()
        .rev()
        .find(|c| c.path.ends_with("/kvstores/demo/status"))
        .expect("the step persisted first");
    assert_eq!(
        written.body["status"]["roll"],
        json!({"revision": "demo-new,demo-r1-new,demo-r2-new", "phase": "Rolling",
               "pods": [{"pod": "demo-r2-0", "shard": 0, "step": "Deleting"}]})
    );
    assert!(
        h.shards.groups.changes().is_empty(),
        "a follower needs no transfer"
    );

    // A restarted operator resumes: the pod is gone, so it waits for its replacement.
    next(&h, &mut kvs);
    let before = h.calls().len();
    h.reconcile(kvs.clone()).await.unwrap();
    let calls = h.calls().split_off(before);
    assert!(
        calls.iter().all(|c| c.method != Method::DELETE),
        "{calls:?}"
    );
    let roll = h.status().roll.unwrap();
    assert_eq!(roll.pods[0].step, operator::status::RollStep::Replacing);
    assert_eq!(
        roll.message.as_deref(),
        Some("demo-r2-0 is being recreated")
    );

    // The new pod Ready and in sync: the shard's next follower goes.
    next(&h, &mut kvs);
    h.world
        .lock()
        .unwrap()
        .pods
        .push(support::pod("demo-r2-0", 2, "demo-r2-new", true));
    h.shards.groups.lag(0, 12, 0);
    let before = h.calls().len();
    h.reconcile(kvs.clone()).await.unwrap();
    let calls = h.calls().split_off(before);
    let deletes: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == Method::DELETE && c.path.contains("/pods/"))
        .map(|c| c.path.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(deletes, ["demo-r1-0"]);
}
