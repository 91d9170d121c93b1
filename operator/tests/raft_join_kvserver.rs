//! The operator's `join` (`RaftChange::Join` through `KvClientAdmin`, kvclient's
//! `ServerClient::raft_join`) against real kvservers in this process on 127.0.0.1, started as
//! a replaced copy 0 is: an empty volume and no raft flags (docs/replication.md section 12,
//! "Phase 6 kvserver follow-ups as landed").

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use kvproto::Key;
use kvproto::raft::{GroupId, Member, ServerState};
use kvproto::wire::ErrorCode;
use operator::shards::{KvClientAdmin, RaftChange, ShardAdmin};
use support::kvservers::{TOKEN, client, start};

fn group() -> GroupId {
    GroupId {
        store_uid: "uid-join".to_owned(),
        shard: 0,
    }
}

/// The copy at `url` as the group would list it, with `node_id`.
fn entry(url: &str, node_id: u64) -> Member {
    Member {
        node_id,
        pod: "demo-0".to_owned(),
        addr: url.to_owned(),
    }
}

fn is_mismatch(err: &kvclient::Error) -> bool {
    matches!(
        err,
        kvclient::Error::Status {
            status: 409,
            code: Some(ErrorCode::RaftGroupMismatch),
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_copy_without_a_group_joins_once_and_again_and_refuses_another_node_id() {
    let server = start(0).await;
    let admin = KvClientAdmin::default();
    // The server opens its storage before it answers; the status route creates the node ID.
    client(&server.url).info().await.unwrap();
    let fresh = admin.raft_status(&server.url, TOKEN).await.unwrap();
    assert_eq!(fresh.group, None);
    assert!(fresh.members.is_empty());

    // Another node ID (the one the group lists for this pod, say) is refused.
    let old = RaftChange::Join {
        member: entry(&server.url, fresh.node_id ^ 1),
    };
    let err = admin
        .raft_change(&server.url, TOKEN, &group(), &old)
        .await
        .unwrap_err();
    assert!(is_mismatch(&err), "{err:?}");

    // Its own: taken, and again (the operator resends it after a restart).
    let join = RaftChange::Join {
        member: entry(&server.url, fresh.node_id),
    };
    for _ in 0..2 {
        admin
            .raft_change(&server.url, TOKEN, &group(), &join)
            .await
            .unwrap();
    }
    let joined = admin.raft_status(&server.url, TOKEN).await.unwrap();
    assert_eq!(joined.group, Some(group()));
    assert_eq!(joined.node_id, fresh.node_id, "the node ID it reported");
    assert!(joined.members.is_empty(), "a non-member until add-learner");
    assert_eq!(joined.state, ServerState::Learner);

    // Another group on the same copy: refused.
    let other = GroupId {
        store_uid: "uid-other".to_owned(),
        shard: 0,
    };
    let err = admin
        .raft_change(&server.url, TOKEN, &other, &join)
        .await
        .unwrap_err();
    assert!(is_mismatch(&err), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_holding_keys_of_its_own_is_refused_and_keeps_them() {
    let server = start(0).await;
    let data = client(&server.url);
    let key = Key::new("written-outside").unwrap();
    data.put(&key, "v").await.unwrap();
    let admin = KvClientAdmin::default();
    let me = admin.raft_status(&server.url, TOKEN).await.unwrap();

    let join = RaftChange::Join {
        member: entry(&server.url, me.node_id),
    };
    let err = admin
        .raft_change(&server.url, TOKEN, &group(), &join)
        .await
        .unwrap_err();
    assert!(is_mismatch(&err), "{err:?}");
    assert!(err.to_string().contains("1 keys"), "{err}");
    assert_eq!(
        admin.raft_status(&server.url, TOKEN).await.unwrap().group,
        None
    );
    let kept = data.get(&key).await.unwrap().expect("its key is kept");
    assert_eq!(&kept.value[..], b"v");
}
