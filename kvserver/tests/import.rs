//! Imports never move a key's version backwards (issue 13, item 4): the default mode is
//! if-absent, overwrite only replaces with a higher version, and the clock moves past every
//! imported version, so a later local write is always the newest.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use kvproto::Key;
use kvproto::bulk::{BulkCodec, BulkRecord, CONTENT_TYPE as BULK_CONTENT_TYPE};
use kvproto::wire::{ImportMode, ImportReport};
use kvserver::SyncMode;
use kvserver::storage::{DeleteMode, Precondition, Store, WriteOutcome};

fn record(key: &str, version: u64, value: Option<&'static str>) -> BulkRecord {
    BulkRecord {
        key: Key::new(key).unwrap(),
        version,
        value: value.map(|v| Bytes::from_static(v.as_bytes())),
    }
}

/// The reproduction: a key written at a large (clock) version, then an import of an old copy
/// at version 7, with no mode and with `mode=overwrite`. Before, the default overwrote and the
/// key went back to version 7 with the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_copy_never_replaces_a_newer_record_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let server = spawn_binary(
        &dir.path().join("data"),
        &["--admin-token-file", token.to_str().unwrap()],
    );
    wait_healthy(&server.ops_url()).await;
    let client = http();
    let url = server.url();
    let put = client
        .put(format!("{url}/v1/keys/k"))
        .body("new")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let version: u64 = put.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    assert!(version > 7);

    for query in ["", "?mode=overwrite", "?mode=if-absent"] {
        let r = client
            .post(format!("{url}/v1/admin/import{query}"))
            .bearer_auth(TOKEN)
            .header("content-type", BULK_CONTENT_TYPE)
            .body(BulkCodec::encode_all(&[record("k", 7, Some("old"))]))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{query}: {}", r.status());
        let report: ImportReport = r.json().await.unwrap();
        assert_eq!((report.applied, report.skipped), (0, 1), "{query}");
        let got = client.get(format!("{url}/v1/keys/k")).send().await.unwrap();
        assert_eq!(
            got.headers()["etag"].to_str().unwrap(),
            format!("\"{version}\""),
            "{query}: the version went backwards"
        );
        assert_eq!(got.text().await.unwrap(), "new", "{query}");
    }
}

#[test]
fn the_default_import_mode_is_if_absent() {
    assert_eq!(ImportMode::default(), ImportMode::IfAbsent);
    let q: ImportMode = serde_json::from_str("\"if-absent\"").unwrap();
    assert_eq!(q, ImportMode::default());
}

/// Overwrite replaces a value or a tombstone only with a higher version; equal is skipped.
#[tokio::test]
async fn overwrite_keeps_newer_values_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SyncMode::Batch, 1 << 20).unwrap());
    let (live, gone) = (Key::new("live").unwrap(), Key::new("gone").unwrap());
    store
        .put(&live, Bytes::from_static(b"new"), Precondition::None, None)
        .await
        .unwrap();
    store
        .put(&gone, Bytes::from_static(b"x"), Precondition::None, None)
        .await
        .unwrap();
    store
        .delete(&gone, Precondition::None, DeleteMode::Tombstone, None)
        .await
        .unwrap();
    // Cached, so the cache's copy is what an overwrite would have to replace.
    let live_v = store.get(&live).unwrap().unwrap().version;
    let gone_v = store.get(&gone).unwrap().unwrap().version;

    let report = store
        .import(
            vec![
                record("live", 7, Some("old")),
                record("live", live_v, Some("same version")),
                record("gone", 7, Some("resurrected")),
            ],
            ImportMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!((report.applied, report.skipped), (0, 3));
    let live_now = store.get(&live).unwrap().unwrap();
    assert_eq!(
        (live_now.version, live_now.value.as_deref()),
        (live_v, Some(&b"new"[..]))
    );
    let gone_now = store.get(&gone).unwrap().unwrap();
    assert_eq!((gone_now.version, gone_now.is_tombstone()), (gone_v, true));
    assert_eq!(store.key_count(), 1);

    // A newer copy does replace (a value and a tombstone alike).
    let report = store
        .import(
            vec![
                record("live", live_v + 1, None),
                record("gone", gone_v + 1, Some("back")),
            ],
            ImportMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!((report.applied, report.skipped), (2, 0));
    assert!(store.get(&live).unwrap().unwrap().is_tombstone());
    assert_eq!(
        store.get(&gone).unwrap().unwrap().value.as_deref(),
        Some(&b"back"[..])
    );
    assert_eq!(store.key_count(), 1);
}

/// A skipped record's version still moves the clock: a local write after an import that
/// carried version V gets a version above V, in either mode, and after a restart too.
#[tokio::test]
async fn local_writes_after_an_import_are_newer_than_anything_it_carried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SyncMode::Batch, 0).unwrap());
    let k = Key::new("k").unwrap();
    store
        .put(&k, Bytes::from_static(b"here"), Precondition::None, None)
        .await
        .unwrap();
    let far = kvproto::bulk::MAX_VERSION / 2;
    let report = store
        .import(vec![record("k", far, Some("copy"))], ImportMode::IfAbsent)
        .await
        .unwrap();
    assert_eq!(report.skipped, 1);
    let other = Key::new("other").unwrap();
    match store
        .put(&other, Bytes::from_static(b"x"), Precondition::None, None)
        .await
        .unwrap()
    {
        WriteOutcome::Written(v) => assert!(v > far, "{v} is not above the imported {far}"),
        o => panic!("unexpected {o:?}"),
    }

    // An applied one survives a restart as the floor of the clock.
    let farther = far + 1_000;
    store
        .import(
            vec![record("new", farther, Some("copy"))],
            ImportMode::Overwrite,
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = Store::open(dir.path(), SyncMode::Batch, 0).unwrap();
    match store
        .put(&k, Bytes::from_static(b"later"), Precondition::None, None)
        .await
        .unwrap()
    {
        WriteOutcome::Written(v) => assert!(v > farther),
        o => panic!("unexpected {o:?}"),
    }
}

/// A write over a key the previous owner holds (read-through) gets a version above the
/// previous owner's, so the copy of that old record can never look newer.
#[tokio::test]
async fn a_write_over_a_read_through_value_is_newer_than_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), SyncMode::Batch, 0).unwrap();
    let k = Key::new("moved").unwrap();
    let remote = kvproto::bulk::MAX_VERSION / 2;
    match store
        .put(
            &k,
            Bytes::from_static(b"v"),
            Precondition::IfVersion(remote),
            Some(remote),
        )
        .await
        .unwrap()
    {
        WriteOutcome::Written(v) => assert!(v > remote, "{v} is not above {remote}"),
        o => panic!("unexpected {o:?}"),
    }
}
