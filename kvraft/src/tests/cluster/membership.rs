//! Leadership transfer and membership changes: `transfer_leadership` moves the leader (to a
//! named voter or the most caught-up one), asking again when a request was lost; a single voter that already holds records (a store
//! converted to a group) takes two learners, which receive those records, makes one a voter
//! (the other, not named, leaves the group), takes it back, makes both voters, and goes back to
//! being the only voter.

use kvproto::raft::Role;

use super::super::group;
use super::super::target::encode;
use super::harness::{BOUND, Cluster, Node, SERIAL, eventually};
use crate::group::GroupError;
use crate::records::RECORDS_KEYSPACE;

/// Three voters with a write committed, the one that leads, and another to hand over to.
async fn three_voters_and_a_target() -> (Cluster, Vec<usize>, usize, usize) {
    let c = Cluster::voters(3, |_| {}).await;
    let all = c.all();
    c.put(&all, "k", "v").await;
    let old = c.leader(&all).await;
    (c, all, old, (old + 1) % 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_leadership_moves_the_leader() {
    let _serial = SERIAL.lock().await;
    let (c, all, old, to) = three_voters_and_a_target().await;
    let new = c.nodes[old]
        .group
        .transfer_leadership(Some(c.nodes[to].me.clone()))
        .await
        .expect("transfers");
    assert_eq!(new, c.nodes[to].me);
    assert_eq!(c.leader(&all).await, to);
    // Only the leader hands leadership over.
    assert!(matches!(
        c.nodes[old].group.transfer_leadership(None).await,
        Err(GroupError::NotLeader { .. })
    ));
    // Unnamed: some other voter takes over.
    let next = c.nodes[to]
        .group
        .transfer_leadership(None)
        .await
        .expect("transfers");
    assert_ne!(next, c.nodes[to].me);
    let now = c.leader(&all).await;
    assert_eq!(c.nodes[now].me, next);
    c.put(&all, "after", "transfers").await;
    for n in &c.nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_whose_request_was_lost_is_asked_again() {
    let _serial = SERIAL.lock().await;
    let (c, all, old, to) = three_voters_and_a_target().await;
    // The target hears nothing for a moment (shorter than an election timeout): the first
    // transfer request is lost, and openraft's leader, which stopped proposing, never sends it
    // again by itself.
    c.cut(to);
    let group = c.nodes[old].group.clone();
    let target = c.nodes[to].me.clone();
    let transfer = tokio::spawn(async move { group.transfer_leadership(Some(target)).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.heal(to);
    let new = transfer
        .await
        .expect("joins")
        .expect("transfers once asked again");
    assert_eq!(new, c.nodes[to].me);
    assert_eq!(c.leader(&all).await, to);
    c.put(&all, "after", "the transfer").await;
    for n in &c.nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_voter_with_data_grows_to_three_and_back_to_one() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(0, |_| {}).await;
    // Copy 0 held 300 records before the group existed: no log entry carries them.
    let prepare = |db: &fjall::Database| {
        let ks = db
            .keyspace(RECORDS_KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .expect("records keyspace");
        for i in 0..300 {
            ks.insert(
                format!("old-{i:03}"),
                encode(true, 1000 + i, b"from before"),
            )
            .expect("inserts");
        }
    };
    c.nodes
        .push(Node::start(0, &c.partition, prepare, |_| {}).await);
    let solo = vec![c.nodes[0].me.clone()];
    c.nodes[0]
        .group
        .initialize(group(), solo.clone())
        .await
        .expect("initializes");
    assert_eq!(c.leader(&[0]).await, 0);
    for i in 0..50 {
        c.put(&[0], &format!("new-{i:02}"), "after init").await;
    }

    for i in 1..3 {
        c.nodes
            .push(Node::start(i, &c.partition, |_| {}, |_| {}).await);
    }
    for i in 1..3 {
        c.nodes[0]
            .group
            .add_learner(c.nodes[i].me.clone())
            .await
            .expect("adds a learner");
    }
    // Adding the same learner again changes nothing.
    c.nodes[0]
        .group
        .add_learner(c.nodes[1].me.clone())
        .await
        .expect("idempotent");
    let contents = c.converged(&[0, 1, 2]).await;
    assert_eq!(
        contents.len(),
        350,
        "the learners got the old records and the new"
    );
    let status = c.nodes[0].group.status();
    let learners = status
        .members
        .iter()
        .filter(|m| m.role == Role::Learner)
        .count();
    assert_eq!((status.members.len(), learners), (3, 2));

    // Voters named without a learner: the learner leaves the group, not only the voters.
    let two = vec![c.nodes[0].me.clone(), c.nodes[1].me.clone()];
    c.nodes[0].group.set_voters(two).await.expect("two voters");
    let status = c.nodes[0].group.status();
    let ids: Vec<_> = status
        .members
        .iter()
        .map(|m| (m.member.node_id, m.role))
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "only the voters named are members: {status:?}"
    );
    assert!(
        status.members.iter().all(|m| m.role == Role::Voter),
        "{status:?}"
    );
    assert!(!ids.iter().any(|(id, _)| *id == c.nodes[2].me.node_id));
    // It may come back as a learner.
    c.nodes[0]
        .group
        .add_learner(c.nodes[2].me.clone())
        .await
        .expect("adds the learner again");

    let three: Vec<_> = c.nodes.iter().map(|n| n.me.clone()).collect();
    c.nodes[0]
        .group
        .set_voters(three.clone())
        .await
        .expect("three voters");
    let status = c.nodes[0].group.status();
    assert!(
        status.members.iter().all(|m| m.role == Role::Voter),
        "{status:?}"
    );
    c.nodes[0]
        .group
        .set_voters(three)
        .await
        .expect("idempotent");
    c.put(&[0, 1, 2], "with-three", "v").await;
    c.converged(&[0, 1, 2]).await;

    // Back to one voter: the others leave the group, and it commits alone.
    let leader = c.leader(&[0, 1, 2]).await;
    if leader != 0 {
        c.nodes[leader]
            .group
            .transfer_leadership(Some(c.nodes[0].me.clone()))
            .await
            .expect("moves to copy 0");
    }
    c.nodes[0].group.set_voters(solo).await.expect("one voter");
    let status = eventually("the membership is copy 0 alone", BOUND, || async {
        let s = c.nodes[0].group.status();
        (s.members.len() == 1).then_some(s)
    })
    .await;
    assert_eq!(status.members[0].member, c.nodes[0].me);
    assert_eq!(status.members[0].role, Role::Voter);
    c.nodes[1].stop().await;
    c.nodes[2].stop().await;
    c.put(&[0], "alone-again", "v").await;
    assert_eq!(c.nodes[0].contents().await.len(), 352);
    c.nodes[0].stop().await;
}
