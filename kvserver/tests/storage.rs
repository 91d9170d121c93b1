//! The store on its own: concurrent writers, counters, versions, reopen.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

use std::sync::Arc;

use bytes::Bytes;
use kvproto::Key;
use kvserver::SyncMode;
use kvserver::storage::{DeleteMode, Precondition, Store, WriteOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_counts_and_per_key_versions_straight() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SyncMode::Always, 1 << 20).unwrap());
    let mut tasks = Vec::new();
    for w in 0..8u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = std::collections::HashMap::new();
            for i in 0..200u32 {
                let key = Key::new(format!("k{}", i % 20)).unwrap();
                let value = Bytes::from(format!("{w}-{i}"));
                match store
                    .put(&key, value, Precondition::None, None)
                    .await
                    .unwrap()
                {
                    WriteOutcome::Written(v) => {
                        // One writer's successive writes to a key get growing versions.
                        if let Some(prev) = last.insert(key.clone(), v) {
                            assert!(v > prev);
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.key_count(), 20);
    let k0 = Key::new("k0").unwrap();
    let deleted = store
        .delete(&k0, Precondition::None, DeleteMode::Tombstone, None)
        .await
        .unwrap();
    assert!(matches!(deleted, WriteOutcome::Written(_)));
    assert_eq!(store.key_count(), 19);
    assert!(store.get(&k0).unwrap().unwrap().is_tombstone());
    let bytes = store.value_bytes();
    let max_version = store
        .get(&Key::new("k1").unwrap())
        .unwrap()
        .unwrap()
        .version;
    store.flush().await.unwrap();
    drop(store);

    // Reopened: same counts, tombstone kept, versions continue above every stored one.
    let store = Store::open(dir.path(), SyncMode::Batch, 0).unwrap();
    assert_eq!((store.key_count(), store.value_bytes()), (19, bytes));
    assert!(store.get(&k0).unwrap().unwrap().is_tombstone());
    let k1 = Key::new("k1").unwrap();
    match store
        .put(&k1, Bytes::from_static(b"x"), Precondition::None, None)
        .await
        .unwrap()
    {
        WriteOutcome::Written(v) => assert!(v > max_version),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.all_keys().unwrap().len(), 19);
}

fn record(key: &str, version: u64, value: Option<&'static str>) -> kvproto::bulk::BulkRecord {
    kvproto::bulk::BulkRecord {
        key: Key::new(key).unwrap(),
        version,
        value: value.map(|v| Bytes::from_static(v.as_bytes())),
    }
}

/// Imports apply a batch as if record by record: if-absent keeps whatever a key holds (a value,
/// a tombstone, or an earlier record of the same batch); overwrite lets the last record win.
/// Counters and the cache follow either way.
#[tokio::test]
async fn imports_apply_in_order_and_if_absent_never_replaces_anything() {
    use kvproto::wire::ImportMode;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SyncMode::Batch, 1 << 20).unwrap());
    let held = Key::new("held").unwrap();
    store
        .put(
            &held,
            Bytes::from_static(b"newer"),
            Precondition::None,
            None,
        )
        .await
        .unwrap();
    let gone = Key::new("gone").unwrap();
    store
        .put(&gone, Bytes::from_static(b"x"), Precondition::None, None)
        .await
        .unwrap();
    store
        .delete(&gone, Precondition::None, DeleteMode::Tombstone, None)
        .await
        .unwrap();
    // Read once so that the cache holds "held".
    assert_eq!(
        store.get(&held).unwrap().unwrap().value.as_deref(),
        Some(&b"newer"[..])
    );

    let report = store
        .import(
            vec![
                record("held", 1, Some("older")),
                record("gone", 1, Some("resurrected")),
                record("dup", 5, Some("first")),
                record("dup", 6, Some("second")),
                record("fresh", 7, None),
            ],
            ImportMode::IfAbsent,
        )
        .await
        .unwrap();
    assert_eq!((report.applied, report.skipped), (2, 3));
    let value = |k: &str| {
        store
            .get(&Key::new(k).unwrap())
            .unwrap()
            .map(|r| (r.version, r.value))
    };
    assert_eq!(value("held").unwrap().1.as_deref(), Some(&b"newer"[..]));
    assert!(
        value("gone").unwrap().1.is_none(),
        "a tombstone is never replaced by a copy"
    );
    assert_eq!(value("dup"), Some((5, Some(Bytes::from_static(b"first")))));
    assert_eq!(value("fresh"), Some((7, None)));
    // held and dup are live; gone and fresh are tombstones.
    assert_eq!(store.key_count(), 2);

    // Overwrite replaces only with a higher version, record by record: 9 and 10 are below the
    // local write's version (skipped), the two above it apply in turn, the stale last one not.
    let local = value("held").unwrap().0;
    let report = store
        .import(
            vec![
                record("held", 9, Some("a")),
                record("held", 10, Some("b")),
                record("held", local + 1, Some("c")),
                record("held", local + 2, Some("d")),
                record("held", local + 1, Some("stale")),
            ],
            ImportMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!((report.applied, report.skipped), (2, 3));
    assert_eq!(
        value("held"),
        Some((local + 2, Some(Bytes::from_static(b"d"))))
    );
    assert_eq!(store.key_count(), 2);
}
