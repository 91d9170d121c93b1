//! Membership as the operator drives it, over three real kvserver processes on loopback (the
//! built binary, `common::raft`):
//! - `POST /v1/admin/raft/voters` leaves exactly the members it names: a learner left out
//!   leaves the group too, and comes back when named again.
//!
//! Every wait polls with a deadline; nothing is asserted on time.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::raft::{Copy, admin_post, client, eventually, form, start_all, status};
use kvproto::raft::{RaftStatus, Role};
use kvproto::raft_admin::{ADD_LEARNER_PATH, VOTERS_PATH};
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
    let mut copies = Copy::three(UID, &[]);
    start_all(&mut copies).await;
    let url: Vec<String> = copies.iter().map(Copy::url).collect();
    // Copies 0 and 1 vote; copy 2 joins as a learner only.
    let m = form(&http, &copies, GROUP, &[0, 1]).await;
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
    let r = http
        .put(format!("{}/v1/keys/alone", url[0]))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::NO_CONTENT,
        "one voter commits alone"
    );
}
