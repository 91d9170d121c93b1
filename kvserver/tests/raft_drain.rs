//! A drained leader (SIGTERM: hand leadership over, forward while draining, close), over three
//! real kvserver processes on loopback (the built binary, `common::raft`), with the production
//! timing (heartbeat 150 ms, election timeout 600 ms, drain delay 2 s):
//! - 8 writers with kvclient's default client (`ClientConfig::default`: 2 s timeout, its
//!   standard retries): four over the shard's copies (they follow `x-kv-leader`, so they write
//!   through the leader that drains) and two pinned to each of the other copies (forwarded).
//!   No write fails; the longest pause between two acknowledged writes is printed, never
//!   asserted.
//! - What a follower that has not heard of the new leader still sends the drained copy (a
//!   request marked for the leader, naming its sender) is passed on to the new leader, not held
//!   for an election that will not make the drained copy leader again; and the draining copy
//!   keeps no connection alive (`Connection: close`).
//! - Leadership moved back to a draining copy (an operator's transfer sent before it saw the
//!   pod go) is handed over again while the copy drains: it never stops as the leader.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TOKEN;
use common::raft::{Copy, admin_post, client, eventually, leader_among, status, three_formed};
use kvclient::{ClientConfig, ServerClient, ShardedClient};
use kvproto::Key;
use kvproto::raft::{Member, ServerState};
use kvproto::raft_admin::TRANSFER_LEADER_PATH;
use kvproto::wire::header;
use reqwest::StatusCode;
use serde_json::json;

const UID: &str = "uid-drain";
const GROUP: &str = "uid-drain/0";
/// The production timing, and a drain delay of `drain`.
fn flags(drain: &'static str) -> [&'static str; 6] {
    [
        "--drain-delay",
        drain,
        "--raft-heartbeat",
        "150ms",
        "--raft-election-timeout-min",
        "600ms",
    ]
}

/// One write as a writer saw it.
struct Op {
    writer: usize,
    started: Instant,
    ended: Instant,
    error: Option<String>,
}

enum Writer {
    Copies(ShardedClient),
    Pinned(ServerClient),
}

impl Writer {
    async fn put(&self, key: &Key, value: String) -> Result<(), kvclient::Error> {
        match self {
            Writer::Copies(c) => c.put(key, value).await.map(|_| ()),
            Writer::Pinned(c) => c.put(key, value).await.map(|_| ()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_leader_fails_no_write_of_a_client_with_default_retries() {
    let http = client(Duration::from_secs(30));
    let (mut copies, _) = three_formed(&http, (UID, GROUP), &flags("2s"), &[0, 1, 2]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    let leader = leader_among(&http, &copies).await;
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    let mut tasks = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    for w in 0..8 {
        let writer = if w < 4 {
            let c = ShardedClient::new(&[url[0].clone()], ClientConfig::default()).unwrap();
            c.set_copies(std::slice::from_ref(&url)).unwrap();
            Writer::Copies(c)
        } else {
            let pinned = &url[others[w % 2]];
            Writer::Pinned(ServerClient::new(pinned, ClientConfig::default()).unwrap())
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut ops = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let key = Key::new(format!("w{w}-{i}")).unwrap();
                let started = Instant::now();
                let result = writer.put(&key, format!("v{i}")).await;
                ops.push(Op {
                    writer: w,
                    started,
                    ended: Instant::now(),
                    error: result.err().map(|e| e.to_string()),
                });
                i += 1;
            }
            ops
        }));
    }
    // Under way before the drain, and on past the drained copy's exit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term_at = Instant::now();
    let drained = copies[leader].proc.as_mut().unwrap();
    drained.sigterm();
    let exit = drained.wait_exit(term_at, Duration::from_secs(30)).await;
    let exit_ms = term_at.elapsed().as_millis();
    assert!(exit.is_some_and(|s| s.success()), "a clean exit: {exit:?}");
    copies[leader].proc = None;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    let mut ops = Vec::new();
    for t in tasks {
        ops.extend(t.await.unwrap());
    }
    ops.sort_by_key(|o| o.ended);

    let at = |t: Instant| {
        let ms = |d: Duration| i128::try_from(d.as_millis()).unwrap_or(i128::MAX);
        ms(t.saturating_duration_since(term_at)) - ms(term_at.saturating_duration_since(t))
    };
    let failed: Vec<&Op> = ops.iter().filter(|o| o.error.is_some()).collect();
    for o in &failed {
        eprintln!(
            "writer {} failed (+{}..+{} ms after SIGTERM): {}",
            o.writer,
            at(o.started),
            at(o.ended),
            o.error.as_deref().unwrap_or_default()
        );
    }
    let acked: Vec<Instant> = ops
        .iter()
        .filter(|o| o.error.is_none())
        .map(|o| o.ended)
        .collect();
    let (gap, gap_end) = acked
        .windows(2)
        .map(|w| (w[1] - w[0], w[1]))
        .max_by_key(|(d, _)| *d)
        .unwrap_or((Duration::ZERO, term_at));
    let slowest = ops.iter().map(|o| o.ended - o.started).max();
    eprintln!(
        "drain: {} writes, {} failed; exit +{exit_ms} ms after SIGTERM; longest pause between \
         acknowledged writes {} ms (ending +{} ms); slowest write {:?}",
        ops.len(),
        failed.len(),
        gap.as_millis(),
        at(gap_end),
        slowest
    );
    assert!(failed.is_empty(), "no write failed during the drain");
    assert!(
        acked
            .iter()
            .any(|t| *t > term_at + Duration::from_millis(exit_ms as u64)),
        "writes went on after the drained copy exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_copy_passes_on_what_is_sent_to_it_as_the_leader() {
    let http = client(Duration::from_secs(30));
    // A long drain delay: the drained copy stays up, stepped down, while the test asks it.
    let (copies, _) = three_formed(&http, (UID, GROUP), &flags("60s"), &[0, 1, 2]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    let leader = leader_among(&http, &copies).await;

    copies[leader].proc.as_ref().unwrap().sigterm();
    let new = eventually("the drained copy follows a new leader", || async {
        let s = status(&http, &url[leader]).await?;
        let l = s.leader?;
        (s.state == ServerState::Follower && l.pod != copies[leader].pod).then_some(l)
    })
    .await;
    // The copy that neither drained nor leads.
    let follower = (0..3)
        .find(|i| *i != leader && copies[*i].pod != new.pod)
        .unwrap();
    let follower_id = status(&http, &url[follower]).await.unwrap().node_id;

    // As that follower, still taking the drained copy for the leader, forwards a write.
    let r = http
        .put(format!("{}/v1/keys/passed", url[leader]))
        .bearer_auth(TOKEN)
        .header("x-kv-to-leader", format!("from={follower_id}"))
        .header(header::HOPS, "1")
        .body("on")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "passed on to the leader"
    );
    assert_eq!(
        r.headers()
            .get(header::LEADER)
            .and_then(|v| v.to_str().ok()),
        Some(new.pod.as_str())
    );
    assert_eq!(
        r.headers()
            .get(reqwest::header::CONNECTION)
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "a draining copy keeps no connection alive"
    );
    let at_leader = http
        .get(format!("{}/v1/keys/passed", new.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(at_leader.text().await.unwrap(), "on");

    // A copy that never drained keeps its connections.
    let r = http
        .get(format!("{}/v1/keys/passed", url[follower]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(reqwest::header::CONNECTION).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moved_back_to_a_draining_copy_is_handed_over_again() {
    let http = client(Duration::from_secs(30));
    // Long enough for the transfer back and the second handover within the drain.
    let (mut copies, _) = three_formed(&http, (UID, GROUP), &flags("10s"), &[0, 1, 2]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    let leader = leader_among(&http, &copies).await;
    let drained_id = status(&http, &url[leader]).await.unwrap().node_id;

    copies[leader].proc.as_ref().unwrap().sigterm();
    let new = eventually("the drained copy follows a new leader", || async {
        let s = status(&http, &url[leader]).await?;
        let l = s.leader?;
        (s.state == ServerState::Follower && l.node_id != drained_id).then_some(l)
    })
    .await;
    let new_at = (0..3).find(|i| copies[*i].pod == new.pod).unwrap();

    // As an operator that has not seen the pod go would: leadership back to the drained copy.
    let a = admin_post(
        &http,
        &url[new_at],
        TRANSFER_LEADER_PATH,
        Some(GROUP),
        json!({"to": copies[leader].member(drained_id)}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let moved_to: Member = serde_json::from_value(a.body).unwrap();
    assert_eq!(
        moved_to.node_id, drained_id,
        "leadership reached the draining copy"
    );

    // It hands leadership over again while it still drains, so it never stops as leader.
    let after = eventually(
        "the draining copy to hand leadership over again",
        || async {
            let s = status(&http, &url[leader]).await?;
            let l = s.leader?;
            (s.state == ServerState::Follower && l.node_id != drained_id).then_some(l)
        },
    )
    .await;
    let exited = copies[leader]
        .proc
        .as_mut()
        .unwrap()
        .child
        .try_wait()
        .unwrap();
    assert!(
        exited.is_none(),
        "handed over again (to {}) while still draining, not by exiting: {exited:?}",
        after.pod
    );
}
