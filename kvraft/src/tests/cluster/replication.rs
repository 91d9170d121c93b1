//! Three voters elect a leader and every copy applies what it acknowledged; followers refuse
//! writes and linearizable reads, naming the leader; the leader's status reports each member.

use kvproto::raft::{Role, ServerState};

use super::harness::{BOUND, Cluster, SERIAL, eventually, put_cmd};
use crate::command::Outcome;
use crate::group::{ReadError, ReadMode, WriteError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_elect_a_leader_and_replicate_every_write() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::voters(3, |_| {}).await;
    let all = c.all();
    let leader = c.leader(&all).await;
    for i in 0..50 {
        let outcome = c
            .put(&all, &format!("key-{i:02}"), &format!("value {i}"))
            .await;
        assert!(matches!(outcome, Outcome::Written { .. }), "{outcome:?}");
    }
    let contents = c.converged(&all).await;
    assert_eq!(contents.len(), 50);
    assert_eq!(contents[7], ("key-07".to_owned(), "value 7".to_owned()));

    // The leader reads linearizably, at or after everything it acknowledged.
    let token = c.nodes[leader]
        .group
        .read_barrier(ReadMode::Linearizable)
        .await
        .expect("the leader passes the barrier");
    assert!(token.read_index >= Some(50), "{token:?}");
    assert!(token.applied_index >= token.read_index, "{token:?}");

    // A follower names the leader instead of proposing or reading.
    let follower = (leader + 1) % 3;
    let leader_member = c.nodes[leader].me.clone();
    assert_eq!(
        c.nodes[follower].group.write(put_cmd("nope", "x")).await,
        Err(WriteError::NotLeader {
            leader: Some(leader_member.clone())
        })
    );
    assert_eq!(
        c.nodes[follower]
            .group
            .read_barrier(ReadMode::Linearizable)
            .await,
        Err(ReadError::NotLeader {
            leader: Some(leader_member.clone())
        })
    );
    let follower_read = c.nodes[follower]
        .group
        .read_barrier(ReadMode::Follower)
        .await
        .expect("a follower read passes once it caught up");
    assert!(follower_read.applied_index >= Some(50), "{follower_read:?}");

    // The leader's status: every member a voter, matched up to its last index.
    let status = eventually(
        "the leader sees every follower caught up",
        BOUND,
        || async {
            let s = c.nodes[leader].group.status();
            s.members.iter().all(|m| m.lag == Some(0)).then_some(s)
        },
    )
    .await;
    assert_eq!(status.state, ServerState::Leader);
    assert_eq!(status.leader, Some(leader_member.clone()));
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.role == Role::Voter));
    assert!(
        status
            .members
            .iter()
            .all(|m| m.matched == status.last_log_index)
    );
    let follower_status = c.nodes[follower].group.status();
    assert_eq!(follower_status.state, ServerState::Follower);
    assert!(follower_status.members.iter().all(|m| m.matched.is_none()));
    assert_eq!(follower_status.leader, Some(leader_member));

    // Initialize is idempotent: the formed group stays as it is.
    let voters = c.nodes.iter().map(|n| n.me.clone()).collect();
    c.nodes[leader]
        .group
        .initialize(super::super::group(), voters)
        .await
        .expect("a second initialize is fine");
    assert_eq!(c.leader(&all).await, leader);
    for n in &c.nodes {
        n.stop().await;
    }
}
