//! `ShardedClient` and the book's letters against real kvserver processes, including an
//! unreachable server (`.`) and a draining one (503 → `5`).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use kvclient::probe::{KeyApi, check_keys};
use kvclient::screen::{book_keys, round_line};
use kvclient::{ClientConfig, Outcome, RetryPolicy, ServerClient, ShardedClient};
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::{Key, Sharding, Topology};
use support::{KvServer, TOKEN, free_port};

fn keys() -> Vec<Key> {
    book_keys()
        .into_iter()
        .map(|k| Key::new(k).unwrap())
        .collect()
}

fn book_config() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy::NONE,
        ..ClientConfig::default()
    }
}

fn letters(outcomes: &[Outcome]) -> String {
    outcomes.iter().map(|o| o.letter()).collect()
}

/// The expected letters when shard `s` of three shows `by_shard[s]`.
fn by_shard(by_shard: [char; 3]) -> String {
    ('a'..='z').map(|c| by_shard[(c as usize) % 3]).collect()
}

#[tokio::test]
async fn book_client_writes_then_hits_on_three_servers() {
    let servers: Vec<KvServer> = (0..3).map(KvServer::start).collect();
    let addrs: Vec<String> = servers.iter().map(KvServer::addr).collect();
    let client = ShardedClient::new(&addrs, book_config())
        .unwrap()
        .with_follow_topology(false);
    let keys = keys();

    let readonly = check_keys(&client, &keys, true, KeyApi::Book, 8).await;
    assert_eq!(letters(&readonly), "m".repeat(26));
    let first = check_keys(&client, &keys, false, KeyApi::Book, 8).await;
    assert_eq!(letters(&first), "w".repeat(26));
    let second = check_keys(&client, &keys, false, KeyApi::Book, 8).await;
    assert!(round_line("00:00", &second).ends_with(" | hits = 26 (100%)\n"));

    // Each key sits on ord(c) % 3, as in the book.
    for (i, server) in servers.iter().enumerate() {
        let held = ServerClient::new(&server.addr(), book_config())
            .unwrap()
            .book_all_keys()
            .await
            .unwrap();
        let expected: Vec<String> = ('a'..='z')
            .filter(|&c| (c as usize) % 3 == i)
            .map(String::from)
            .collect();
        assert_eq!(held, expected, "server {i}");
    }

    // A wrong value shows as x; the /v1 routes see the same data.
    ServerClient::new(&servers[1].addr(), book_config())
        .unwrap()
        .book_save(&Key::new("a").unwrap(), "not-a")
        .await
        .unwrap();
    let v1 = check_keys(&client, &keys, true, KeyApi::V1, 8).await;
    assert_eq!(letters(&v1), format!("x{}", "h".repeat(25)));
}

#[tokio::test]
async fn unreachable_shows_a_dot_and_draining_shows_a_five() {
    let live = KvServer::start(0);
    let draining = KvServer::start_with(2, &["--drain-delay", "120s"]);
    let dead = format!("127.0.0.1:{}", free_port());
    let addrs = vec![live.addr(), dead, draining.addr()];
    let config = ClientConfig {
        timeout: std::time::Duration::from_secs(2),
        ..book_config()
    };
    let client = ShardedClient::new(&addrs, config).unwrap();
    let keys = keys();

    let before = check_keys(&client, &keys, false, KeyApi::Book, 8).await;
    assert_eq!(letters(&before), by_shard(['w', '.', 'w']));

    draining.drain();
    let book = check_keys(&client, &keys, false, KeyApi::Book, 8).await;
    assert_eq!(letters(&book), by_shard(['h', '.', '5']));
    let v1 = check_keys(&client, &keys, true, KeyApi::V1, 8).await;
    assert_eq!(letters(&v1), by_shard(['h', '.', '5']));

    // Retries do not turn a refusal into success, and never exceed their bound.
    let retrying = ShardedClient::new(
        &addrs,
        ClientConfig {
            retry: RetryPolicy {
                max_retries: 2,
                base_delay: std::time::Duration::from_millis(10),
                max_delay: std::time::Duration::from_millis(20),
                budget: None,
            },
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let retried = check_keys(&retrying, &keys, true, KeyApi::V1, 8).await;
    assert_eq!(letters(&retried), by_shard(['h', '.', '5']));
}

#[tokio::test]
async fn follows_the_topology_announced_in_headers() {
    let servers: Vec<KvServer> = (0..3).map(KvServer::start).collect();
    let urls: Vec<String> = servers.iter().map(KvServer::url).collect();
    let admin = ClientConfig {
        token: Some(TOKEN.to_string()),
        ..ClientConfig::default()
    };
    let push = |t: Topology| {
        let urls = urls.clone();
        let admin = admin.clone();
        async move {
            for u in &urls {
                ServerClient::new(u, admin.clone())
                    .unwrap()
                    .put_topology(&t)
                    .await
                    .unwrap();
            }
        }
    };
    // The client only knows server 0, and routes everything there at first.
    let client = ShardedClient::new(&urls[..1], ClientConfig::default()).unwrap();
    let key = Key::new("b").unwrap();
    assert_eq!(client.shard_of(&key), 0);

    push(Topology::stable(1, Sharding::Modulo, urls[..2].to_vec())).await;
    client.put(&key, "b").await.unwrap();
    let routing = client.routing();
    assert_eq!((routing.epoch, routing.shards), (1, 2));
    assert_eq!(client.shard_of(&key), 98 % 2);

    let handoff = Topology {
        epoch: 2,
        sharding: Sharding::Modulo,
        shards: 3,
        peers: urls.clone(),
        migration: Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Handoff,
        }),
    };
    push(handoff.clone()).await;
    client.get(&key).await.unwrap();
    let routing = client.routing();
    assert_eq!(
        (routing.epoch, routing.shards, routing.phase),
        (2, 2, Some("Handoff"))
    );

    push(Topology {
        migration: Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Copy,
        }),
        ..handoff.clone()
    })
    .await;
    let got = client
        .get(&key)
        .await
        .unwrap()
        .expect("b is readable during the copy");
    assert_eq!(got.value, bytes::Bytes::from("b"));
    assert_eq!(client.routing().shards, 3);
    assert_eq!(client.shard_of(&key), 98 % 3);
    assert_eq!(client.server(2).unwrap().base(), urls[2]);

    // Every key stays readable through the sharded client after the copy.
    let all = check_keys(&client, &keys(), false, KeyApi::V1, 8).await;
    assert!(
        all.iter()
            .all(|o| matches!(o, Outcome::Hit | Outcome::Written)),
        "{}",
        letters(&all)
    );
}

#[tokio::test]
async fn a_server_that_never_answers_shows_a_dot_after_the_timeout() {
    // Accepts connections and holds them open without ever answering.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let live = KvServer::start(0);
    let config = ClientConfig {
        timeout: std::time::Duration::from_millis(300),
        ..book_config()
    };
    let client = ShardedClient::new(&[live.addr(), silent_addr], config).unwrap();
    let outcomes = check_keys(&client, &keys(), false, KeyApi::Book, 32).await;
    let expected: String = ('a'..='z')
        .map(|c| {
            if (c as usize).is_multiple_of(2) {
                'w'
            } else {
                '.'
            }
        })
        .collect();
    assert_eq!(letters(&outcomes), expected);
    holder.abort();
}

/// A replicated shard whose first copy is gone: requests move on to the next copy at once,
/// within the retry budget, and the client counts the retries; with no retries allowed the
/// first copy's failure shows.
#[tokio::test]
async fn requests_move_to_another_copy_when_one_cannot_be_reached() {
    let live = KvServer::start(0);
    let dead = format!("127.0.0.1:{}", free_port());
    let client = ShardedClient::new(
        std::slice::from_ref(&dead),
        ClientConfig {
            retry: RetryPolicy::within(std::time::Duration::from_secs(5)),
            ..ClientConfig::default()
        },
    )
    .unwrap()
    .with_follow_topology(false);
    client
        .set_copies(&[vec![dead.clone(), live.addr()]])
        .unwrap();
    let key = Key::new("k").unwrap();
    client.put(&key, "v1").await.unwrap();
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().value.as_ref(),
        b"v1"
    );
    // A conditional write moves too: the dead copy applied nothing.
    let version = client.get(&key).await.unwrap().unwrap().version.unwrap();
    client
        .put_if(&key, "v2", kvclient::Condition::IfVersion(version))
        .await
        .unwrap();
    // Only the first request knocked on the dead copy: the one that answered is tried first.
    assert_eq!(client.stats().retries(), 1);

    let no_retries = ShardedClient::new(std::slice::from_ref(&dead), book_config())
        .unwrap()
        .with_follow_topology(false);
    no_retries.set_copies(&[vec![dead, live.addr()]]).unwrap();
    let err = no_retries.get(&key).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert_eq!(no_retries.stats().retries(), 0);
}
