//! Crash points: an apply cut short leaves nothing of its entry and a replay of the log then
//! converges on the state of a store that never failed; what was synced survives a drop; a
//! snapshot install interrupted before or after its flip leaves one consistent generation.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use fjall::{KeyspaceCreateOptions, PersistMode};
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};

use super::target::TestTarget;
use super::{Records, dump, entry, log_id, open_db, open_storage, put};
use crate::types::{Entry, ShardRaft};
use openraft::type_config::TypeConfigExt;

fn log(n: u64) -> Vec<Entry> {
    (1..=n)
        .map(|i| entry(i, put(&format!("k{}", i % 7), &format!("v{i}"), i * 3)))
        .collect()
}

fn reference(entries: &[Entry]) -> (tempfile::TempDir, Records, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    for e in entries {
        s.sm.apply_entry(e).expect("applies");
    }
    let floor = s.state_machine().version_floor();
    (dir, dump(&s), floor)
}

#[test]
fn an_apply_cut_short_leaves_nothing_and_a_replay_converges() {
    let entries = log(20);
    let (_ref_dir, want, want_floor) = reference(&entries);

    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let target = Arc::new(TestTarget::default());
    target.fail_at_call.store(12, Ordering::SeqCst);
    let mut s = open_storage(&db, target);
    let mut failed_at = None;
    for e in &entries {
        let before = dump(&s);
        if s.sm.apply_entry(e).is_err() {
            failed_at = Some(e.log_id.index);
            assert_eq!(dump(&s), before, "a failed entry changes no record");
            break;
        }
    }
    assert_eq!(failed_at, Some(12));
    assert_eq!(s.state_machine().applied_index(), Some(11));
    db.persist(PersistMode::Buffer).expect("persists");
    drop(s);
    drop(db);

    // Reopen and replay the whole log, as a restart replays from the log (entries at or below
    // `applied` are skipped, so a replay from any point is harmless).
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    assert_eq!(
        s.state_machine().applied_index(),
        Some(11),
        "what was applied survived"
    );
    for e in &entries {
        s.sm.apply_entry(e).expect("applies");
    }
    assert_eq!(dump(&s), want);
    assert_eq!(s.state_machine().version_floor(), want_floor);
}

#[tokio::test]
async fn a_synced_log_vote_and_apply_survive_a_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = log(10);
    {
        let db = open_db(dir.path());
        let mut s = open_storage(&db, Arc::new(TestTarget::default()));
        s.log
            .save_vote(&openraft::impls::Vote::new(3, 9))
            .await
            .expect("vote");
        append_and_wait(&mut s.log, entries.clone()).await;
        for e in &entries[..6] {
            s.sm.apply_entry(e).expect("applies");
        }
        db.persist(PersistMode::SyncAll).expect("syncs");
        // Applied after the last sync: may or may not survive, and either is consistent.
        for e in &entries[6..8] {
            s.sm.apply_entry(e).expect("applies");
        }
    }
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let state = s.log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 10)));
    let mut reader = s.log.get_log_reader().await;
    assert_eq!(
        reader.read_vote().await.expect("vote"),
        Some(openraft::impls::Vote::new(3, 9))
    );
    let read = reader.try_get_log_entries(1..=10).await.expect("reads");
    assert_eq!(read.len(), 10);
    let applied = s.state_machine().applied_index().unwrap_or(0);
    assert!(applied >= 6, "synced applies survive, got {applied}");
    // Replaying the log from `applied + 1` gives the reference state.
    for e in &read[applied as usize..] {
        s.sm.apply_entry(e).expect("applies");
    }
    let (_d, want, _) = reference(&entries);
    assert_eq!(dump(&s), want);
}

#[test]
fn a_crash_between_snapshot_stream_and_flip_keeps_the_old_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before;
    {
        let db = open_db(dir.path());
        let mut s = open_storage(&db, Arc::new(TestTarget::default()));
        for e in &log(5) {
            s.sm.apply_entry(e).expect("applies");
        }
        before = dump(&s);
        // What an install leaves when it dies before its flip: a half-written generation.
        let orphan = db
            .keyspace("kv.1", KeyspaceCreateOptions::default)
            .expect("keyspace");
        orphan.insert("half", "written").expect("inserts");
        db.persist(PersistMode::SyncAll).expect("syncs");
    }
    let db = open_db(dir.path());
    let s = open_storage(&db, Arc::new(TestTarget::default()));
    assert_eq!(dump(&s), before);
    assert_eq!(s.state_machine().applied_index(), Some(5));
    assert!(
        !db.keyspace_exists("kv.1"),
        "the orphan generation is deleted at open"
    );
}

#[tokio::test]
async fn a_crash_after_the_flip_serves_the_new_generation() {
    let (da, dbb) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let db_a = open_db(da.path());
    let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
    for e in &log(9) {
        a.sm.apply_entry(e).expect("applies");
    }
    let snap =
        a.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("builds");
    let installed;
    {
        let db_b = open_db(dbb.path());
        let mut b = open_storage(&db_b, Arc::new(TestTarget::default()));
        b.sm.install_snapshot(&snap.meta, snap.snapshot)
            .await
            .expect("installs");
        installed = dump(&b);
        // As if the old generation had not been dropped yet when the process died.
        let old = db_b
            .keyspace("kv", KeyspaceCreateOptions::default)
            .expect("keyspace");
        old.insert("old", "generation").expect("inserts");
        db_b.persist(PersistMode::SyncAll).expect("syncs");
    }
    let db_b = open_db(dbb.path());
    let b = open_storage(&db_b, Arc::new(TestTarget::default()));
    assert_eq!(dump(&b), installed);
    assert_eq!(dump(&b), dump(&a));
    assert!(
        !db_b.keyspace_exists("kv"),
        "the old generation is deleted at open"
    );
}

/// Appends and waits until the log reports the entries durable, as openraft does.
async fn append_and_wait(log: &mut crate::log_store::LogStore, entries: Vec<Entry>) {
    let (tx, rx) = ShardRaft::oneshot();
    log.append(entries, IOFlushed::signal(tx))
        .await
        .expect("appends");
    rx.await.expect("the flush is reported").expect("flushed");
}

/// Set in the child process of [`a_process_crash_keeps_every_flushed_append`].
const CHILD_DIR: &str = "KVRAFT_CRASH_CHILD_DIR";

/// The child's part: append and apply, then exit without running a destructor, as kill -9
/// would (fjall's journal buffer in the process is lost, what reached the OS is not).
#[tokio::test]
async fn crash_child_appends_applies_and_dies() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // Only meaningful as the child process.
    };
    let db = open_db(std::path::Path::new(&dir));
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let entries = log(12);
    s.log
        .save_vote(&openraft::impls::Vote::new(2, 1))
        .await
        .expect("vote");
    append_and_wait(&mut s.log, entries[..10].to_vec()).await;
    for e in &entries[..3] {
        s.sm.apply_entry(e).expect("applies");
    }
    // This append's flush carries the three applies to the OS.
    append_and_wait(&mut s.log, entries[10..].to_vec()).await;
    for e in &entries[3..6] {
        s.sm.apply_entry(e).expect("applies");
    }
    std::process::exit(0);
}

#[tokio::test]
async fn a_process_crash_keeps_every_flushed_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "tests::crash::crash_child_appends_applies_and_dies",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("child runs");
    assert!(status.success(), "child: {status}");

    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let state = s.log.get_log_state().await.expect("state");
    assert_eq!(
        state.last_log_id,
        Some(log_id(1, 12)),
        "every reported append survived"
    );
    let mut reader = s.log.get_log_reader().await;
    assert_eq!(
        reader.read_vote().await.expect("vote"),
        Some(openraft::impls::Vote::new(2, 1))
    );
    let applied = s.state_machine().applied_index().unwrap_or(0);
    assert!(
        (3..=6).contains(&applied),
        "applies flushed with an append survive, got {applied}"
    );
    let read = reader.try_get_log_entries(1..=12).await.expect("reads");
    for e in &read[applied as usize..] {
        s.sm.apply_entry(e).expect("applies");
    }
    let (_d, want, _) = reference(&log(12));
    assert_eq!(dump(&s), want);
}
