//! The boot guard and the identity: a node ID is born with the volume and kept across
//! restarts and clean reboots; an unclean reboot in batch mode gives a new one; a volume of
//! another group is refused; an ID reported before the group existed is adopted.

use std::sync::Arc;

use kvproto::raft::GroupId;

use super::target::TestTarget;
use super::{config, open_db};
use crate::boot::{BootVerdict, read_boot_id};
use crate::error::StorageError;
use crate::log_store::Durability;
use crate::storage::{Storage, StorageConfig};

fn open(dir: &std::path::Path, cfg: &StorageConfig) -> Result<(u64, BootVerdict), StorageError> {
    let db = open_db(dir);
    let s = Storage::open(&db, cfg, Arc::new(TestTarget::default()))?;
    Ok((s.identity().node_id, s.boot().clone()))
}

#[test]
fn restarts_keep_the_node_id_and_an_unclean_reboot_in_batch_mode_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = |boot| config(Durability::Batch, boot);
    let (id, verdict) = open(dir.path(), &batch("boot-1")).expect("opens");
    assert_ne!(id, 0);
    assert_eq!(verdict, BootVerdict::Fresh);
    // kill -9 and restart: same boot.
    let (again, verdict) = open(dir.path(), &batch("boot-1")).expect("opens");
    assert_eq!((again, verdict), (id, BootVerdict::SameBoot));
    // Power loss: a new boot without the clean marker.
    let (renewed, verdict) = open(dir.path(), &batch("boot-2")).expect("opens");
    assert_eq!(
        verdict,
        BootVerdict::UncleanReboot {
            previous_boot_id: "boot-1".to_owned()
        }
    );
    assert_ne!(
        renewed, id,
        "a log that may have lost acknowledged appends rejoins as a new node"
    );
    // The new ID is kept from then on.
    let (kept, _) = open(dir.path(), &batch("boot-2")).expect("opens");
    assert_eq!(kept, renewed);
}

#[test]
fn a_clean_shutdown_or_sync_always_keeps_the_node_id_across_reboots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let s = Storage::open(
        &db,
        &config(Durability::Batch, "boot-1"),
        Arc::new(TestTarget::default()),
    )
    .expect("opens");
    let id = s.identity().node_id;
    s.close_clean().expect("closes");
    drop(db);
    let (after, verdict) = open(dir.path(), &config(Durability::Batch, "boot-2")).expect("opens");
    assert_eq!((after, verdict), (id, BootVerdict::CleanReboot));
    // With --sync always every append was on disk before it was reported: the log is trusted.
    let (after, verdict) = open(dir.path(), &config(Durability::Always, "boot-3")).expect("opens");
    assert!(matches!(verdict, BootVerdict::UncleanReboot { .. }));
    assert_eq!(after, id);
}

#[test]
fn a_volume_adopts_the_node_id_it_reported_before_its_group_and_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(Durability::Batch, "boot-1");
    let adopt = |id| {
        let db = open_db(dir.path());
        let s =
            Storage::open_adopting(&db, &cfg, Arc::new(TestTarget::default()), id).expect("opens");
        s.identity().node_id
    };
    assert_eq!(adopt(Some(4242)), 4242);
    // A stored identity wins over another ID handed in, and over none.
    assert_eq!(adopt(Some(7)), 4242);
    assert_eq!(open(dir.path(), &cfg).expect("opens").0, 4242);
}

#[test]
fn a_volume_of_another_group_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    open(dir.path(), &config(Durability::Batch, "b")).expect("opens");
    let other = StorageConfig {
        group: GroupId {
            store_uid: "uid-2".to_owned(),
            shard: 0,
        },
        ..config(Durability::Batch, "b")
    };
    match open(dir.path(), &other) {
        Err(StorageError::GroupMismatch { found, expected }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("uid-1/0", "uid-2/0"));
        }
        other => panic!("expected a group mismatch, got {other:?}"),
    }
}

#[test]
fn the_boot_id_is_read_trimmed_and_an_empty_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("boot_id");
    std::fs::write(&path, "6f1c2a\n").expect("writes");
    assert_eq!(read_boot_id(&path).expect("reads"), "6f1c2a");
    std::fs::write(&path, "\n").expect("writes");
    assert!(matches!(read_boot_id(&path), Err(StorageError::BootId(_))));
    assert!(read_boot_id(&dir.path().join("missing")).is_err());
    if std::path::Path::new(crate::boot::BOOT_ID_PATH).exists() {
        assert!(
            !read_boot_id(std::path::Path::new(crate::boot::BOOT_ID_PATH))
                .expect("the kernel's boot id")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn an_untrusted_log_is_forgotten_and_the_records_kept() {
    use openraft::RaftLogReader;
    use openraft::storage::RaftLogStorage;

    use super::{dump, entry, put};

    let dir = tempfile::tempdir().expect("tempdir");
    let records;
    {
        let db = open_db(dir.path());
        let mut s = Storage::open(
            &db,
            &config(Durability::Batch, "boot-1"),
            Arc::new(TestTarget::default()),
        )
        .expect("opens");
        s.log
            .save_vote(&openraft::impls::Vote::new(4, 2))
            .await
            .expect("vote");
        let entries: Vec<_> = (1..=5)
            .map(|i| entry(i, put("k", &i.to_string(), i)))
            .collect();
        let (tx, rx) = <crate::types::ShardRaft as openraft::type_config::TypeConfigExt>::oneshot();
        s.log
            .append(entries.clone(), openraft::storage::IOFlushed::signal(tx))
            .await
            .expect("appends");
        rx.await.expect("reported").expect("flushed");
        for e in &entries[..3] {
            s.sm.apply_entry(e).expect("applies");
        }
        db.persist(fjall::PersistMode::SyncAll).expect("syncs");
        records = dump(&s);
    }
    // Power lost: a new boot id, no clean marker.
    let db = open_db(dir.path());
    let mut s = Storage::open(
        &db,
        &config(Durability::Batch, "boot-2"),
        Arc::new(TestTarget::default()),
    )
    .expect("opens");
    assert!(matches!(s.boot(), BootVerdict::UncleanReboot { .. }));
    let state = s.log.get_log_state().await.expect("state");
    assert_eq!(
        state.last_purged_log_id,
        Some(super::log_id(1, 3)),
        "as if purged up to applied"
    );
    assert_eq!(state.last_log_id, Some(super::log_id(1, 3)));
    let mut reader = s.log.get_log_reader().await;
    assert_eq!(
        reader.read_vote().await.expect("vote"),
        None,
        "the old node's vote is gone"
    );
    assert!(
        reader
            .try_get_log_entries(1..=5)
            .await
            .expect("reads")
            .is_empty()
    );
    assert_eq!(dump(&s), records, "the applied records are kept");
}

#[test]
fn a_group_made_from_an_existing_store_goes_on_above_its_versions() {
    use super::{entry, put};
    use crate::command::Outcome;

    let dir = tempfile::tempdir().expect("tempdir");
    {
        // Today's store: records in `kv` with versions far above any clock in the entries.
        let db = open_db(dir.path());
        let kv = db
            .keyspace("kv", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        kv.insert("old", super::target::encode(true, 5_000_000, b"v"))
            .expect("inserts");
        db.persist(fjall::PersistMode::SyncAll).expect("syncs");
    }
    let db = open_db(dir.path());
    let mut s = Storage::open(
        &db,
        &config(Durability::Batch, "b"),
        Arc::new(TestTarget::default()),
    )
    .expect("opens");
    assert_eq!(s.state_machine().version_floor(), 5_000_000);
    assert_eq!(
        s.sm.apply_entry(&entry(1, put("new", "v", 10)))
            .expect("applies"),
        Outcome::Written { version: 5_000_001 }
    );
}
