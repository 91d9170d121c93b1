//! Apply determinism across the two write paths: one script of topology pushes, conditional
//! writes, deletes (removed while stable, tombstoned during a migration), imports in both modes,
//! a write that raced a topology change, and a cleanup, run (a) through kvserver's direct path
//! (the real router, `oneshot`) and (b) as commands through a one-voter `kvraft::ShardGroup`
//! whose state machine is kvserver's store (`ApplyTarget`). Every answer, every stored record
//! (byte for byte: versions, tombstones), the counters and the cached reads are the same.
//!
//! The commands carry as `at_micros` the version (a) handed out, as a leader stamps its own
//! clock into what it proposes: the versions then agree exactly when both paths follow the same
//! rule (`max(floor + 1, clock)`, the floor past every imported version).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::*;
use kvproto::bulk::{BulkCodec, BulkRecord, MAX_VERSION};
use kvproto::raft::{GroupId, Member};
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use kvproto::{Fence, Key, Sharding, Topology};
use kvraft::{Command, Durability, FenceCheck, Outcome, Precondition, Routed, ShardGroup, Storage};
use kvserver::SyncMode;
use kvserver::storage::Store;

/// One step of the script.
#[derive(Clone)]
enum Step {
    Topology(Topology),
    Put(Key, &'static str, Precondition),
    Delete(Key, Precondition),
    Import(ImportMode, Vec<BulkRecord>),
    Cleanup,
    /// A put the leader routed under `under` while the shard had applied a newer map.
    Raced(Key, &'static str, Topology),
}

/// An answer, as both paths can say it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    Written(u64),
    Deleted(u64),
    PreconditionFailed,
    NotFound,
    /// Not applied here: forwarded (a), misdirected (b).
    NotHere,
    TopologySet,
    TopologyConflict,
    Imported(ImportReport),
    Cleaned(CleanupReport),
}

fn peers(n: usize) -> Vec<String> {
    // Nobody listens there: a forward fails at once.
    (0..n).map(|_| "http://127.0.0.1:1".to_owned()).collect()
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn record(k: &str, version: u64, value: Option<&'static str>) -> BulkRecord {
    BulkRecord {
        key: key(k),
        version,
        value: value.map(|v| Bytes::from_static(v.as_bytes())),
    }
}

/// The script: shard 0 of 2, then a migration to 3 shards (copy, handoff), then stable at 3.
fn script() -> Vec<Step> {
    let stable1 = Topology::stable(1, Sharding::Modulo, peers(2));
    let copy = Topology {
        epoch: 2,
        shards: 3,
        peers: peers(3),
        migration: Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Copy,
        }),
        ..stable1.clone()
    };
    let handoff = Topology {
        migration: Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Handoff,
        }),
        ..copy.clone()
    };
    let stable2 = Topology {
        migration: None,
        ..handoff.clone()
    };
    let owned = |t: &Topology, k: &str| t.owner(k.as_bytes()) == 0;
    let letters: Vec<String> = ('a'..='z').map(String::from).collect();
    let pick = |want: &dyn Fn(&str) -> bool| -> &'static str {
        let k = letters
            .iter()
            .find(|k| want(k))
            .expect("a key of that kind");
        Box::leak(k.clone().into_boxed_str())
    };
    // Ours under both maps, ours only under the old one.
    let both = pick(&|k| owned(&stable1, k) && owned(&stable2, k));
    let moving = pick(&|k| owned(&stable1, k) && !owned(&stable2, k));
    let other = pick(&|k| owned(&stable1, k) && k != both && k != moving);
    let far = MAX_VERSION / 2;
    vec![
        Step::Topology(stable1.clone()),
        Step::Put(key(moving), "1", Precondition::None),
        Step::Put(key(moving), "2", Precondition::None),
        Step::Put(key(moving), "x", Precondition::IfVersion(1)),
        Step::Put(key(other), "o", Precondition::IfAbsent),
        Step::Put(key(other), "o2", Precondition::IfAbsent),
        Step::Delete(key(moving), Precondition::None),
        Step::Delete(key(moving), Precondition::None),
        Step::Put(key(moving), "back", Precondition::None),
        Step::Topology(copy.clone()),
        Step::Topology(stable1.clone()),
        Step::Put(key(both), "b", Precondition::None),
        Step::Delete(key(both), Precondition::None),
        Step::Delete(key(both), Precondition::None),
        Step::Delete(key(both), Precondition::IfVersion(7)),
        Step::Import(
            ImportMode::IfAbsent,
            vec![
                record(both, 1, Some("resurrected?")),
                record("zz", far, Some("imported")),
            ],
        ),
        Step::Import(
            ImportMode::Overwrite,
            vec![
                record(other, 5, Some("older")),
                record(other, far + 1, Some("newer")),
                record("zy", 3, None),
            ],
        ),
        Step::Topology(handoff.clone()),
        Step::Raced(key(moving), "raced", stable1.clone()),
        Step::Put(key(both), "above the import", Precondition::None),
        Step::Topology(stable2.clone()),
        Step::Cleanup,
        Step::Put(key(both), "last", Precondition::IfAbsent),
    ]
}

fn etag(r: &common::Answer) -> u64 {
    let v = r.headers["etag"].to_str().unwrap();
    v.trim_matches('"').parse().unwrap()
}

/// The fence of a move step under `applied` (imports in copy, cleanups once stable).
fn fence(applied: Option<&Topology>) -> String {
    match applied {
        None => String::new(),
        Some(t) => {
            let phase = match t.migration {
                Some(_) => "copy",
                None => "stable",
            };
            format!("epoch={}&phase={phase}", t.epoch)
        }
    }
}

/// The same fence as a value.
fn fence_of(applied: Option<&Topology>) -> Option<Fence> {
    applied.map(|t| match t.migration {
        Some(_) => Fence::copy(t.epoch),
        None => Fence::stable(t.epoch),
    })
}

/// (a): the step through the router.
async fn direct(router: &axum::Router, step: &Step, applied: Option<&Topology>) -> Said {
    let keyed = |method: &str, k: &Key, pre: &Precondition, body: &'static str| {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/v1/keys/{}", k.as_str()));
        match pre {
            Precondition::None => {}
            Precondition::IfAbsent => req = req.header("if-none-match", "*"),
            Precondition::IfVersion(v) => req = req.header("if-match", format!("\"{v}\"")),
        }
        req.body(Body::from(body)).unwrap()
    };
    let r = match step {
        Step::Topology(t) => {
            let r = send(
                router,
                admin(
                    "PUT",
                    "/v1/admin/topology",
                    serde_json::to_string(t).unwrap(),
                ),
            )
            .await;
            return match r.status {
                StatusCode::OK => Said::TopologySet,
                StatusCode::CONFLICT => Said::TopologyConflict,
                other => panic!("topology push: {other} {}", r.text()),
            };
        }
        Step::Put(k, v, pre) => send(router, keyed("PUT", k, pre, v)).await,
        Step::Raced(k, v, _) => send(router, keyed("PUT", k, &Precondition::None, v)).await,
        Step::Delete(k, pre) => {
            let r = send(router, keyed("DELETE", k, pre, "")).await;
            return match r.status {
                StatusCode::NO_CONTENT => Said::Deleted(etag(&r)),
                StatusCode::NOT_FOUND => Said::NotFound,
                StatusCode::PRECONDITION_FAILED => Said::PreconditionFailed,
                other => panic!("delete: {other} {}", r.text()),
            };
        }
        Step::Import(mode, records) => {
            let mode = match mode {
                ImportMode::IfAbsent => "if-absent",
                ImportMode::Overwrite => "overwrite",
            };
            let r = send(
                router,
                admin(
                    "POST",
                    &format!("/v1/admin/import?mode={mode}&{}", fence(applied)),
                    BulkCodec::encode_all(records),
                ),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            return Said::Imported(serde_json::from_slice(&r.body).unwrap());
        }
        Step::Cleanup => {
            let uri = format!("/v1/admin/cleanup?{}", fence(applied));
            let r = send(router, admin("POST", &uri, "")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            return Said::Cleaned(serde_json::from_slice(&r.body).unwrap());
        }
    };
    match r.status {
        StatusCode::NO_CONTENT => Said::Written(etag(&r)),
        StatusCode::PRECONDITION_FAILED => Said::PreconditionFailed,
        StatusCode::SERVICE_UNAVAILABLE => Said::NotHere,
        other => panic!("put: {other} {}", r.text()),
    }
}

/// (b): the step as the command a leader would propose, stamped with (a)'s version.
fn command(step: &Step, applied: Option<&Topology>, stamped: &Said) -> Command {
    let at_micros = match stamped {
        Said::Written(v) | Said::Deleted(v) => *v,
        _ => 0,
    };
    let routed = applied.map(Routed::of).unwrap_or_default();
    match step.clone() {
        Step::Topology(t) => Command::SetTopology(t),
        Step::Put(key, v, precondition) => Command::Put {
            key,
            value: Bytes::from_static(v.as_bytes()),
            precondition,
            at_micros,
            routed,
            remote: None,
        },
        Step::Raced(key, v, under) => Command::Put {
            key,
            value: Bytes::from_static(v.as_bytes()),
            precondition: Precondition::None,
            at_micros,
            routed: Routed::of(&under),
            remote: None,
        },
        Step::Delete(key, precondition) => Command::Delete {
            key,
            precondition,
            at_micros,
            routed,
            remote: None,
        },
        // The fence (a) sent, judged again at apply.
        Step::Import(mode, records) => Command::Import {
            mode,
            records,
            fence: FenceCheck::AtApply(fence_of(applied)),
        },
        Step::Cleanup => Command::Cleanup {
            fence: FenceCheck::AtApply(fence_of(applied)),
        },
    }
}

fn answer_of(outcome: Outcome) -> Said {
    match outcome {
        Outcome::Written { version } => Said::Written(version),
        Outcome::Deleted { version } => Said::Deleted(version),
        Outcome::PreconditionFailed { .. } => Said::PreconditionFailed,
        Outcome::NotFound => Said::NotFound,
        Outcome::Misdirected => Said::NotHere,
        Outcome::TopologyConflict { .. } => Said::TopologyConflict,
        Outcome::Fenced { message } => panic!("a step fenced at apply: {message}"),
        Outcome::TopologySet => Said::TopologySet,
        Outcome::Imported(r) => Said::Imported(r),
        Outcome::Cleaned(r) => Said::Cleaned(r),
        Outcome::Noop => panic!("a command applied as a no-op"),
    }
}

/// A one-voter group over a fresh store, leading.
async fn group_over(dir: &std::path::Path) -> (Arc<Store>, ShardGroup<Store>) {
    let store = Arc::new(Store::open(&dir.join("store"), SyncMode::Batch, 1 << 20).unwrap());
    let group = GroupId {
        store_uid: "uid-1".to_owned(),
        shard: 0,
    };
    let cfg = kvraft::StorageConfig {
        group: group.clone(),
        durability: Durability::Batch,
        boot_id: "boot-a".to_owned(),
    };
    let storage = Storage::open(&store.database().unwrap(), &cfg, store.clone()).unwrap();
    let identity = storage.identity().clone();
    let me = Member {
        node_id: identity.node_id,
        pod: "kv-0".to_owned(),
        addr: "http://127.0.0.1:1".to_owned(),
    };
    let raft_cfg = kvraft::RaftConfig::new(reqwest::Client::new());
    let g = ShardGroup::open(storage, identity, me.clone(), Some(group.clone()), raft_cfg)
        .await
        .unwrap();
    g.initialize(group, vec![me]).await.unwrap();
    for _ in 0..200 {
        if g.is_leader() {
            return (store, g);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a one-voter group elects itself within 10 s");
}

fn raw_records(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = store.database().unwrap();
    let kv = db
        .keyspace(
            kvraft::RECORDS_KEYSPACE,
            fjall::KeyspaceCreateOptions::default,
        )
        .unwrap();
    kv.iter()
        .map(|g| {
            let (k, v) = g.into_inner().unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_path_and_the_group_apply_a_script_alike() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (store, group) = group_over(dir.path()).await;
    let mut applied: Option<Topology> = None;
    let mut answers = Vec::new();
    for step in script() {
        let a = direct(&f.router, &step, applied.as_ref()).await;
        let b = answer_of(
            group
                .write(command(&step, applied.as_ref(), &a))
                .await
                .unwrap(),
        );
        assert_eq!(a, b, "the two paths disagree");
        if let (Step::Topology(t), Said::TopologySet) = (&step, &a) {
            applied = Some(t.clone());
        }
        answers.push(a);
    }
    // The script reached every rule it is written for.
    for kind in [
        Said::PreconditionFailed,
        Said::NotFound,
        Said::NotHere,
        Said::TopologyConflict,
    ] {
        assert!(answers.contains(&kind), "{kind:?} never answered");
    }
    let records = raw_records(&f.state.store);
    assert_eq!(records, raw_records(&store), "records differ byte for byte");
    assert!(!records.is_empty());
    assert_eq!(
        (store.key_count(), store.value_bytes()),
        (f.state.store.key_count(), f.state.store.value_bytes())
    );
    for (k, _) in &records {
        let k = Key::from_bytes(k).unwrap();
        assert_eq!(store.get(&k).unwrap(), f.state.store.get(&k).unwrap());
    }
    group.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_written_during_a_migration_are_the_same_on_both_paths() {
    // The records once the handoff is applied: the tombstones of the migration are there on
    // both, byte for byte (versions included).
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (store, group) = group_over(dir.path()).await;
    let steps = script();
    let cut = steps
        .iter()
        .position(|s| matches!(s, Step::Raced(..)))
        .unwrap();
    let mut applied: Option<Topology> = None;
    for step in &steps[..cut] {
        let a = direct(&f.router, step, applied.as_ref()).await;
        let b = answer_of(
            group
                .write(command(step, applied.as_ref(), &a))
                .await
                .unwrap(),
        );
        assert_eq!(a, b);
        if let (Step::Topology(t), Said::TopologySet) = (step, &a) {
            applied = Some(t.clone());
        }
    }
    let records = raw_records(&store);
    assert_eq!(records, raw_records(&f.state.store));
    let tombstones = records
        .iter()
        .filter(|(k, _)| {
            let k = Key::from_bytes(k).unwrap();
            store.get(&k).unwrap().is_some_and(|r| r.is_tombstone())
        })
        .count();
    assert_eq!(
        tombstones, 2,
        "the delete during the copy and the imported tombstone"
    );
    group.shutdown().await;
}

/// One write of [`the_previous_owners_version_decides_alike_on_both_paths`]: a put (`Some`
/// value) or a tombstoning delete, its precondition, and the old owner's version read through.
struct Against(
    &'static str,
    Option<&'static str>,
    Precondition,
    Option<u64>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_owners_version_decides_alike_on_both_paths() {
    // During a move the new owner judges a conditional write or a delete of a key it holds
    // nothing for against the old owner's version (read through by the leader, carried in the
    // command): the store's direct path (factor 1) and the group's apply answer the same, and a
    // delete of a key only the old owner holds is a tombstone, not a 404.
    use kvraft::WriteOutcome as W;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (store, group) = group_over(dir.path()).await;
    let stable = Topology::stable(1, Sharding::Modulo, peers(1));
    let copy = Topology {
        epoch: 2,
        shards: 2,
        peers: peers(2),
        migration: Some(Migration {
            from_shards: 1,
            phase: MigrationPhase::Copy,
        }),
        ..stable.clone()
    };
    for t in [&stable, &copy] {
        let set = group.write(Command::SetTopology(t.clone())).await.unwrap();
        assert_eq!(set, Outcome::TopologySet);
    }
    // Keys shard 0 keeps under the copy map ('b' = 98, 'd' = 100, ...).
    let theirs = 50;
    let far = MAX_VERSION / 2;
    let steps = [
        Against(
            "b",
            Some("cas"),
            Precondition::IfVersion(theirs),
            Some(theirs),
        ),
        Against(
            "d",
            Some("x"),
            Precondition::IfVersion(theirs - 1),
            Some(theirs),
        ),
        Against("f", Some("x"), Precondition::IfAbsent, Some(theirs)),
        Against("h", None, Precondition::None, Some(theirs)),
        Against("h", Some("back"), Precondition::IfAbsent, Some(theirs)),
        Against("j", None, Precondition::IfVersion(theirs), Some(theirs)),
        Against("l", None, Precondition::IfVersion(3), Some(theirs)),
        Against("n", None, Precondition::None, None),
        Against("p", Some("above"), Precondition::None, Some(far)),
    ];
    let mut said = Vec::new();
    for Against(k, value, pre, remote) in steps {
        let k = key(k);
        let a = match value {
            Some(v) => f.state.store.put(&k, Bytes::from(v), pre, remote).await,
            None => {
                let tombstone = kvserver::storage::DeleteMode::Tombstone;
                f.state.store.delete(&k, pre, tombstone, remote).await
            }
        }
        .unwrap();
        let at_micros = match a {
            W::Written(v) => v,
            _ => 0,
        };
        let (routed, precondition) = (Routed::of(&copy), pre);
        let cmd = match value {
            Some(v) => Command::Put {
                key: k.clone(),
                value: Bytes::from(v),
                precondition,
                at_micros,
                routed,
                remote,
            },
            None => Command::Delete {
                key: k.clone(),
                precondition,
                at_micros,
                routed,
                remote,
            },
        };
        let b = answer_of(group.write(cmd).await.unwrap());
        let a = match (a, value) {
            (W::Written(v), Some(_)) => Said::Written(v),
            (W::Written(v), None) => Said::Deleted(v),
            (W::NotFound, _) => Said::NotFound,
            (W::PreconditionFailed(_), _) => Said::PreconditionFailed,
        };
        assert_eq!(a, b, "{} {pre:?} against {remote:?}", k.as_str());
        said.push(a);
    }
    assert!(
        matches!(said[0], Said::Written(_)),
        "a CAS at the old owner's version"
    );
    assert_eq!(
        said[1..3],
        [Said::PreconditionFailed, Said::PreconditionFailed]
    );
    assert!(matches!(said[3], Said::Deleted(_)), "deleted, not 404");
    assert!(matches!(said[4], Said::Written(_)), "the tombstone ends it");
    assert!(matches!(said[5], Said::Deleted(_)));
    assert_eq!(said[6], Said::PreconditionFailed);
    assert_eq!(said[7], Said::NotFound, "nothing anywhere");
    assert!(
        matches!(said[8], Said::Written(v) if v > far),
        "{:?}",
        said[8]
    );
    let records = raw_records(&store);
    assert_eq!(records, raw_records(&f.state.store), "records differ");
    let tombstone = store.get(&key("j")).unwrap().unwrap();
    assert!(tombstone.is_tombstone() && tombstone.version > theirs);
    group.shutdown().await;
}
