//! The deliberately broken modes are broken: `AckLocal` acknowledges a write on a cut-off
//! leader that is gone once the partition heals; `ReadLocal` lets a cut-off follower pass the
//! linearizable barrier without the latest acknowledged write.

use super::harness::{BOUND, Cluster, SERIAL, eventually, put_cmd};
use crate::command::Outcome;
use crate::group::{ReadMode, UnsafeMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ack_local_acknowledges_a_write_that_is_then_lost() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::voters(3, |cfg| cfg.unsafe_mode = UnsafeMode::AckLocal).await;
    let all = c.all();
    c.put(&all, "base", "v").await;
    c.converged(&all).await;
    let old = c.leader(&all).await;
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();

    c.cut(old);
    let acked = c.nodes[old]
        .group
        .write(put_cmd("acked-then-lost", "v"))
        .await;
    assert!(
        matches!(acked, Ok(Outcome::Written { .. })),
        "the cut-off leader should acknowledge locally: {acked:?}"
    );
    c.leader(&majority).await;
    c.put(&majority, "majority", "v").await;
    c.heal(old);
    eventually("the old leader follows", BOUND, || async {
        (!c.nodes[old].group.is_leader() && c.nodes[old].group.leader().is_some()).then_some(())
    })
    .await;
    let contents = c.converged(&all).await;
    let keys: Vec<&str> = contents.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"majority"));
    assert!(
        !keys.contains(&"acked-then-lost"),
        "the acknowledged write survived: the mode did not break anything"
    );
    for n in &c.nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_local_passes_the_barrier_on_a_stale_copy() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::voters(3, |cfg| cfg.unsafe_mode = UnsafeMode::ReadLocal).await;
    let all = c.all();
    c.put(&all, "base", "v").await;
    c.converged(&all).await;
    let leader = c.leader(&all).await;
    let stale = (leader + 1) % 3;
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != stale).collect();
    c.cut(stale);
    c.put(&majority, "newer", "v").await;
    c.nodes[stale]
        .group
        .read_barrier(ReadMode::Linearizable)
        .await
        .expect("the broken mode passes any barrier");
    let seen: Vec<String> = c.nodes[stale]
        .contents()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        !seen.contains(&"newer".to_owned()),
        "a linearizable read after an acknowledged write must see it; this one does not"
    );
    for n in &c.nodes {
        n.stop().await;
    }
}
