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
