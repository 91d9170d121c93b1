//! Apply is deterministic: the same log applied on two stores (one through openraft's
//! streaming `apply`, one entry by entry, in other batches and across a reopen) gives the same
//! outcomes, byte-identical records and the same versions, version floor and topology.

use std::sync::Arc;

use bytes::Bytes;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode};
use kvproto::{MigrationPhase, Sharding, Topology};
use openraft::storage::RaftStateMachine;
use proptest::prelude::*;

use super::target::{TestTarget, decode};
use super::{Fresh, dump, entry, fresh, key, open_db, open_storage, put, routed, streamed};
use crate::command::{Command, FenceCheck, Outcome, Precondition};
use crate::types::Entry;

fn peers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("http://s-{i}:80")).collect()
}

fn topologies() -> (Topology, Topology, Topology, Topology) {
    let stable1 = Topology::stable(1, Sharding::Modulo, peers(2));
    let handoff = Topology {
        epoch: 2,
        shards: 3,
        peers: peers(3),
        migration: Some(kvproto::topology::Migration {
            from_shards: 2,
            phase: MigrationPhase::Handoff,
        }),
        ..stable1.clone()
    };
    let copy = Topology {
        migration: Some(kvproto::topology::Migration {
            from_shards: 2,
            phase: MigrationPhase::Copy,
        }),
        ..handoff.clone()
    };
    let stable2 = Topology {
        migration: None,
        ..handoff.clone()
    };
    (stable1, handoff, copy, stable2)
}

/// A log touching every rule: clocks behind the floor, preconditions, tombstones during a
/// migration, imports above the clock, a stale topology, misdirection, cleanup.
/// Shard 0 owns 'b', 'd', 'f', 'h' under 2 shards ('b' = 98); 'f' (102) is 0 under 3 too.
fn script() -> Vec<Command> {
    let (stable1, handoff, copy, stable2) = topologies();
    let r1 = routed(&stable1);
    let with = |cmd: Command, r| match cmd {
        Command::Put {
            key,
            value,
            precondition,
            at_micros,
            ..
        } => Command::Put {
            key,
            value,
            precondition,
            at_micros,
            routed: r,
            remote: None,
        },
        other => other,
    };
    vec![
        Command::SetTopology(stable1.clone()),
        with(put("b", "1", 100), r1),
        with(put("b", "2", 50), r1),
        Command::Put {
            key: key("b"),
            value: Bytes::from_static(b"x"),
            precondition: Precondition::IfVersion(100),
            at_micros: 60,
            routed: r1,
            remote: None,
        },
        Command::Put {
            key: key("d"),
            value: Bytes::from_static(b"d"),
            precondition: Precondition::IfAbsent,
            at_micros: 70,
            routed: r1,
            remote: None,
        },
        Command::Delete {
            key: key("b"),
            precondition: Precondition::None,
            at_micros: 0,
            routed: r1,
            remote: None,
        },
        Command::SetTopology(handoff.clone()),
        Command::Delete {
            key: key("f"),
            precondition: Precondition::None,
            at_micros: 0,
            routed: routed(&handoff),
            remote: None,
        },
        with(put("f", "f", 0), routed(&handoff)),
        Command::Delete {
            key: key("f"),
            precondition: Precondition::None,
            at_micros: 0,
            routed: routed(&handoff),
            remote: None,
        },
        Command::Import {
            mode: ImportMode::IfAbsent,
            records: vec![
                BulkRecord {
                    key: key("f"),
                    version: 1,
                    value: Some(Bytes::from_static(b"old")),
                },
                BulkRecord {
                    key: key("l"),
                    version: 1_000_000_000_000_000,
                    value: Some(Bytes::from_static(b"imported")),
                },
            ],
            fence: FenceCheck::OnLeaderOnly,
        },
        with(put("h", "after import", 5), routed(&handoff)),
        // Routed under epoch 1, applied under the handoff: 'd' (100) moves to shard 1 of 3.
        with(put("d", "late", 1), r1),
        Command::SetTopology(stable1),
        Command::SetTopology(copy),
        Command::SetTopology(stable2),
        Command::Cleanup {
            fence: FenceCheck::OnLeaderOnly,
        },
    ]
}

fn entries(cmds: Vec<Command>) -> Vec<Entry> {
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, c))
        .collect()
}

#[test]
fn the_script_gives_the_expected_outcomes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let outcomes: Vec<Outcome> = entries(script())
        .iter()
        .map(|e| s.sm.apply_entry(e).expect("applies"))
        .collect();
    let v = |o: &Outcome| match o {
        Outcome::Written { version } | Outcome::Deleted { version } => *version,
        other => panic!("not a write: {other:?}"),
    };
    assert_eq!(outcomes[0], Outcome::TopologySet);
    assert_eq!(v(&outcomes[1]), 100);
    assert_eq!(
        v(&outcomes[2]),
        101,
        "a clock behind the floor still moves forward"
    );
    assert_eq!(
        outcomes[3],
        Outcome::PreconditionFailed { current: Some(101) }
    );
    assert_eq!(v(&outcomes[4]), 102);
    assert_eq!(v(&outcomes[5]), 103);
    assert_eq!(outcomes[7], Outcome::NotFound);
    assert_eq!(v(&outcomes[8]), 104);
    assert_eq!(v(&outcomes[9]), 105);
    assert!(matches!(outcomes[10], Outcome::Imported(r) if r.applied == 1 && r.skipped == 1));
    assert_eq!(
        v(&outcomes[11]),
        1_000_000_000_000_001,
        "the clock moved past the import"
    );
    assert_eq!(outcomes[12], Outcome::Misdirected);
    assert!(matches!(outcomes[13], Outcome::TopologyConflict { .. }));
    assert_eq!(outcomes[15], Outcome::TopologySet);
    // Under 3 shards 'f' (102) and 'l' (108) are shard 0's; 'd' (100) and 'h' (104) go.
    assert_eq!(
        outcomes[16],
        Outcome::Cleaned(CleanupReport {
            removed_keys: 2,
            removed_tombstones: 0
        })
    );
    let records = dump(&s);
    let keys: Vec<&[u8]> = records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![b"f".as_slice(), b"l"]);
    let f = decode(b"f", &records[0].1).expect("record");
    assert!(!f.live, "a delete during a migration keeps a tombstone");
    assert_eq!(f.version, 105);
    assert_eq!(s.state_machine().version_floor(), 1_000_000_000_000_001);
    assert_eq!(s.state_machine().applied_index(), Some(17));
}

#[test]
fn a_cleanup_during_a_migration_is_refused_at_apply_and_changes_nothing() {
    let (stable1, handoff, _, _) = topologies();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let log = entries(vec![
        Command::SetTopology(stable1.clone()),
        put("b", "1", 100),
        Command::SetTopology(handoff),
        Command::Cleanup {
            fence: FenceCheck::OnLeaderOnly,
        },
    ]);
    let outcomes: Vec<Outcome> = log
        .iter()
        .map(|e| s.sm.apply_entry(e).expect("applies"))
        .collect();
    assert!(
        matches!(&outcomes[3], Outcome::TopologyConflict { message } if message.contains("migrating")),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(dump(&s).len(), 1, "nothing was dropped");
    assert_eq!(s.state_machine().applied_index(), Some(4));
}

#[tokio::test]
async fn the_same_log_gives_the_same_state_on_two_stores() {
    let log = entries(script());
    // Store A: through openraft's streaming apply, all at once.
    let mut a = streamed(&log).await;
    let a = &mut a.s;

    // Store B: entry by entry, reopened half way.
    let Fresh {
        s: mut b,
        db: db_b,
        dir: db_dir,
    } = fresh();
    for e in &log[..7] {
        b.sm.apply_entry(e).expect("applies");
    }
    drop(b);
    drop(db_b);
    let db_b = open_db(db_dir.path());
    let mut b = open_storage(&db_b, Arc::new(TestTarget::default()));
    for e in &log[7..] {
        b.sm.apply_entry(e).expect("applies");
    }

    assert_eq!(dump(a), dump(&b));
    assert!(!dump(a).is_empty());
    let (sa, sb) = (a.state_machine(), b.state_machine());
    assert_eq!(sa.version_floor(), sb.version_floor());
    assert_eq!(sa.topology(), sb.topology());
    assert_eq!(sa.applied_index(), sb.applied_index());
    assert_eq!(
        a.sm.applied_state().await.expect("state"),
        b.sm.applied_state().await.expect("state")
    );
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u64),
    PutIfVersion(u8, u64, u64),
    PutIfAbsent(u8, u64),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..6;
    let at = 0u64..200;
    prop_oneof![
        (k.clone(), at.clone()).prop_map(|(k, a)| Op::Put(k, a)),
        (k.clone(), at.clone(), 0u64..210).prop_map(|(k, a, v)| Op::PutIfVersion(k, a, v)),
        (k.clone(), at).prop_map(|(k, a)| Op::PutIfAbsent(k, a)),
        k.prop_map(Op::Delete),
    ]
}

fn command(op: &Op) -> Command {
    let k = |i: &u8| key(&format!("k{i}"));
    let p = |k2, pre, at| Command::Put {
        key: k2,
        value: Bytes::from(format!("{op:?}")),
        precondition: pre,
        at_micros: at,
        routed: Default::default(),
        remote: None,
    };
    match op {
        Op::Put(i, at) => p(k(i), Precondition::None, *at),
        Op::PutIfVersion(i, at, v) => p(k(i), Precondition::IfVersion(*v), *at),
        Op::PutIfAbsent(i, at) => p(k(i), Precondition::IfAbsent, *at),
        Op::Delete(i) => Command::Delete {
            key: k(i),
            precondition: Precondition::None,
            at_micros: 0,
            routed: Default::default(),
            remote: None,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_logs_apply_identically(ops in proptest::collection::vec(op(), 1..60)) {
        let log = entries(ops.iter().map(command).collect());
        let (da, dbb) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let (db_a, db_b) = (open_db(da.path()), open_db(dbb.path()));
        let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
        let mut b = open_storage(&db_b, Arc::new(TestTarget::default()));
        let mut last = 0;
        for e in &log {
            let oa = a.sm.apply_entry(e).expect("applies");
            let ob = b.sm.apply_entry(e).expect("applies");
            prop_assert_eq!(&oa, &ob);
            if let Outcome::Written { version } | Outcome::Deleted { version } = oa {
                prop_assert!(version > last, "versions only grow: {} after {}", version, last);
                last = version;
            }
        }
        prop_assert_eq!(dump(&a), dump(&b));
        prop_assert_eq!(a.state_machine().version_floor(), b.state_machine().version_floor());
    }
}
