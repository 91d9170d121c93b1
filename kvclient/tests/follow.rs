//! The topology-following screen (`kvclient --servers LIST`) against real kvservers whose
//! topology moves from 2 to 3 shards between two rounds.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use kvclient::{ClientConfig, ServerClient};
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::{Sharding, Topology};
use support::{KvServer, TOKEN, kvclient_bin};

const PAD: &str = "                    ";

async fn push(urls: &[String], topology: &Topology) {
    let admin = ClientConfig {
        token: Some(TOKEN.to_string()),
        ..ClientConfig::default()
    };
    for url in urls {
        ServerClient::new(url, admin.clone())
            .unwrap()
            .put_topology(topology)
            .await
            .unwrap();
    }
}

fn digits(n: usize) -> String {
    ('a'..='z')
        .map(|c| ((c as usize) % n).to_string())
        .collect()
}

#[tokio::test]
async fn prints_the_change_and_a_new_header_and_keeps_hitting() {
    let servers: Vec<KvServer> = (0..3).map(KvServer::start).collect();
    let urls: Vec<String> = servers.iter().map(KvServer::url).collect();
    push(
        &urls,
        &Topology::stable(1, Sharding::Modulo, urls[..2].to_vec()),
    )
    .await;

    let list = servers
        .iter()
        .map(KvServer::addr)
        .collect::<Vec<_>>()
        .join(",");
    let mut child = Command::new(kvclient_bin())
        .args(["--servers", &list, "--iterations", "4", "--interval", "1"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = move || lines.next().expect("a line").expect("utf-8 line");

    assert_eq!(next(), format!("{PAD}abcdefghijklmnopqrstuvwxyz"));
    next();
    assert_eq!(next(), format!("{PAD}{}", digits(2)));
    next();
    let first = next();
    assert!(
        first.ends_with(&format!(" {} | hits = 0 (0%)", "w".repeat(26))),
        "{first}"
    );

    // While the client sleeps: hand off, then copy. New owners read through to old ones.
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
    push(&urls, &handoff).await;
    let copy = Topology {
        migration: Some(Migration {
            from_shards: 2,
            phase: MigrationPhase::Copy,
        }),
        ..handoff
    };
    push(&urls, &copy).await;

    // On a slow machine a round may still start before the pushes land: servers forward, so
    // it hits too. The change is printed once, before the first round routed over 3 shards.
    let all_hits = format!(" {} | hits = 26 (100%)", "h".repeat(26));
    let mut rounds_before = 0;
    loop {
        let line = next();
        if line == "topology changed: 2 -> 3 shards (epoch 2)" {
            break;
        }
        assert!(line.ends_with(&all_hits), "{line}");
        rounds_before += 1;
        assert!(rounds_before < 3, "the change was never printed");
    }
    assert_eq!(next(), format!("{PAD}abcdefghijklmnopqrstuvwxyz"));
    next();
    assert_eq!(next(), format!("{PAD}{}", digits(3)));
    next();
    for _ in rounds_before..3 {
        let round = next();
        assert!(round.ends_with(&all_hits), "{round}");
    }
    assert!(child.wait().unwrap().success());
}
