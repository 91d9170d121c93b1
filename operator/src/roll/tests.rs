//! The roll planner on hand-made views of store `kv`: roll orders (followers first, the most
//! lagged first, the leader last after a transfer, shards in parallel), canRoll refusals, what
//! blocks a roll, and the resume from each persisted step. Copy k of shard i has node ID
//! 10 * i + k + 1; revisions are "old" and "new" (copy 0's StatefulSet "c0-new", ...).

use std::collections::BTreeMap;

use kvproto::raft::Member;

use super::*;
use crate::replication::{Action, ShardStep};
use crate::status::{RollPhase, RollPod, RollStatus, RollStep, ShardPhase};

fn member(shard: u32, copy: u32) -> Member {
    Member {
        node_id: u64::from(10 * shard + copy + 1),
        pod: kvproto::copy_pod("kv", copy, shard),
        addr: kvproto::copy_url_tls("kv", "ns", copy, shard, 80, false),
    }
}

/// Shard `shard` of three voters, `leader` leading, with these lags (None: not in sync).
fn group(shard: u32, leader: u32, lags: [Option<u64>; 3]) -> ShardState {
    ShardState {
        shard,
        stable: true,
        leader: Some(leader),
        members: (0..3)
            .map(|k| MemberState {
                copy: k,
                member: member(shard, k),
                voter: true,
                in_sync: lags[k as usize].is_some_and(|l| l <= 1_000),
                lag: lags[k as usize],
                answering: true,
            })
            .collect(),
        quorum: 2,
    }
}

fn synced(shard: u32, leader: u32) -> ShardState {
    group(shard, leader, [Some(0); 3])
}

/// Pod copy k of `shard`, at revision "new" when `new`, Ready.
fn pod(shard: u32, copy: u32, new: bool) -> PodState {
    PodState {
        pod: kvproto::copy_pod("kv", copy, shard),
        shard,
        copy,
        revision: Some(format!("c{copy}-{}", if new { "new" } else { "old" })),
        ready: true,
        terminating: false,
        uid: Some(format!("uid-{shard}-{copy}")),
    }
}

/// `shards` of three copies, the pods of each at the revisions `new[shard][copy]`.
fn view(shards: Vec<ShardState>, new: &[[bool; 3]]) -> RollView {
    let pods = new
        .iter()
        .enumerate()
        .flat_map(|(i, copies)| {
            let shard = u32::try_from(i).unwrap();
            (0..3).map(move |k| pod(shard, k, copies[k as usize]))
        })
        .collect();
    RollView {
        revisions: (0..3)
            .map(|k| (k, format!("c{k}-new")))
            .collect::<BTreeMap<_, _>>(),
        pods,
        shards,
        rebalancing: false,
    }
}

fn delete(shard: u32, copy: u32) -> RollAction {
    RollAction::DeletePod {
        pod: kvproto::copy_pod("kv", copy, shard),
        uid: Some(format!("uid-{shard}-{copy}")),
    }
}

fn entry(shard: u32, copy: u32, step: RollStep) -> RollPod {
    RollPod {
        pod: kvproto::copy_pod("kv", copy, shard),
        shard: i32::try_from(shard).unwrap(),
        step,
    }
}

fn rolling(pods: Vec<RollPod>) -> RollStatus {
    RollStatus {
        revision: "c0-new,c1-new,c2-new".into(),
        pods,
        phase: RollPhase::Rolling,
        message: None,
    }
}

const OLD: [bool; 3] = [false; 3];
const NEW: [bool; 3] = [true; 3];

#[test]
fn nothing_outdated_means_no_roll() {
    let v = view(vec![synced(0, 0)], &[NEW]);
    assert_eq!(
        plan(&v, None),
        RollPlan {
            status: None,
            actions: vec![]
        }
    );
}

#[test]
fn followers_go_first_the_most_lagged_first_one_per_shard_and_shards_in_parallel() {
    // Shard 0: copy 2 lags more than copy 1. Shard 1: copy 1 is out of sync (lagging most).
    let v = view(
        vec![
            group(0, 0, [Some(0), Some(5), Some(40)]),
            group(1, 0, [Some(0), None, Some(3)]),
        ],
        &[OLD, OLD],
    );
    let p = plan(&v, None);
    assert_eq!(p.actions, [delete(0, 2), delete(1, 1)]);
    assert_eq!(
        p.status,
        Some(rolling(vec![
            entry(0, 2, RollStep::Deleting),
            entry(1, 1, RollStep::Deleting)
        ]))
    );
}

#[test]
fn the_leader_goes_last_after_leadership_moved_to_an_updated_in_sync_follower() {
    // Copy 0 leads and is the only outdated pod; copy 2 is less behind than copy 1.
    let v = view(
        vec![group(0, 0, [Some(0), Some(30), Some(4)])],
        &[[false, true, true]],
    );
    let p = plan(&v, None);
    assert_eq!(
        p.actions,
        [RollAction::TransferLeader {
            shard: 0,
            leader: 0,
            to: member(0, 2)
        }]
    );
    assert_eq!(
        p.status,
        Some(rolling(vec![entry(0, 0, RollStep::TransferringLeader)]))
    );
    // Only outdated followers may lead next: none is updated, so the leader waits.
    let v = view(vec![synced(0, 0)], &[OLD]);
    let p = plan(&v, None);
    assert_eq!(
        p.actions,
        [delete(0, 1)],
        "a follower first, not the leader"
    );
}

#[test]
fn can_roll_refuses_a_pod_whose_shard_would_fall_below_quorum_without_it() {
    // Copy 2 is already out of sync: deleting copy 1 would leave one in-sync voter of three.
    let v = view(
        vec![group(0, 0, [Some(0), Some(0), Some(5_000)])],
        &[[true, false, true]],
    );
    let p = plan(&v, None);
    assert!(p.actions.is_empty(), "{p:?}");
    let status = p.status.unwrap();
    assert!(status.pods.is_empty());
    assert_eq!(
        status.message.as_deref(),
        Some("kv-r1-0 may not go: 1 in-sync voters without it, quorum 2")
    );
    // The out-of-sync copy itself may go (the shard keeps its two in-sync voters).
    let v = view(vec![group(0, 0, [Some(0), Some(0), Some(5_000)])], &[OLD]);
    assert_eq!(plan(&v, None).actions, [delete(0, 2)]);
    // The leader with no in-sync updated follower: no transfer, a note.
    let v = view(
        vec![group(0, 0, [Some(0), None, None])],
        &[[false, true, true]],
    );
    let p = plan(&v, None);
    assert!(p.actions.is_empty());
    assert_eq!(
        p.status.unwrap().message.as_deref(),
        Some("kv-0 leads and no in-sync follower runs the new template yet")
    );
}

#[test]
fn nothing_rolls_while_a_membership_changes_or_a_rebalance_is_pending() {
    let mut v = view(vec![synced(0, 0), synced(1, 1)], &[OLD, OLD]);
    v.shards[1].stable = false;
    let in_flight = rolling(vec![entry(0, 2, RollStep::Replacing)]);
    let p = plan(&v, Some(&in_flight));
    assert!(p.actions.is_empty());
    let status = p.status.unwrap();
    assert_eq!(status.phase, RollPhase::Waiting);
    assert_eq!(status.pods, in_flight.pods, "what is in flight is kept");
    assert_eq!(
        status.message.as_deref(),
        Some("the membership of shard 1 is changing")
    );
    let mut v = view(vec![synced(0, 0)], &[OLD]);
    v.rebalancing = true;
    let p = plan(&v, None);
    assert_eq!(
        (p.actions.len(), p.status.unwrap().phase),
        (0, RollPhase::Waiting)
    );
}

#[test]
fn a_shard_s_next_pod_waits_for_the_new_pod_ready_and_in_sync() {
    // Copy 2 was deleted and recreated: new revision, not Ready yet.
    let mut v = view(vec![synced(0, 0)], &[[false, false, true]]);
    v.pods[2].ready = false;
    let persisted = rolling(vec![entry(0, 2, RollStep::Replacing)]);
    let p = plan(&v, Some(&persisted));
    assert!(p.actions.is_empty());
    let status = p.status.unwrap();
    assert_eq!(status.pods, persisted.pods);
    assert_eq!(status.message.as_deref(), Some("kv-r2-0 is not Ready yet"));
    // Ready but still catching up.
    v.pods[2].ready = true;
    v.shards[0].members[2].in_sync = false;
    let p = plan(&v, Some(&persisted));
    assert!(p.actions.is_empty());
    assert_eq!(
        p.status.unwrap().message.as_deref(),
        Some("kv-r2-0 is not in sync yet")
    );
    // Ready and in sync: done, and the shard's next follower goes in the same plan.
    v.shards[0].members[2].in_sync = true;
    let p = plan(&v, Some(&persisted));
    assert_eq!(p.actions, [delete(0, 1)]);
    assert_eq!(p.status.unwrap().pods, [entry(0, 1, RollStep::Deleting)]);
}

#[test]
fn a_restarted_operator_resumes_from_each_persisted_step() {
    // Deleting, the pod still old and running: deleted again (idempotent).
    let v = view(vec![synced(0, 0)], &[OLD]);
    let p = plan(&v, Some(&rolling(vec![entry(0, 2, RollStep::Deleting)])));
    assert_eq!(p.actions, [delete(0, 2)]);
    assert_eq!(p.status.unwrap().pods, [entry(0, 2, RollStep::Deleting)]);
    // Deleting, the pod terminating: Replacing, nothing sent, nothing else chosen.
    let mut v = view(vec![synced(0, 0)], &[OLD]);
    v.pods[2].terminating = true;
    let p = plan(&v, Some(&rolling(vec![entry(0, 2, RollStep::Deleting)])));
    assert!(p.actions.is_empty());
    assert_eq!(p.status.unwrap().pods, [entry(0, 2, RollStep::Replacing)]);
    // Deleting, the pod already recreated and in sync: done; the next follower goes.
    let v = view(vec![synced(0, 0)], &[[false, false, true]]);
    let p = plan(&v, Some(&rolling(vec![entry(0, 2, RollStep::Deleting)])));
    assert_eq!(p.actions, [delete(0, 1)]);
    // TransferringLeader, the pod still leading: the transfer is sent again.
    let v = view(vec![synced(0, 0)], &[[false, true, true]]);
    let leader = rolling(vec![entry(0, 0, RollStep::TransferringLeader)]);
    let p = plan(&v, Some(&leader));
    assert_eq!(
        p.actions,
        [RollAction::TransferLeader {
            shard: 0,
            leader: 0,
            to: member(0, 1)
        }]
    );
    // TransferringLeader, leadership moved: the old leader is deleted as a follower.
    let v = view(vec![synced(0, 1)], &[[false, true, true]]);
    let p = plan(&v, Some(&leader));
    assert_eq!(p.actions, [delete(0, 0)]);
    assert_eq!(p.status.unwrap().pods, [entry(0, 0, RollStep::Deleting)]);
    // Replacing, the last pod back Ready and in sync: the roll is over.
    let v = view(vec![synced(0, 1)], &[NEW]);
    let p = plan(&v, Some(&rolling(vec![entry(0, 0, RollStep::Replacing)])));
    assert_eq!(
        p,
        RollPlan {
            status: None,
            actions: vec![]
        }
    );
    // Every decision is the same when made again from the same state.
    let v = view(vec![synced(0, 0)], &[OLD]);
    let persisted = rolling(vec![entry(0, 2, RollStep::Deleting)]);
    assert_eq!(plan(&v, Some(&persisted)), plan(&v, Some(&persisted)));
}

#[test]
fn a_pod_the_roll_holds_keeps_its_leadership_where_the_roll_put_it() {
    let persisted = rolling(vec![entry(0, 0, RollStep::Replacing)]);
    assert!(holds(Some(&persisted), "kv-0"));
    assert!(!holds(Some(&persisted), "kv-r1-0"));
    assert!(!holds(None, "kv-0"));
    // The membership step would move leadership back to copy 0 (the preferred leader).
    let back = |shard: u32| ShardStep {
        shard,
        phase: ShardPhase::TransferringLeader,
        note: None,
        actions: vec![Action::TransferLeader {
            shard,
            leader: 1,
            to: member(shard, 0),
        }],
    };
    let mut steps = vec![back(0), back(1)];
    hold_leadership(&mut steps, Some(&persisted));
    assert_eq!(
        (steps[0].phase, steps[0].actions.len()),
        (ShardPhase::Stable, 0)
    );
    assert_eq!(steps[1], back(1), "shard 1's copy 0 is not held");
}

#[test]
fn a_roll_that_only_waited_has_not_started_and_a_queued_one_says_why() {
    let planned = rolling(vec![entry(0, 2, RollStep::Deleting)]);
    let q = queued(&planned, 2);
    assert_eq!(
        q,
        RollStatus {
            revision: "c0-new,c1-new,c2-new".into(),
            pods: vec![],
            phase: RollPhase::Waiting,
            message: Some(
                "waiting for a roll slot: 2 stores roll at once (--max-concurrent-rolls)".into()
            ),
        }
    );
    assert_eq!(
        queued(&planned, 1).message.as_deref(),
        Some("waiting for a roll slot: 1 store rolls at once (--max-concurrent-rolls)")
    );
    // Queued: it takes a slot like any store; rolling, or holding a pod: it resumes.
    assert!(!started(None));
    assert!(!started(Some(&q)));
    assert!(started(Some(&planned)));
    assert!(started(Some(&rolling(vec![]))));
    let held = RollStatus {
        phase: RollPhase::Waiting,
        ..planned
    };
    assert!(started(Some(&held)));
}

#[test]
fn can_roll_counts_only_voters_that_answer_with_their_pod_up() {
    // Copy 1 already runs the new template; copy 2 is the one outdated follower. The leader
    // still reports copy 1 in sync (nothing written since), but copy 1 is down: deleting copy
    // 2 would leave the leader alone.
    let refused = Some("kv-r2-0 may not go: 1 in-sync voters without it, quorum 2");
    let down = [
        // Its pod not Ready (crashed, restarting).
        |v: &mut RollView| v.pods[1].ready = false,
        // Its pod being deleted (an eviction).
        |v: &mut RollView| v.pods[1].terminating = true,
        // It did not answer its status call.
        |v: &mut RollView| v.shards[0].members[1].answering = false,
    ];
    for (i, make_down) in down.iter().enumerate() {
        let mut v = view(vec![synced(0, 0)], &[[true, true, false]]);
        make_down(&mut v);
        let p = plan(&v, None);
        assert!(p.actions.is_empty(), "case {i}: {p:?}");
        assert_eq!(p.status.unwrap().message.as_deref(), refused, "case {i}");
    }
    // All up: it goes.
    let v = view(vec![synced(0, 0)], &[[true, true, false]]);
    assert_eq!(plan(&v, None).actions, [delete(0, 2)]);
    // The down copy itself may go when the others keep the quorum (it counts for nothing).
    let mut v = view(vec![synced(0, 0)], &[OLD]);
    v.pods[1].ready = false;
    assert_eq!(plan(&v, None).actions, [delete(0, 1)]);
}

#[test]
fn a_resumed_delete_is_judged_again_a_leader_hands_over_first_and_a_lost_quorum_waits() {
    let persisted = rolling(vec![entry(0, 2, RollStep::Deleting)]);
    // Copy 2 was elected since the step was written: leadership moves first, never a delete.
    let v = view(vec![synced(0, 2)], &[[true, false, false]]);
    let p = plan(&v, Some(&persisted));
    assert_eq!(
        p.actions,
        [RollAction::TransferLeader {
            shard: 0,
            leader: 2,
            to: member(0, 0)
        }]
    );
    assert_eq!(
        p.status.unwrap().pods,
        [entry(0, 2, RollStep::TransferringLeader)]
    );
    // Copy 1 went down since: copy 2 waits, still in flight.
    let mut v = view(vec![synced(0, 0)], &[OLD]);
    v.pods[1].ready = false;
    let p = plan(&v, Some(&persisted));
    assert!(p.actions.is_empty(), "{p:?}");
    let status = p.status.unwrap();
    assert_eq!(status.pods, [entry(0, 2, RollStep::Deleting)]);
    assert_eq!(
        status.message.as_deref(),
        Some("kv-r2-0 may not go: 1 in-sync voters without it, quorum 2")
    );
}

#[test]
fn a_pod_whose_revision_is_not_known_is_never_taken_for_updated() {
    // The leader is outdated; the followers' pods carry no revision label (or their
    // StatefulSet reports no update revision): none may take leadership.
    let mut v = view(vec![synced(0, 0)], &[[false, true, true]]);
    v.pods[1].revision = None;
    v.revisions.remove(&2);
    let p = plan(&v, None);
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(
        p.status.unwrap().message.as_deref(),
        Some("kv-0 leads and no in-sync follower runs the new template yet")
    );
    // A recreated pod with no revision is not the new pod yet: the shard's next pod waits.
    let mut v = view(vec![synced(0, 0)], &[[false, false, true]]);
    v.pods[2].revision = None;
    let persisted = rolling(vec![entry(0, 2, RollStep::Replacing)]);
    let p = plan(&v, Some(&persisted));
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(
        p.status.unwrap().message.as_deref(),
        Some("kv-r2-0 is being recreated")
    );
}

#[test]
fn a_new_pod_outdated_again_by_a_later_template_is_deleted_again_not_waited_for_forever() {
    // Copy 2 was recreated from the template of the time; the template changed again since.
    let mut v = view(vec![synced(0, 0)], &[OLD]);
    v.pods[2].revision = Some("c2-between".into());
    let persisted = rolling(vec![entry(0, 2, RollStep::Replacing)]);
    let p = plan(&v, Some(&persisted));
    assert_eq!(p.actions, [delete(0, 2)]);
    assert_eq!(p.status.unwrap().pods, [entry(0, 2, RollStep::Deleting)]);
    // Not Ready yet at that revision: deleted again only while the others keep the quorum.
    v.pods[2].ready = false;
    v.pods[1].ready = false;
    let p = plan(&v, Some(&persisted));
    assert!(p.actions.is_empty(), "{p:?}");
}
