//! Snapshots: a view built on one store and installed on another gives equal contents and
//! applied state; the view is the moment the builder was asked for; the current snapshot is
//! never newer than `applied`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;

use super::target::TestTarget;
use super::{dump, entry, open_db, open_storage, put};
use crate::command::Command;
use crate::records;

fn log() -> Vec<crate::types::Entry> {
    let mut cmds: Vec<Command> = (0..2500)
        .map(|i| put(&format!("key-{i:05}"), &format!("value {i}"), 10 + i))
        .collect();
    cmds.push(Command::SetTopology(kvproto::Topology::stable(
        7,
        kvproto::Sharding::Jump,
        vec!["http://s-0:80".into()],
    )));
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, c))
        .collect()
}

fn record_generations(db: &fjall::Database) -> Vec<String> {
    let mut names: Vec<String> = db
        .list_keyspace_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| n == records::RECORDS_KEYSPACE || n.starts_with("kv."))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn build_then_install_gives_equal_contents() {
    let (da, dbb) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let db_a = open_db(da.path());
    let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
    let log = log();
    for e in &log {
        a.sm.apply_entry(e).expect("applies");
    }
    assert!(
        a.sm.get_current_snapshot().await.expect("reads").is_none(),
        "none built yet"
    );
    let snap =
        a.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("builds");
    assert_eq!(snap.meta.last_log_id, Some(log[log.len() - 1].log_id));

    // B had records of its own: the install replaces them.
    let db_b = open_db(dbb.path());
    let target_b = Arc::new(TestTarget::default());
    let mut b = open_storage(&db_b, target_b.clone());
    b.sm.apply_entry(&entry(1, put("stale", "b's own", 1)))
        .expect("applies");
    b.sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("installs");

    assert_eq!(dump(&a), dump(&b));
    assert_eq!(dump(&b).len(), 2500);
    assert_eq!(
        a.state_machine().version_floor(),
        b.state_machine().version_floor()
    );
    assert_eq!(a.state_machine().topology(), b.state_machine().topology());
    assert_eq!(
        a.sm.applied_state().await.expect("state"),
        b.sm.applied_state().await.expect("state")
    );
    assert_eq!(
        target_b.resets.load(Ordering::SeqCst),
        2,
        "opened, then reset by the install"
    );
    assert_eq!(
        record_generations(&db_b),
        vec!["kv.1".to_owned()],
        "the old generation is dropped"
    );

    // Both go on identically, and B's new generation survives a reopen.
    let next = entry(log.len() as u64 + 1, put("after", "snapshot", 0));
    assert_eq!(
        a.sm.apply_entry(&next).expect("applies"),
        b.sm.apply_entry(&next).expect("applies")
    );
    let before = dump(&b);
    drop(b);
    drop(db_b);
    let db_b = open_db(dbb.path());
    let b = open_storage(&db_b, Arc::new(TestTarget::default()));
    assert_eq!(dump(&b), before);
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(
        b.state_machine().applied_index(),
        Some(log.len() as u64 + 1)
    );
}

#[tokio::test]
async fn the_view_is_the_moment_the_builder_was_made() {
    let (da, dbb) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let db_a = open_db(da.path());
    let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
    a.sm.apply_entry(&entry(1, put("k", "one", 1)))
        .expect("applies");
    let mut builder = a.sm.get_snapshot_builder().await;
    let at_builder = dump(&a);
    a.sm.apply_entry(&entry(2, put("k", "two", 2)))
        .expect("applies");
    a.sm.apply_entry(&entry(3, put("j", "three", 3)))
        .expect("applies");
    let snap = builder.build_snapshot().await.expect("builds");
    assert_eq!(snap.meta.last_log_id.as_ref().map(|l| l.index), Some(1));

    let db_b = open_db(dbb.path());
    let mut b = open_storage(&db_b, Arc::new(TestTarget::default()));
    b.sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("installs");
    assert_eq!(dump(&b), at_builder);
    assert_eq!(b.state_machine().applied_index(), Some(1));

    // Once one exists, the current snapshot follows `applied`, never ahead of it.
    let current =
        a.sm.get_current_snapshot()
            .await
            .expect("reads")
            .expect("one exists");
    assert_eq!(current.meta.last_log_id.as_ref().map(|l| l.index), Some(3));
    assert_eq!(
        current.meta.last_log_id,
        a.sm.applied_state().await.expect("state").0
    );
}

mod random {
    use std::sync::Arc;

    use bytes::Bytes;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;
    use proptest::prelude::*;

    use super::super::target::TestTarget;
    use super::super::{dump, entry, key, open_db, open_storage};
    use crate::command::{Command, Precondition};

    fn command(k: u8, at: u64, delete: bool) -> Command {
        if delete {
            Command::Delete {
                key: key(&format!("k{k}")),
                precondition: Precondition::None,
                at_micros: at,
                routed: Default::default(),
                remote: None,
            }
        } else {
            Command::Put {
                key: key(&format!("k{k}")),
                value: Bytes::from(format!("{k}@{at}")),
                precondition: Precondition::None,
                at_micros: at,
                routed: Default::default(),
                remote: None,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// A follower that installs a snapshot taken anywhere in a log and then applies the
        /// rest ends where the leader ends.
        #[test]
        fn install_anywhere_then_catch_up(
            ops in proptest::collection::vec((0u8..8, 0u64..500, any::<bool>()), 2..50),
            cut in any::<prop::sample::Index>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let log: Vec<_> = ops
                .iter()
                .enumerate()
                .map(|(i, (k, at, del))| entry(i as u64 + 1, command(*k, *at, *del)))
                .collect();
            let cut = cut.index(log.len());
            let (da, dbb) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
            let (db_a, db_b) = (open_db(da.path()), open_db(dbb.path()));
            let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
            let mut b = open_storage(&db_b, Arc::new(TestTarget::default()));
            for e in &log[..=cut] {
                a.sm.apply_entry(e).expect("applies");
            }
            rt.block_on(async {
                let snap = a.sm.get_snapshot_builder().await.build_snapshot().await.expect("builds");
                b.sm.install_snapshot(&snap.meta, snap.snapshot).await.expect("installs");
            });
            for e in &log[cut + 1..] {
                let (oa, ob) = (a.sm.apply_entry(e).expect("applies"), b.sm.apply_entry(e).expect("applies"));
                prop_assert_eq!(oa, ob);
            }
            prop_assert_eq!(dump(&a), dump(&b));
            prop_assert_eq!(a.state_machine().version_floor(), b.state_machine().version_floor());
            prop_assert_eq!(a.state_machine().applied_index(), b.state_machine().applied_index());
        }
    }
}
