//! The operator's shard map push (`shards::push_all` through kvclient's `ServerClient`) against
//! real kvservers running in this process on 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

use kvclient::{ClientConfig, ServerClient};
use kvproto::{Sharding, Topology};
use operator::error::Error;
use operator::shards::{KvClientAdmin, push_all};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "operator-test-token";

/// One kvserver on ephemeral ports; stopped when dropped.
struct Shard {
    url: String,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(shard: u32) -> Shard {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let data = dir.path().join("data");
    let config = <kvserver::Config as clap::Parser>::parse_from([
        "kvserver".to_owned(),
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
        "--shard".to_owned(),
        shard.to_string(),
        "--drain-delay".to_owned(),
        "0s".to_owned(),
    ]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(err) = kvserver::run(config, listener, ops, shutdown).await {
            panic!("kvserver {shard} failed: {err}");
        }
    });
    Shard {
        url,
        _stop: stop,
        _dir: dir,
    }
}

async fn served_topology(url: &str) -> Option<Topology> {
    let client = ServerClient::new(url, ClientConfig::default()).unwrap();
    // The server opens its storage before it answers; the client retries connection errors.
    client.topology().await.unwrap()
}

#[tokio::test]
async fn every_server_takes_the_map_and_a_repeat_is_harmless() {
    let shards = [start(0).await, start(1).await, start(2).await];
    let peers: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let map = Topology::stable(1, Sharding::Modulo, peers);
    let admin = KvClientAdmin::default();

    push_all(&admin, TOKEN, &map).await.unwrap();
    for shard in &shards {
        assert_eq!(served_topology(&shard.url).await.as_ref(), Some(&map));
    }
    // Every reconcile re-pushes the acknowledged map: servers accept the same map again.
    push_all(&admin, TOKEN, &map).await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_or_a_conflicting_map_is_refused_and_names_the_shard() {
    let shards = [start(0).await, start(1).await];
    let peers: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let map = Topology::stable(1, Sharding::Modulo, peers.clone());
    let admin = KvClientAdmin::default();

    let err = push_all(&admin, "not-the-token", &map).await.unwrap_err();
    assert!(matches!(err, Error::Shard { shard: 0, .. }), "{err}");
    assert_eq!(served_topology(&shards[0].url).await, None);

    push_all(&admin, TOKEN, &map).await.unwrap();
    // The same epoch with another shard count conflicts with what the servers hold.
    let other = Topology::stable(1, Sharding::Modulo, vec![peers[0].clone()]);
    let err = push_all(&admin, TOKEN, &other).await.unwrap_err();
    assert!(matches!(err, Error::Shard { shard: 0, .. }), "{err}");
    assert_eq!(served_topology(&shards[0].url).await.as_ref(), Some(&map));
}
