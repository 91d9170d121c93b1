//! The operator's shard map push (`shards::push` through kvclient's `ServerClient`) against
//! real kvservers running in this process on 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use kvproto::{Sharding, Topology};
use operator::shards::{self, KvClientAdmin, ShardError};
use support::kvservers::{TOKEN, client, start};

/// Pushes `map` to every server it lists.
async fn push_all(admin: &KvClientAdmin, token: &str, map: &Topology) -> Result<(), ShardError> {
    shards::push(admin, token, map, &map.peers, 0..map.shards).await
}

async fn served_topology(url: &str) -> Option<Topology> {
    // The server opens its storage before it answers; the client retries connection errors.
    client(url).topology().await.unwrap()
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
    assert!(
        matches!(err, ShardError::Unreachable { shard: 0, .. }),
        "{err}"
    );
    assert_eq!(served_topology(&shards[0].url).await, None);

    push_all(&admin, TOKEN, &map).await.unwrap();
    // The same epoch with another shard count conflicts with what the servers hold.
    let other = Topology::stable(1, Sharding::Modulo, vec![peers[0].clone()]);
    let err = push_all(&admin, TOKEN, &other).await.unwrap_err();
    assert!(
        matches!(err, ShardError::Unreachable { shard: 0, .. }),
        "{err}"
    );
    assert_eq!(served_topology(&shards[0].url).await.as_ref(), Some(&map));
}
