//! The deliberately broken build (docs/replication.md section 10): a leader that answers a
//! write before its quorum has it (`--unsafe-ack=local`) loses an acknowledged write, and the
//! Porcupine checker of `tests/linearizability` says so (exit 1); the same scenario on the
//! correct build never acknowledges that write and its history is linearizable (exit 0).
//!
//! Three real kvserver processes on loopback (`common::raft`): k=v1 is written, reaches every
//! copy and is read; both
//! followers are killed (-9, so the leader's appends are refused: a SIGSTOP'd follower's kernel
//! would still take them in and the follower would append them once resumed); k=v2 is written
//! through the leader; the leader is killed; the followers restart and elect a leader that
//! never had v2; k is read back: v1. The history is written by kvclient's own recorder
//! (`kvclient load --history`'s, compiled here) from kvclient's answers. `kvclient load` itself
//! cannot drive this: it learns a shard's copies only from a KVStore.
//!
//! Run with `cargo test -p kvserver --features unsafe-fault-modes --test raft_broken`.
#![cfg(feature = "unsafe-fault-modes")]
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use common::checker::{self, Verdict};
use common::raft::{client, eventually, leader_among, three_formed};
use kvclient::history::{History, Op, Outcome};
use kvclient::{ClientConfig, RetryPolicy, ServerClient};
use kvproto::Key;
use kvproto::wire::header;

/// Built once for both tests (they run at once).
static CHECKER: LazyLock<PathBuf> = LazyLock::new(checker::build);

/// Where a history and its visualization are kept (the target's temp dir).
fn kept(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("raft_broken-{name}.jsonl"))
}

/// Writer and reader, as the history names them.
const WRITER: usize = 0;
const READER: usize = 1;

/// A client of the copy at `url`: one attempt per write (a retried write could be applied
/// twice), reads retried across a failover; the timeout above `--raft-write-timeout` (3 s),
/// so an uncommitted write answers the server's own `outcome_unknown`.
fn kv(url: &str, retry: RetryPolicy) -> ServerClient {
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        retry,
        ..ClientConfig::default()
    };
    ServerClient::new(url, config).unwrap()
}

async fn put(history: &History, c: &ServerClient, key: &Key, value: &str) -> Outcome {
    let call = history.now();
    let outcome = Outcome::of(&c.put(key, value.to_owned()).await);
    let op = Op::Put {
        value: value.to_owned(),
    };
    history.record(WRITER, key, op, call, outcome, None);
    outcome
}

async fn get(history: &History, c: &ServerClient, key: &Key) -> Option<String> {
    let call = history.now();
    let result = c.get(key).await;
    let outcome = Outcome::of(&result);
    let found = result
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v.value).into_owned());
    history.record(READER, key, Op::Get, call, outcome, found.clone());
    assert_eq!(outcome, Outcome::Ok, "the read of {key} was answered");
    found
}

/// The scenario on three copies started with `extra`; the history goes to `out`. Answers what
/// the write of v2 came to.
async fn lose_the_leader_after_a_write(uid: &'static str, extra: &[&str], out: &Path) -> Outcome {
    let http = client(Duration::from_secs(30));
    let group = format!("{uid}/0");
    let (mut copies, _) = three_formed(&http, (uid, &group), extra, &[0, 1, 2]).await;
    let leader = leader_among(&http, &copies).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let history = History::default();
    let key = Key::new("k").unwrap();
    let at_leader = kv(&copies[leader].url(), RetryPolicy::NONE);

    assert_eq!(put(&history, &at_leader, &key, "v1").await, Outcome::Ok);
    // Acknowledged is not yet replicated under the broken flag: wait until every copy has v1.
    for c in &copies {
        let url = format!("{}/v1/keys/{key}", c.url());
        eventually("v1 on every copy", || async {
            let r = http.get(&url).header(header::READ, header::READ_FOLLOWER);
            let text = r.send().await.ok()?.text().await.ok()?;
            (text == "v1").then_some(())
        })
        .await;
    }
    assert_eq!(get(&history, &at_leader, &key).await.as_deref(), Some("v1"));

    for f in &followers {
        drop(copies[*f].proc.take()); // kill -9, waited for
    }
    let v2 = put(&history, &at_leader, &key, "v2").await;
    drop(copies[leader].proc.take());

    for f in &followers {
        copies[*f].start();
    }
    for f in &followers {
        common::wait_healthy(&copies[*f].ops_url()).await;
    }
    let new = leader_among(&http, &copies).await;
    let at_new = kv(
        &copies[new].url(),
        RetryPolicy::within(Duration::from_secs(10)),
    );
    assert_eq!(
        get(&history, &at_new, &key).await.as_deref(),
        Some("v1"),
        "the copies that elected the new leader never had v2"
    );
    history
        .write_to(out)
        .unwrap_or_else(|e| panic!("writing the history to {}: {e}", out.display()));
    v2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_leader_that_acknowledges_before_its_quorum() {
    let out = kept("ack-local");
    let v2 = lose_the_leader_after_a_write("uid-broken", &["--unsafe-ack=local"], &out).await;
    assert_eq!(v2, Outcome::Ok, "the broken leader acknowledged v2 alone");
    assert_eq!(checker::check(&CHECKER, &out), Verdict::Illegal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenario_on_the_correct_build_is_linearizable() {
    let out = kept("correct");
    let v2 = lose_the_leader_after_a_write("uid-correct", &[], &out).await;
    assert_eq!(
        v2,
        Outcome::Unknown,
        "a leader without its quorum cannot acknowledge v2"
    );
    assert_eq!(checker::check(&CHECKER, &out), Verdict::Linearizable);
}
