//! Membership as the operator drives it, over three real kvserver processes on loopback (the
//! built binary, `common::raft`):
//! - `POST /v1/admin/raft/voters` leaves exactly the members it names: a learner left out
//!   leaves the group too, and comes back when named again;
//! - a replaced copy 0 (killed, its volume wiped, started again without raft flags) rejoins
//!   through `POST /v1/admin/raft/join`, then the leader's voters without its old ID,
//!   add-learner and voters, as the operator calls them: an in-sync voter with every key;
//! - `join` refuses (through the router, `oneshot`) a copy holding keys of its own, another
//!   copy's node ID, a group other than the flags', and a header that is not the body's.
//!
//! Every wait polls with a deadline; nothing is asserted on time.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Request, StatusCode};
use common::raft::{Copy, admin_post, client, eventually, leader_among, status, three_formed};
use common::{TOKEN, send};
use kvproto::raft::{RaftStatus, Role, ServerState};
use kvproto::raft_admin::{ADD_LEARNER_PATH, JOIN_PATH, STATUS_PATH, VOTERS_PATH};
use kvproto::wire::header;
use serde_json::{Value, json};

const UID: &str = "uid-members";
const GROUP: &str = "uid-members/0";

/// Every member of `s` by node ID, with its role.
fn roles(s: &RaftStatus) -> BTreeMap<u64, Role> {
    s.members
        .iter()
        .map(|m| (m.member.node_id, m.role))
        .collect()
}

fn id(member: &Value) -> u64 {
    member["nodeId"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_leave_exactly_the_members_named() {
    let http = client(Duration::from_secs(30));
    // Copies 0 and 1 vote; copy 2 joins as a learner only.
    let (copies, m) = three_formed(&http, (UID, GROUP), &[], &[0, 1]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    let s = admin_post(
        &http,
        &url[0],
        ADD_LEARNER_PATH,
        Some(GROUP),
        json!({"member": m[2]}),
    )
    .await
    .ok("add-learner");
    let s: RaftStatus = serde_json::from_value(s).unwrap();
    assert_eq!(roles(&s).get(&id(&m[2])), Some(&Role::Learner));

    // The voters again, without the learner: it leaves the group.
    let s = admin_post(
        &http,
        &url[0],
        VOTERS_PATH,
        Some(GROUP),
        json!({"voters": [m[0], m[1]]}),
    )
    .await
    .ok("voters without the learner");
    let s: RaftStatus = serde_json::from_value(s).unwrap();
    let two = BTreeMap::from([(id(&m[0]), Role::Voter), (id(&m[1]), Role::Voter)]);
    assert_eq!(roles(&s), two, "the learner not named is gone: {s:?}");
    // The follower's view commits to the same.
    eventually("copy 1 sees the two voters alone", || async {
        let s = status(&http, &url[1]).await?;
        (roles(&s) == two).then_some(())
    })
    .await;

    // Named again, it comes back (as a learner first, then a voter).
    let s = admin_post(
        &http,
        &url[0],
        VOTERS_PATH,
        Some(GROUP),
        json!({"voters": m}),
    )
    .await
    .ok("three voters");
    let s: RaftStatus = serde_json::from_value(s).unwrap();
    assert_eq!(roles(&s).len(), 3);
    assert!(roles(&s).values().all(|r| *r == Role::Voter), "{s:?}");

    // Down to copy 0 alone: the voters not named leave as well.
    let s = admin_post(
        &http,
        &url[0],
        VOTERS_PATH,
        Some(GROUP),
        json!({"voters": [m[0]]}),
    )
    .await
    .ok("one voter");
    let s: RaftStatus = serde_json::from_value(s).unwrap();
    assert_eq!(roles(&s), BTreeMap::from([(id(&m[0]), Role::Voter)]));
    assert_eq!(
        put(&http, &url[0], "alone", "v").await,
        StatusCode::NO_CONTENT,
        "one voter commits alone"
    );
}

async fn put(http: &reqwest::Client, url: &str, key: &str, value: &str) -> StatusCode {
    match http
        .put(format!("{url}/v1/keys/{key}"))
        .body(value.to_owned())
        .send()
        .await
    {
        Ok(r) => r.status(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_copy_0_rejoins_through_join_and_becomes_an_in_sync_voter() {
    let http = client(Duration::from_secs(30));
    let (mut copies, m) = three_formed(&http, (UID, GROUP), &[], &[0, 1, 2]).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    let mut acked = BTreeMap::new();
    for i in 0..10 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(put(&http, &url[0], &k, &v).await, StatusCode::NO_CONTENT);
        acked.insert(k, v);
    }

    // Copy 0 (the leader) loses its pod and its volume; it comes back empty, without flags.
    copies[0].proc.take().unwrap().kill9();
    std::fs::remove_dir_all(copies[0].data_dir()).unwrap();
    let leader = leader_among(&http, &copies).await;
    assert_ne!(leader, 0);
    copies[0].start();
    common::wait_healthy(&copies[0].ops_url()).await;
    for i in 10..20 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        eventually("a write on the two copies left", || async {
            (put(&http, &url[leader], &k, &v).await == StatusCode::NO_CONTENT).then_some(())
        })
        .await;
        acked.insert(k, v);
    }
    let fresh = status(&http, &url[0]).await.unwrap();
    assert_eq!(fresh.group, None, "no group on the new volume");
    assert!(fresh.members.is_empty());
    assert_ne!(fresh.node_id, id(&m[0]), "a new volume, a new node ID");
    let new_member = copies[0].member(fresh.node_id);

    // Join: for the old ID refused, for its own ID taken (and again: the same answer).
    let old = json!({"group": GROUP, "member": m[0]});
    let a = admin_post(&http, &url[0], JOIN_PATH, Some(GROUP), old).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "raft_group_mismatch"),
        "{}",
        a.body
    );
    let join = json!({"group": GROUP, "member": new_member});
    for _ in 0..2 {
        let s = admin_post(&http, &url[0], JOIN_PATH, Some(GROUP), join.clone())
            .await
            .ok("join");
        let s: RaftStatus = serde_json::from_value(s).unwrap();
        assert_eq!(
            s.group.as_ref().map(ToString::to_string).as_deref(),
            Some(GROUP)
        );
        assert_eq!(s.node_id, fresh.node_id);
    }

    // The operator's steps on the leader: the old ID out, the new one in as a learner, voters.
    let to_leader = |path: &'static str, body: Value| {
        let (http, url) = (http.clone(), url[leader].clone());
        async move {
            admin_post(&http, &url, path, Some(GROUP), body)
                .await
                .ok(path)
        }
    };
    to_leader(VOTERS_PATH, json!({"voters": [m[1], m[2]]})).await;
    to_leader(ADD_LEARNER_PATH, json!({"member": new_member})).await;
    let s = to_leader(VOTERS_PATH, json!({"voters": [new_member, m[1], m[2]]})).await;
    let s: RaftStatus = serde_json::from_value(s).unwrap();
    let want: BTreeMap<u64, Role> = [fresh.node_id, id(&m[1]), id(&m[2])]
        .into_iter()
        .map(|i| (i, Role::Voter))
        .collect();
    assert_eq!(roles(&s), want);

    // Copy 0 follows in sync (ready) and holds every key.
    let ops = copies[0].ops_url();
    eventually("copy 0 an in-sync voter", || async {
        let s = status(&http, &url[0]).await?;
        let ready = http.get(format!("{ops}/readyz")).send().await.ok()?;
        (s.state == ServerState::Follower
            && s.leader.is_some()
            && roles(&s) == want
            && ready.status().is_success())
        .then_some(())
    })
    .await;
    for (k, v) in &acked {
        let r = http
            .get(format!("{}/v1/keys/{k}", url[0]))
            .header(header::READ, header::READ_FOLLOWER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{k} on copy 0");
        assert_eq!(&r.text().await.unwrap(), v, "{k}");
    }
    // A restart keeps it in the group (the join was persisted).
    copies[0].proc.take().unwrap().kill9();
    copies[0].start();
    let back = eventually("copy 0 back in its group", || async {
        let s = status(&http, &url[0]).await?;
        (s.state == ServerState::Follower && s.leader.is_some()).then_some(s)
    })
    .await;
    assert_eq!(back.node_id, fresh.node_id);
}

fn join_request(group: &str, body: &Value) -> Request<axum::body::Body> {
    Request::post(JOIN_PATH)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(header::RAFT_GROUP, group)
        .body(serde_json::to_vec(body).unwrap().into())
        .unwrap()
}

fn entry(node_id: u64) -> Value {
    json!({"nodeId": node_id.to_string(), "pod": "kv-0", "addr": "http://kv-0.kv.ns.svc:8080"})
}

#[tokio::test]
async fn join_refuses_a_copy_with_keys_another_id_another_group_or_a_mismatched_header() {
    let f = common::fixture();
    let r = send(&f.router, common::admin("GET", STATUS_PATH, "")).await;
    let me: RaftStatus = serde_json::from_slice(&r.body).unwrap();
    let ours = json!({"group": GROUP, "member": entry(me.node_id)});
    let cases = [
        // The header names another group than the body.
        (
            json!({"group": "uid-members/1", "member": entry(me.node_id)}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"group": GROUP}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        // Another copy's node ID.
        (
            json!({"group": GROUP, "member": entry(me.node_id ^ 1)}),
            StatusCode::CONFLICT,
            "raft_group_mismatch",
        ),
    ];
    for (body, status, code) in cases {
        let r = send(&f.router, join_request(GROUP, &body)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{body}: {}",
            r.text()
        );
    }
    // A live store (keys of its own, no group) is formed with init, never joined.
    let r = send(&f.router, common::get("/save/mine/v")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&f.router, join_request(GROUP, &ours)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "raft_group_mismatch"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("1 keys"), "{}", r.text());
    let r = send(&f.router, common::get("/load/mine")).await;
    assert_eq!(r.text(), "v", "its key is kept");

    // A copy whose flags name another group.
    let copy = common::fixture_with(|c| {
        c.pod_name = Some("kv-r1-0".to_owned());
        c.raft_store_uid = Some("uid-other".to_owned());
        c.raft_advertise_url = Some("http://kv-r1-0.kv.ns.svc:8080".to_owned());
    });
    let r = send(&copy.router, join_request(GROUP, &ours)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "raft_group_mismatch"),
        "{}",
        r.text()
    );
}
