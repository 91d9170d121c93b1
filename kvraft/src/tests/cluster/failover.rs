//! Failover: a stopped leader is replaced and nothing it acknowledged is lost; a leader cut off
//! from its followers never acknowledges a write (nor passes a linearizable read once another
//! copy leads) while the majority elects a new leader and goes on, and it rejoins as a
//! follower with the majority's history.

use super::harness::{BOUND, Cluster, SERIAL, eventually, put_cmd};
use crate::group::{ReadMode, WriteError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::voters(3, |_| {}).await;
    let all = c.all();
    let mut acked = Vec::new();
    for i in 0..20 {
        c.put(&all, &format!("before-{i}"), "v").await;
        acked.push(format!("before-{i}"));
    }
    let old = c.leader(&all).await;
    c.nodes[old].stop().await;
    let rest: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = c.leader(&rest).await;
    assert_ne!(new, old);
    for i in 0..20 {
        c.put(&rest, &format!("after-{i}"), "v").await;
        acked.push(format!("after-{i}"));
    }
    let contents = c.converged(&rest).await;
    let keys: Vec<&str> = contents.iter().map(|(k, _)| k.as_str()).collect();
    for k in &acked {
        assert!(keys.contains(&k.as_str()), "acknowledged {k} is lost");
    }
    for i in rest {
        c.nodes[i].stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_leader_never_acknowledges_a_write() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::voters(3, |_| {}).await;
    let all = c.all();
    c.put(&all, "base", "v").await;
    c.converged(&all).await;
    let old = c.leader(&all).await;
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();

    c.cut(old);
    // Writes on the cut-off leader, one after another, while the majority moves on.
    let stale = c.nodes[old].group.clone();
    let writer = tokio::spawn(async move {
        let mut answers = Vec::new();
        for i in 0..4 {
            answers.push(stale.write(put_cmd(&format!("cut-{i}"), "lost")).await);
        }
        answers
    });
    let new = c.leader(&majority).await;
    assert_ne!(new, old);
    for i in 0..10 {
        c.put(&majority, &format!("majority-{i}"), "v").await;
    }
    // Another copy leads: the old leader's lease is over, so it cannot read linearizably.
    assert!(
        c.nodes[old]
            .group
            .read_barrier(ReadMode::Linearizable)
            .await
            .is_err(),
        "a deposed leader passed a linearizable read barrier"
    );
    let answers = writer.await.expect("the writer finishes");
    for (i, answer) in answers.iter().enumerate() {
        assert!(
            matches!(
                answer,
                Err(WriteError::OutcomeUnknown
                    | WriteError::NotLeader { .. }
                    | WriteError::NoLeader)
            ),
            "write {i} on the cut-off leader answered {answer:?}"
        );
    }

    c.heal(old);
    eventually("the old leader follows the new one", BOUND, || async {
        let l = c.nodes[old].group.leader()?;
        (l.node_id == c.nodes[new].me.node_id && !c.nodes[old].group.is_leader()).then_some(())
    })
    .await;
    let contents = c.converged(&all).await;
    let keys: Vec<&str> = contents.iter().map(|(k, _)| k.as_str()).collect();
    for i in 0..10 {
        assert!(keys.contains(&format!("majority-{i}").as_str()));
    }
    assert!(
        !keys.iter().any(|k| k.starts_with("cut-")),
        "an unreplicated write of the cut-off leader survived: {keys:?}"
    );
    // Writes go on through the new leader with everyone back.
    c.put(&all, "healed", "v").await;
    for n in &c.nodes {
        n.stop().await;
    }
}
