//! A replicated shard's group over three real kvserver processes on loopback (the built
//! binary), formed through the admin routes as the operator forms one: init on copy 0 (no raft
//! flags; the keys and the topology it held before are kept, the topology then carried by the
//! group to every copy), two learners added, all three made voters; a topology push through a
//! follower reaches every copy. Then:
//! writes through the leader and through a follower (forwarded, `x-kv-leader` named), read back
//! from every copy (linearizable by default, and a follower read); leadership moved both ways
//! with `transfer-leader`; kill -9 of the leader (a new one is elected, every acknowledged write
//! still readable, and the killed copy 0 rejoins from its persisted init); a drain (SIGTERM) of
//! the leader hands leadership over with no failed client write (retries only on 503
//! `no_leader`, counted); and the admin routes' error contract (400 / 409 / 503).
//!
//! Every wait polls with a deadline; nothing is asserted on time.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TOKEN;
use common::raft::{
    BOUND, Copy, admin_post, client, eventually, leader_among, leader_named, start_all, status,
};
use kvproto::raft::{Member, RaftStatus, Role, ServerState};
use kvproto::raft_admin::{ADD_LEARNER_PATH, INIT_PATH, TRANSFER_LEADER_PATH, VOTERS_PATH};
use kvproto::wire::header;
use kvproto::{Sharding, Topology};
use reqwest::StatusCode;
use serde_json::{Value, json};

const UID: &str = "uid-test";
const GROUP: &str = "uid-test/0";
const BAD: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "bad_request");
const MISMATCH: (StatusCode, &str) = (StatusCode::CONFLICT, "raft_group_mismatch");

async fn put(http: &reqwest::Client, url: &str, key: &str, value: &str) -> reqwest::Response {
    http.put(format!("{url}/v1/keys/{key}"))
        .body(value.to_owned())
        .send()
        .await
        .unwrap()
}

/// The value a (linearizable, or with `follower` a follower) read of `key` gets, if 200.
async fn read(http: &reqwest::Client, url: &str, key: &str, follower: bool) -> Option<String> {
    let mut rb = http.get(format!("{url}/v1/keys/{key}"));
    if follower {
        rb = rb.header(header::READ, header::READ_FOLLOWER);
    }
    let r = rb.send().await.ok()?;
    if r.status() != StatusCode::OK {
        return None;
    }
    if follower {
        assert!(r.headers().contains_key(header::APPLIED_INDEX));
    }
    r.text().await.ok()
}

#[tokio::test]
async fn three_processes_form_a_group_fail_over_and_drain_without_losing_a_write() {
    let http = client(Duration::from_secs(10));
    let mut copies = Copy::three(UID, &["--drain-delay", "1s", "--raft-write-timeout", "2s"]);
    start_all(&mut copies).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    let by_pod: BTreeMap<String, String> =
        copies.iter().map(|c| (c.pod.to_owned(), c.url())).collect();

    // Copy 0 serves as a factor-1 server until its group is formed; its keys are kept.
    let r = http
        .get(format!("{}/save/before/kept", url[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let raft_rpc = http
        .post(format!("{}/v1/raft/vote", url[0]))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raft_rpc.status(),
        StatusCode::CONFLICT,
        "no group runs on copy 0 yet"
    );

    // ... and serves a topology (pushed as on the direct path), which its group then carries.
    let topology = |epoch| {
        serde_json::to_vec(&Topology::stable(
            epoch,
            Sharding::Modulo,
            vec![url[0].clone()],
        ))
        .unwrap()
    };
    let r = http
        .put(format!("{}/v1/admin/topology", url[0]))
        .bearer_auth(TOKEN)
        .body(topology(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let mut ids = Vec::new();
    for u in &url {
        ids.push(status(&http, u).await.unwrap().node_id);
    }
    let before = status(&http, &url[0]).await.unwrap();
    assert_eq!(before.group, None);
    let m: Vec<Value> = copies
        .iter()
        .zip(&ids)
        .map(|(c, id)| c.member(*id))
        .collect();

    // The error contract before the group exists: (copy, path, group header, body, answer).
    let learner = json!({"member": m[1]});
    let refusals = [
        (1, ADD_LEARNER_PATH, None, &learner, BAD, "no group header"),
        (
            1,
            ADD_LEARNER_PATH,
            Some("no-shard"),
            &learner,
            BAD,
            "a bad group",
        ),
        (
            1,
            ADD_LEARNER_PATH,
            Some("other/0"),
            &learner,
            MISMATCH,
            "another group",
        ),
        (
            0,
            INIT_PATH,
            Some(GROUP),
            &json!({"group": GROUP, "voters": [m[1]]}),
            MISMATCH,
            "copy 0 is not among the voters",
        ),
    ];
    for (copy, path, group, body, want, why) in refusals {
        let a = admin_post(&http, &url[copy], path, group, body.clone()).await;
        assert_eq!((a.status, a.code()), want, "{why}: {}", a.body);
    }

    // Init on copy 0: it keeps the node ID it reported, and leads.
    let init = json!({"group": GROUP, "voters": [m[0]]});
    let a = admin_post(&http, &url[0], INIT_PATH, Some(GROUP), init.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let s: RaftStatus = serde_json::from_value(a.body).unwrap();
    assert_eq!(s.node_id, ids[0], "the ID the operator learned stays valid");
    assert_eq!(
        s.group.as_ref().map(ToString::to_string).as_deref(),
        Some(GROUP)
    );
    assert_eq!(s.state, ServerState::Leader);
    let a = admin_post(&http, &url[0], INIT_PATH, Some(GROUP), init.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "init is idempotent: {}", a.body);
    let other = json!({"group": "uid-other/0", "voters": [m[0]]});
    let a = admin_post(&http, &url[0], INIT_PATH, Some("uid-other/0"), other).await;
    assert_eq!((a.status, a.code()), MISMATCH, "another group");

    // Two learners, then three voters.
    for i in [1, 2] {
        let a = admin_post(
            &http,
            &url[0],
            ADD_LEARNER_PATH,
            Some(GROUP),
            json!({"member": m[i]}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    // A learner refuses, and names the leader once it heard from it.
    let a = eventually("the learner names the leader", || async {
        let a = admin_post(
            &http,
            &url[1],
            ADD_LEARNER_PATH,
            Some(GROUP),
            learner.clone(),
        )
        .await;
        a.leader().is_some().then_some(a)
    })
    .await;
    assert_eq!(
        (a.status, a.code(), a.leader()),
        (StatusCode::SERVICE_UNAVAILABLE, "no_leader", Some("kv-0")),
        "not the leader"
    );
    let a = admin_post(
        &http,
        &url[0],
        VOTERS_PATH,
        Some(GROUP),
        json!({"voters": m}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let s: RaftStatus = serde_json::from_value(a.body).unwrap();
    assert_eq!(s.members.len(), 3);
    assert!(s.members.iter().all(|m| m.role == Role::Voter), "{s:?}");
    assert!(
        s.members.iter().all(|m| m.lag.is_some()),
        "a leader reports lags"
    );
    let a = admin_post(
        &http,
        &url[1],
        INIT_PATH,
        Some(GROUP),
        json!({"group": GROUP, "voters": [m[1]]}),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        MISMATCH,
        "already in another membership"
    );

    // Every copy serves the topology the group applied; a push through a follower reaches
    // the leader (the caller's admin token goes along) and then every copy.
    let serves_epoch = |u: String, epoch: u64| {
        let http = http.clone();
        async move {
            let r = http.get(format!("{u}/v1/topology")).send().await.ok()?;
            let t: Topology = r.json().await.ok()?;
            (t.epoch == epoch).then_some(())
        }
    };
    for u in &url {
        eventually("the seeded topology everywhere", || {
            serves_epoch(u.clone(), 1)
        })
        .await;
    }
    let r = http
        .put(format!("{}/v1/admin/topology", url[2]))
        .bearer_auth(TOKEN)
        .body(topology(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    for u in &url {
        eventually("the pushed topology everywhere", || {
            serves_epoch(u.clone(), 2)
        })
        .await;
    }

    // Writes through the leader and through a follower.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    acked.insert("before".to_owned(), "kept".to_owned());
    for i in 0..10 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        let via = &url[i % 3];
        let r = put(&http, via, &k, &v).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{k} via {via}");
        assert_eq!(leader_named(r.headers()), Some("kv-0"), "{k} via {via}");
        acked.insert(k, v);
    }
    let r = http
        .get(format!("{}/save/book/yes", url[2]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the book's route on a follower");
    acked.insert("book".to_owned(), "yes".to_owned());
    for u in &url {
        for (k, v) in &acked {
            assert_eq!(
                read(&http, u, k, false).await.as_deref(),
                Some(v.as_str()),
                "{k} at {u}"
            );
        }
        let book = http.get(format!("{u}/load/k3")).send().await.unwrap();
        assert_eq!(book.text().await.unwrap(), "v3");
    }
    eventually("a follower read of the last write", || async {
        (read(&http, &url[2], "k9", true).await.as_deref() == Some("v9")).then_some(())
    })
    .await;
    for c in &copies {
        let ops = c.ops_url();
        eventually("every copy ready", || async {
            let r = http.get(format!("{ops}/readyz")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }
    let metrics = http
        .get(format!("{}/metrics", url[0]))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("kvserver_raft_leader 1"), "{metrics}");
    assert!(metrics.contains("kvserver_raft_term "), "{metrics}");

    // Leadership moves on request, and back.
    let a = admin_post(&http, &url[1], TRANSFER_LEADER_PATH, Some(GROUP), json!({})).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "no_leader")
    );
    let a = admin_post(
        &http,
        &url[0],
        TRANSFER_LEADER_PATH,
        Some(GROUP),
        json!({"to": m[1]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        serde_json::from_value::<Member>(a.body).unwrap().node_id,
        ids[1]
    );
    let a = admin_post(
        &http,
        &url[1],
        TRANSFER_LEADER_PATH,
        Some(GROUP),
        json!({"to": m[0]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        serde_json::from_value::<Member>(a.body).unwrap().pod,
        "kv-0"
    );

    // kill -9 of the leader (copy 0): another copy leads, nothing acknowledged is lost.
    assert_eq!(leader_among(&http, &copies).await, 0);
    copies[0].proc.take().unwrap().kill9();
    let new = leader_among(&http, &copies).await;
    assert_ne!(new, 0);
    for i in 10..15 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        let follower = url[3 - new].clone();
        let r = eventually("a write after the failover", || async {
            let r = put(&http, &follower, &k, &v).await;
            (r.status() == StatusCode::NO_CONTENT).then_some(r)
        })
        .await;
        assert_eq!(leader_named(r.headers()), Some(copies[new].pod));
        acked.insert(k, v);
    }
    for (k, v) in &acked {
        assert_eq!(
            read(&http, &url[new], k, false).await.as_deref(),
            Some(v.as_str()),
            "{k}"
        );
    }

    // Copy 0 restarts and rejoins from its persisted init, catching up.
    copies[0].start();
    common::wait_healthy(&copies[0].ops_url()).await;
    let back = eventually("copy 0 back in its group", || async {
        let s = status(&http, &url[0]).await?;
        (s.state == ServerState::Follower && s.leader.is_some()).then_some(s)
    })
    .await;
    assert_eq!(back.node_id, ids[0]);
    eventually("copy 0 caught up", || async {
        (read(&http, &url[0], "k14", true).await.as_deref() == Some("v14")).then_some(())
    })
    .await;

    // A drain of the leader under a writer: leadership moves first, no write fails.
    let leader = leader_among(&http, &copies).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (retries, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (http, by_pod, stop) = (http.clone(), by_pod.clone(), stop.clone());
        let (retries, failed) = (retries.clone(), failed.clone());
        let mut target = url[leader].clone();
        tokio::spawn(async move {
            let mut done = BTreeMap::new();
            let mut i = 0;
            while !stop.load(Ordering::Acquire) {
                let (k, v) = (format!("d{i}"), format!("w{i}"));
                loop {
                    match http
                        .put(format!("{target}/v1/keys/{k}"))
                        .body(v.clone())
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                            if let Some(next) =
                                leader_named(r.headers()).and_then(|p| by_pod.get(p))
                            {
                                target = next.clone();
                            }
                            done.insert(k, v);
                            break;
                        }
                        Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                            let body = r.text().await.unwrap_or_default();
                            if !body.contains("no_leader") {
                                eprintln!("write {k} failed: 503 {body}");
                                failed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            eprintln!("retry {k} at {target}: {body}");
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(r) => {
                            eprintln!(
                                "write {k} failed: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            );
                            failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => {
                            eprintln!("write {k} to {target} failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                i += 1;
            }
            done
        })
    };
    // The writer is under way before the drain starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let drained = copies[leader].proc.as_mut().unwrap();
    drained.sigterm();
    let exit = drained.wait_exit(Instant::now(), BOUND).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "the drained copy exits cleanly: {exit:?}"
    );
    copies[leader].proc = None;
    let after = leader_among(&http, &copies).await;
    assert_ne!(after, leader);
    // Some writes after the drain, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    let written = writer.await.unwrap();
    let (retries, failed) = (
        retries.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "drain: {} writes acknowledged, {retries} retried on 503 no_leader",
        written.len()
    );
    assert_eq!(failed, 0, "no client write failed during the drain");
    assert!(written.len() > 5, "the writer wrote through the drain");
    acked.extend(written);
    for (k, v) in &acked {
        assert_eq!(
            read(&http, &url[after], k, false).await.as_deref(),
            Some(v.as_str()),
            "{k}"
        );
    }
}
