//! A follower cut off while the others commit more than 10 000 entries cannot catch up from
//! the log (the leader snapshotted and purged it), so it installs a streamed snapshot and then
//! follows the log, ending with the same contents.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::join_all;

use super::harness::{BOUND, Cluster, SERIAL, eventually};

const WRITERS: usize = 32;
const PER_WRITER: usize = 330;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_cut_off_for_10k_entries_catches_up_by_snapshot() {
    let _serial = SERIAL.lock().await;
    let c = Arc::new(
        Cluster::voters(3, |cfg| {
            cfg.snapshot_every = 1000;
            cfg.log_kept_behind_snapshot = 200;
        })
        .await,
    );
    let all = c.all();
    c.put(&all, "first", "v").await;
    c.converged(&all).await;
    let leader = c.leader(&all).await;
    let lagging = (leader + 1) % 3;
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != lagging).collect();
    let resets_before = c.nodes[lagging].target.resets.load(Ordering::SeqCst);

    c.cut(lagging);
    let writers = (0..WRITERS).map(|w| {
        let (c, majority) = (c.clone(), majority.clone());
        tokio::spawn(async move {
            for i in 0..PER_WRITER {
                c.put(&majority, &format!("w{w:02}-{i:03}"), &format!("{w}/{i}"))
                    .await;
            }
        })
    });
    for done in join_all(writers).await {
        done.expect("a writer finishes");
    }
    let leader_status = c.nodes[leader].group.status();
    assert!(
        leader_status.last_log_index >= Some(10_000),
        "{leader_status:?}"
    );

    c.heal(lagging);
    let contents = c.converged(&all).await;
    assert_eq!(contents.len(), 1 + WRITERS * PER_WRITER);
    assert!(
        c.nodes[lagging].target.resets.load(Ordering::SeqCst) > resets_before,
        "the lagging follower caught up without installing a snapshot"
    );
    eventually("the follower follows the log again", BOUND, || async {
        let s = c.nodes[lagging].group.status();
        (s.applied == c.nodes[leader].group.status().applied).then_some(())
    })
    .await;
    for n in &c.nodes {
        n.stop().await;
    }
}
