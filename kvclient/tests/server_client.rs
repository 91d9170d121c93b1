//! `ServerClient` against one real kvserver: every route family of docs/api.md.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use bytes::Bytes;
use futures::TryStreamExt;
use kvclient::{ClientConfig, Condition, Error, ExportScope, ListQuery, LocalRead, ServerClient};
use kvproto::bulk::BulkRecord;
use kvproto::wire::ImportMode;
use kvproto::{Fence, Key, Sharding, Topology};
use support::{KvServer, TOKEN};

fn key(k: &str) -> Key {
    Key::new(k).unwrap()
}

fn admin_config() -> ClientConfig {
    ClientConfig {
        token: Some(TOKEN.to_string()),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn data_routes_with_versions_and_preconditions() {
    let server = KvServer::start(0);
    let client = ServerClient::new(&server.addr(), ClientConfig::default()).unwrap();

    assert_eq!(client.get(&key("a")).await.unwrap(), None);
    let v1 = client.put(&key("a"), "one").await.unwrap();
    let got = client.get(&key("a")).await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from("one"));
    assert_eq!(got.version, v1);
    let v1 = v1.expect("PUT answers an ETag");

    let again = client
        .put_if(&key("a"), "two", Condition::IfAbsent)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::PreconditionFailed { .. }), "{again}");
    let v2 = client
        .put_if(&key("a"), "two", Condition::IfVersion(v1))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(v1, v2);
    let stale = client
        .put_if(&key("a"), "three", Condition::IfVersion(v1))
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::PreconditionFailed { .. }));
    client
        .put_if(&key("b"), "bee", Condition::IfAbsent)
        .await
        .unwrap();

    let stale_delete = client.delete_if_version(&key("a"), v1).await.unwrap_err();
    assert!(matches!(stale_delete, Error::PreconditionFailed { .. }));
    assert!(client.delete_if_version(&key("a"), v2).await.unwrap());
    assert!(!client.delete(&key("a")).await.unwrap());
    assert!(client.delete(&key("b")).await.unwrap());

    for k in ["p1", "p2", "p3", "q1"] {
        client.put(&key(k), k.to_string()).await.unwrap();
    }
    let page = client
        .list(&ListQuery {
            prefix: Some("p".into()),
            limit: Some(2),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.keys, vec!["p1", "p2"]);
    assert_eq!(
        client.list_all(Some("p")).await.unwrap(),
        vec!["p1", "p2", "p3"]
    );
    let info = client.info().await.unwrap();
    assert_eq!((info.shard, info.keys, info.draining), (0, 4, false));
    assert_eq!(client.topology().await.unwrap(), None);
}

#[tokio::test]
async fn book_routes_round_trip() {
    let server = KvServer::start(0);
    let client = ServerClient::new(&server.addr(), ClientConfig::default()).unwrap();
    assert_eq!(client.book_load(&key("k")).await.unwrap(), None);
    assert_eq!(client.book_save(&key("k"), "v w").await.unwrap(), "v w");
    assert_eq!(
        client.book_load(&key("k")).await.unwrap().as_deref(),
        Some("v w")
    );
    client.book_save(&key("a"), "x").await.unwrap();
    assert_eq!(client.book_all_keys().await.unwrap(), vec!["a", "k"]);
}

#[tokio::test]
async fn admin_routes_need_the_token_and_move_records() {
    let source = KvServer::start(0);
    let target = KvServer::start(1);
    let open = ServerClient::new(&source.addr(), ClientConfig::default()).unwrap();
    let src = ServerClient::new(&source.addr(), admin_config()).unwrap();
    let dst = ServerClient::new(&target.addr(), admin_config()).unwrap();

    for i in 0..50 {
        src.put(&key(&format!("k{i}")), format!("v{i}"))
            .await
            .unwrap();
    }
    let refused = open.cleanup(None).await.unwrap_err();
    assert_eq!(refused.http_status(), Some(401), "{refused}");

    let records: Vec<BulkRecord> = src
        .export(ExportScope::All)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), 50);

    dst.put(&key("k0"), "newer").await.unwrap();
    let report = dst
        .import(&records, ImportMode::IfAbsent, None)
        .await
        .unwrap();
    assert_eq!((report.applied, report.skipped), (49, 1));
    assert_eq!(
        dst.get(&key("k0")).await.unwrap().unwrap().value,
        Bytes::from("newer")
    );
    let again = dst
        .import(&records, ImportMode::Overwrite, None)
        .await
        .unwrap();
    assert_eq!(again.applied + again.skipped, 50);
    match dst.get_local(&key("k7")).await.unwrap() {
        LocalRead::Value(v) => assert_eq!(v.value, Bytes::from("v7")),
        other => panic!("expected a value, got {other:?}"),
    }
    assert_eq!(
        dst.get_local(&key("nope")).await.unwrap(),
        LocalRead::Absent
    );

    // A topology with both servers: each then owns only its half, and cleanup drops the rest.
    let topology = Topology::stable(1, Sharding::Modulo, vec![source.url(), target.url()]);
    assert_eq!(src.put_topology(&topology).await.unwrap(), topology);
    assert_eq!(dst.put_topology(&topology).await.unwrap(), topology);
    assert_eq!(dst.put_topology(&topology).await.unwrap(), topology);
    let older = Topology::stable(0, Sharding::Modulo, vec![source.url()]);
    assert!(matches!(
        dst.put_topology(&older).await.unwrap_err(),
        Error::TopologyConflict { .. }
    ));
    assert_eq!(dst.topology().await.unwrap(), Some(topology));
    // A server with a topology takes only a cleanup fenced at its own stable epoch.
    let unfenced = dst.cleanup(None).await.unwrap_err();
    assert_eq!(unfenced.http_status(), Some(409), "{unfenced}");
    let cleaned = dst.cleanup(Some(Fence::stable(1))).await.unwrap();
    let owned_by_1 = (0..50)
        .filter(|i| Sharding::Modulo.shard_of(format!("k{i}").as_bytes(), 2) == 1)
        .count() as u64;
    assert_eq!(cleaned.removed_keys, 50 - owned_by_1);
    assert_eq!(dst.info().await.unwrap().keys, owned_by_1);
}
