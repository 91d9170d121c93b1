//! Every transition of the membership machine, on hand-made views of store `kv` (uid `uid`):
//! a new store at factor 3, 1 → 3 on a live store, 3 → 1, a lost copy replaced (copy 0 and a
//! follower), leadership back to copy 0, and what the machine refuses to do on what it cannot
//! see; and what the status reports of it (summary, Degraded and Progressing messages). Node
//! IDs are small numbers: 10 + copy for the first volume of each copy, 90 + copy for a
//! replacement.

use kvproto::raft::{GroupId, Member, MemberStatus, RaftStatus, Role, ServerState};

use super::*;
use crate::status::ShardPhase;
use crate::status_report::ReplicationReport;

const V: Role = Role::Voter;
const L: Role = Role::Learner;

fn view(new_store: bool, shards: Vec<ShardView>) -> View {
    View {
        store: "kv".into(),
        namespace: "ns".into(),
        uid: "uid".into(),
        port: 80,
        tls: false,
        new_store,
        shards,
    }
}

fn member(copy: u32, id: u64) -> Member {
    Member {
        node_id: id,
        pod: kvproto::copy_pod("kv", copy, 0),
        addr: kvproto::copy_url_tls("kv", "ns", copy, 0, 80, false),
    }
}

/// A membership entry: (copy, node ID, role, lag as the leader reports it).
fn m(copy: u32, id: u64, role: Role, lag: Option<u64>) -> MemberStatus {
    MemberStatus {
        member: member(copy, id),
        role,
        matched: lag.map(|l| 1000 - l.min(1000)),
        lag,
    }
}

fn group() -> Option<GroupId> {
    Some(GroupId {
        store_uid: "uid".into(),
        shard: 0,
    })
}

/// A copy outside any group (copy 0 has no group in its flags, the others have).
fn fresh(copy: u32, id: u64) -> Observed {
    Observed::Status(RaftStatus {
        group: if copy == 0 { None } else { group() },
        node_id: id,
        state: ServerState::Learner,
        term: 0,
        leader: None,
        last_log_index: None,
        committed: None,
        applied: None,
        members: Vec::new(),
    })
}

fn in_group(id: u64, state: ServerState, members: &[MemberStatus]) -> Observed {
    let leader = members
        .iter()
        .find(|m| state == ServerState::Leader && m.member.node_id == id)
        .map(|m| m.member.clone());
    // Only a leader reports lag; others see the membership without progress.
    let members = members
        .iter()
        .map(|x| MemberStatus {
            matched: if state == ServerState::Leader {
                x.matched
            } else {
                None
            },
            lag: if state == ServerState::Leader {
                x.lag
            } else {
                None
            },
            ..x.clone()
        })
        .collect();
    Observed::Status(RaftStatus {
        group: group(),
        node_id: id,
        state,
        term: 2,
        leader,
        last_log_index: Some(1000),
        committed: Some(1000),
        applied: Some(1000),
        members,
    })
}

fn leads(id: u64, members: &[MemberStatus]) -> Observed {
    in_group(id, ServerState::Leader, members)
}

fn follows(id: u64, members: &[MemberStatus]) -> Observed {
    in_group(id, ServerState::Follower, members)
}

fn down() -> Observed {
    Observed::Unreachable("connection refused".into())
}

fn shard(formed: bool, copies: Vec<Observed>) -> ShardView {
    ShardView {
        shard: 0,
        copies: copies
            .into_iter()
            .enumerate()
            .map(|(k, observed)| CopyView {
                copy: u32::try_from(k).unwrap(),
                observed,
                leaving: false,
            })
            .collect(),
        formed,
        copy0_keys: None,
    }
}

fn one(v: &View, factor: u32) -> (ShardPhase, Vec<Action>) {
    let step = steps(v, factor).remove(0);
    (step.phase, step.actions)
}

/// All three copies voters, copy `lead` leading, with these lags (by copy).
fn three_voters(lags: [u64; 3]) -> Vec<MemberStatus> {
    (0..3)
        .map(|k| m(k, 10 + u64::from(k), V, Some(lags[k as usize])))
        .collect()
}

#[test]
fn a_new_store_at_factor_3_forms_each_group_with_every_copy_voting() {
    let mut s = shard(false, vec![fresh(0, 10), fresh(1, 11), fresh(2, 12)]);
    s.copy0_keys = Some(0);
    let v = view(true, vec![s]);
    let voters = vec![member(0, 10), member(1, 11), member(2, 12)];
    assert_eq!(
        one(&v, 3),
        (
            ShardPhase::Initializing,
            vec![Action::Init {
                shard: 0,
                copy: 0,
                voters,
            }]
        )
    );
    assert_eq!(decide(&v, 3).len(), 1, "one call, to copy 0");
}

#[test]
fn copy_0_forms_the_group_alone_unless_every_copy_is_empty_and_answering() {
    let alone = vec![Action::Init {
        shard: 0,
        copy: 0,
        voters: vec![member(0, 10)],
    }];
    // A live store (it served a map), a new store whose copy 0 holds keys (a retained volume),
    // and one whose key count is unknown.
    let mut live = shard(false, vec![fresh(0, 10), fresh(1, 11), fresh(2, 12)]);
    live.copy0_keys = Some(0);
    let mut keys = live.clone();
    keys.copy0_keys = Some(5);
    let unknown = shard(false, vec![fresh(0, 10), fresh(1, 11), fresh(2, 12)]);
    for (new_store, s) in [(false, live), (true, keys), (true, unknown)] {
        let v = view(new_store, vec![s]);
        assert_eq!(one(&v, 3), (ShardPhase::Initializing, alone.clone()));
    }
    // A live store with a copy not answering yet: copy 0 alone too.
    let v = view(
        false,
        vec![shard(false, vec![fresh(0, 10), fresh(1, 11), down()])],
    );
    assert_eq!(one(&v, 3), (ShardPhase::Initializing, alone));
}

#[test]
fn a_new_store_waits_for_every_copy_before_forming_the_group() {
    let mut missing = shard(false, vec![fresh(0, 10), fresh(1, 11), down()]);
    missing.copy0_keys = Some(0);
    let v = view(true, vec![missing]);
    let step = steps(&v, 3).remove(0);
    assert_eq!(
        (step.phase, step.actions),
        (ShardPhase::Initializing, vec![])
    );
    assert_eq!(
        step.note.as_deref(),
        Some("a new store's group forms with every copy: waiting for kv-r2-0 to answer")
    );
    assert!(decide(&v, 3).is_empty());
}

#[test]
fn one_to_three_on_a_live_store_adds_learners_one_at_a_time_then_promotes_them_together() {
    // 1. Copy 0 alone in no group: init it.
    let v = view(
        false,
        vec![shard(false, vec![fresh(0, 10), down(), down()])],
    );
    assert!(matches!(one(&v, 3).1[..], [Action::Init { copy: 0, .. }]));

    // 2. A single voter; copy 1 answers: it joins as a learner (copy 2 not up yet).
    let solo = [m(0, 10, V, Some(0))];
    let v = view(
        false,
        vec![shard(true, vec![leads(10, &solo), fresh(1, 11), down()])],
    );
    let add1 = Action::AddLearner {
        shard: 0,
        leader: 0,
        member: member(1, 11),
    };
    assert_eq!(one(&v, 3), (ShardPhase::AddingLearner, vec![add1]));

    // 3. Copy 1 is a learner far behind; copy 2 answers: added next, before any promotion.
    let with1 = [m(0, 10, V, Some(0)), m(1, 11, L, Some(50_000))];
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &with1), fresh(1, 11), fresh(2, 12)],
        )],
    );
    let add2 = Action::AddLearner {
        shard: 0,
        leader: 0,
        member: member(2, 12),
    };
    assert_eq!(one(&v, 3), (ShardPhase::AddingLearner, vec![add2]));

    // 4. Both learners behind: nothing to do but wait (no voters change drops a learner).
    let both = [
        m(0, 10, V, Some(0)),
        m(1, 11, L, Some(50_000)),
        m(2, 12, L, Some(20)),
    ];
    let learners = |m: &[MemberStatus]| follows(11, m);
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &both), learners(&both), follows(12, &both)],
        )],
    );
    assert_eq!(one(&v, 3), (ShardPhase::CatchingUp, vec![]));

    // 5. Both caught up: one joint change to three voters.
    let caught = [
        m(0, 10, V, Some(0)),
        m(1, 11, L, Some(PROMOTE_LAG)),
        m(2, 12, L, Some(3)),
    ];
    let v = view(
        false,
        vec![shard(
            true,
            vec![
                leads(10, &caught),
                follows(11, &caught),
                follows(12, &caught),
            ],
        )],
    );
    let promote = Action::SetVoters {
        shard: 0,
        leader: 0,
        voters: vec![member(0, 10), member(1, 11), member(2, 12)],
    };
    assert_eq!(one(&v, 3), (ShardPhase::Promoting, vec![promote]));

    // 6. Three voters, copy 0 leading: stable, nothing sent again.
    let done = three_voters([0, 0, 0]);
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &done), follows(11, &done), follows(12, &done)],
        )],
    );
    assert_eq!(one(&v, 3), (ShardPhase::Stable, vec![]));
    assert!(decide(&v, 3).is_empty());
}

#[test]
fn three_to_one_removes_the_copies_from_the_group_before_their_pods_go() {
    let all = three_voters([0, 0, 0]);
    let stable = |leader: u32| {
        let copies = (0..3)
            .map(|k| {
                let id = 10 + u64::from(k);
                if k == leader {
                    leads(id, &all)
                } else {
                    follows(id, &all)
                }
            })
            .collect();
        view(false, vec![shard(true, copies)])
    };
    // Copy 0 leads: the others leave in one change; the copies stay until it is done.
    let lower = Action::SetVoters {
        shard: 0,
        leader: 0,
        voters: vec![member(0, 10)],
    };
    assert_eq!(decide(&stable(0), 1), vec![lower]);
    // Copy 2 leads: leadership moves to copy 0 first.
    let transfer = Action::TransferLeader {
        shard: 0,
        leader: 2,
        to: member(0, 10),
    };
    assert_eq!(
        one(&stable(2), 1),
        (ShardPhase::TransferringLeader, vec![transfer])
    );

    // Copy 0 far behind: it would be the only voter left, so the lowering waits.
    let behind = three_voters([5_000, 0, 0]);
    let v = view(
        false,
        vec![shard(
            true,
            vec![
                follows(10, &behind),
                leads(11, &behind),
                follows(12, &behind),
            ],
        )],
    );
    assert_eq!(one(&v, 1), (ShardPhase::Lowering, vec![]));
    assert!(decide(&v, 1).is_empty());

    // Once the group is copy 0 alone, the copies are released (they still think they vote).
    let solo = [m(0, 10, V, Some(0))];
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &solo), follows(11, &all), follows(12, &all)],
        )],
    );
    assert_eq!(one(&v, 1), (ShardPhase::Stable, vec![]));
    assert_eq!(decide(&v, 1), vec![Action::ReleaseCopies { from: 1 }]);

    // Five to three keeps copies 1 and 2 and releases 3 and 4 the same way.
    let five: Vec<MemberStatus> = (0..5)
        .map(|k| m(k, 10 + u64::from(k), V, Some(0)))
        .collect();
    let copies = (0..5u32)
        .map(|k| {
            let id = 10 + u64::from(k);
            if k == 0 {
                leads(id, &five)
            } else {
                follows(id, &five)
            }
        })
        .collect();
    let v = view(false, vec![shard(true, copies)]);
    let keep = vec![member(0, 10), member(1, 11), member(2, 12)];
    assert_eq!(
        decide(&v, 3),
        vec![Action::SetVoters {
            shard: 0,
            leader: 0,
            voters: keep
        }]
    );
}

#[test]
fn a_follower_whose_volume_was_lost_leaves_under_its_old_id_then_rejoins_under_its_new_one() {
    let all = three_voters([0, 0, 0]);
    // Copy 2 answers with node ID 92 and no membership: its old ID 12 goes first.
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &all), follows(11, &all), fresh(2, 92)],
        )],
    );
    let remove = Action::SetVoters {
        shard: 0,
        leader: 0,
        voters: vec![member(0, 10), member(1, 11)],
    };
    assert_eq!(one(&v, 3), (ShardPhase::Replacing, vec![remove]));

    // Then it joins as a learner under its new ID, and is promoted once caught up.
    let two = [m(0, 10, V, Some(0)), m(1, 11, V, Some(0))];
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &two), follows(11, &two), fresh(2, 92)],
        )],
    );
    let add = Action::AddLearner {
        shard: 0,
        leader: 0,
        member: member(2, 92),
    };
    assert_eq!(one(&v, 3), (ShardPhase::AddingLearner, vec![add]));
    let back = [
        m(0, 10, V, Some(0)),
        m(1, 11, V, Some(0)),
        m(2, 92, L, Some(0)),
    ];
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &back), follows(11, &back), follows(92, &back)],
        )],
    );
    let promote = Action::SetVoters {
        shard: 0,
        leader: 0,
        voters: vec![member(0, 10), member(1, 11), member(2, 92)],
    };
    assert_eq!(one(&v, 3), (ShardPhase::Promoting, vec![promote]));
}

/// Copy 0 after its `join`: it runs the group (reports it) and is no member yet.
fn joined(id: u64) -> Observed {
    let mut o = fresh(0, id);
    if let Observed::Status(s) = &mut o {
        s.group = group();
    }
    o
}

#[test]
fn a_lost_copy_0_joins_is_swapped_for_its_old_id_and_then_gets_leadership_back() {
    let all = three_voters([0, 0, 0]);
    // Copy 1 leads; copy 0 came back empty with node ID 90, in no group (no raft flags).
    let v = view(
        false,
        vec![shard(
            true,
            vec![fresh(0, 90), leads(11, &all), follows(12, &all)],
        )],
    );
    let join = Action::Join {
        shard: 0,
        copy: 0,
        member: member(0, 90),
    };
    let step = steps(&v, 3).remove(0);
    assert_eq!(
        (step.phase, step.actions),
        (ShardPhase::Replacing, vec![join])
    );
    assert_eq!(
        step.note.as_deref(),
        Some("kv-0 joins the group under its new node ID 90 first")
    );
    // The join goes to copy 0 itself, with the entry add-learner will name.
    let (_, copy, change) = decide(&v, 3)[0].raft_change().unwrap();
    assert_eq!(
        (copy, change),
        (
            0,
            crate::shards::RaftChange::Join {
                member: member(0, 90)
            }
        )
    );

    // Joined: its old ID leaves the voters, then it is added under its new one.
    let v = view(
        false,
        vec![shard(
            true,
            vec![joined(90), leads(11, &all), follows(12, &all)],
        )],
    );
    let remove = Action::SetVoters {
        shard: 0,
        leader: 1,
        voters: vec![member(1, 11), member(2, 12)],
    };
    assert_eq!(one(&v, 3), (ShardPhase::Replacing, vec![remove]));
    let two = [m(1, 11, V, Some(0)), m(2, 12, V, Some(0))];
    let v = view(
        false,
        vec![shard(
            true,
            vec![joined(90), leads(11, &two), follows(12, &two)],
        )],
    );
    let add = Action::AddLearner {
        shard: 0,
        leader: 1,
        member: member(0, 90),
    };
    assert_eq!(one(&v, 3), (ShardPhase::AddingLearner, vec![add]));
    let learning = [
        m(1, 11, V, Some(0)),
        m(2, 12, V, Some(0)),
        m(0, 90, L, Some(3)),
    ];
    let v = view(
        false,
        vec![shard(
            true,
            vec![
                follows(90, &learning),
                leads(11, &learning),
                follows(12, &learning),
            ],
        )],
    );
    let promote = Action::SetVoters {
        shard: 0,
        leader: 1,
        voters: vec![member(1, 11), member(2, 12), member(0, 90)],
    };
    assert_eq!(one(&v, 3), (ShardPhase::Promoting, vec![promote]));
    // Back as a caught-up voter, but not leading: leadership moves to it.
    let back = [
        m(0, 90, V, Some(2)),
        m(1, 11, V, Some(0)),
        m(2, 12, V, Some(0)),
    ];
    let v = view(
        false,
        vec![shard(
            true,
            vec![follows(90, &back), leads(11, &back), follows(12, &back)],
        )],
    );
    let transfer = Action::TransferLeader {
        shard: 0,
        leader: 1,
        to: member(0, 90),
    };
    assert_eq!(one(&v, 3), (ShardPhase::TransferringLeader, vec![transfer]));
}

#[test]
fn a_copy_0_in_no_group_is_joined_never_initialized_also_in_a_new_store() {
    let all = three_voters([0, 0, 0]);
    // A new store (no map served, status.replication not written yet) whose copy 0 is empty:
    // the others run the group, so copy 0 joins it; the new-store init does not fire.
    let mut s = shard(
        false,
        vec![fresh(0, 90), leads(11, &all), follows(12, &all)],
    );
    s.copy0_keys = Some(0);
    let v = view(true, vec![s]);
    let actions = decide(&v, 3);
    assert_eq!(
        actions,
        vec![Action::Join {
            shard: 0,
            copy: 0,
            member: member(0, 90)
        }]
    );
    // The group's membership out of sight (the others down or starting their group): copy 0
    // that took the group, or a copy that ran it (a term, a log), forms nothing.
    let mut ran = fresh(1, 11);
    if let Observed::Status(st) = &mut ran {
        st.term = 3;
        st.applied = Some(40);
    }
    for (new_store, copies) in [
        (false, vec![joined(90), down(), down()]),
        (true, vec![joined(90), fresh(1, 11), fresh(2, 12)]),
        (false, vec![fresh(0, 90), ran.clone(), down()]),
        (true, vec![fresh(0, 90), ran, fresh(2, 12)]),
    ] {
        let mut s = shard(false, copies);
        s.copy0_keys = Some(0);
        let v = view(new_store, vec![s]);
        let step = steps(&v, 3).remove(0);
        assert_eq!(
            (step.phase, &step.actions),
            (ShardPhase::Waiting, &vec![]),
            "{step:?}"
        );
        assert!(
            step.note.as_deref().unwrap().ends_with(
                "ran or took the group and no copy reports its membership: nothing is formed again"
            ),
            "{step:?}"
        );
    }
}

#[test]
fn leadership_goes_back_to_copy_0_only_once_it_is_in_sync() {
    let lagging = three_voters([PROMOTE_LAG + 1, 0, 0]);
    let v = view(
        false,
        vec![shard(
            true,
            vec![
                follows(10, &lagging),
                follows(11, &lagging),
                leads(12, &lagging),
            ],
        )],
    );
    assert_eq!(one(&v, 3), (ShardPhase::Stable, vec![]));
    let synced = three_voters([0, 0, 0]);
    let v = view(
        false,
        vec![shard(
            true,
            vec![
                follows(10, &synced),
                follows(11, &synced),
                leads(12, &synced),
            ],
        )],
    );
    assert_eq!(
        decide(&v, 3),
        vec![Action::TransferLeader {
            shard: 0,
            leader: 2,
            to: member(0, 10)
        }]
    );
}

#[test]
fn leadership_never_goes_to_a_copy_whose_pod_is_being_deleted() {
    // Copy 0 drained: it handed leadership to copy 1 and still answers, in sync, while its
    // pod terminates. Moving leadership back would leave the group leaderless when it stops.
    let synced = three_voters([0, 0, 0]);
    let mut v = view(
        false,
        vec![shard(
            true,
            vec![
                follows(10, &synced),
                leads(11, &synced),
                follows(12, &synced),
            ],
        )],
    );
    v.shards[0].copies[0].leaving = true;
    assert_eq!(one(&v, 3), (ShardPhase::Stable, vec![]));
    // Its replacement (the same pod name, not terminating) gets it back once in sync.
    v.shards[0].copies[0].leaving = false;
    assert_eq!(
        decide(&v, 3),
        vec![Action::TransferLeader {
            shard: 0,
            leader: 1,
            to: member(0, 10)
        }]
    );
    // Lowering 3 -> 1 while copy 2 leads and copy 0 is going: leadership moves to copy 1.
    let mut v = view(
        false,
        vec![shard(
            true,
            vec![
                follows(10, &synced),
                follows(11, &synced),
                leads(12, &synced),
            ],
        )],
    );
    v.shards[0].copies[0].leaving = true;
    let (_, actions) = one(&v, 2);
    assert_eq!(
        actions,
        vec![Action::TransferLeader {
            shard: 0,
            leader: 2,
            to: member(1, 11)
        }]
    );
}

#[test]
fn what_the_operator_cannot_see_is_never_removed_nor_formed_again() {
    let all = three_voters([0, 0, 0]);
    // A group seen formed before, whose copies 1 and 2 do not answer, and copy 0 answering
    // with no membership (a new volume): no second group is formed.
    let v = view(false, vec![shard(true, vec![fresh(0, 90), down(), down()])]);
    let (phase, actions) = one(&v, 3);
    assert_eq!((phase, actions), (ShardPhase::Waiting, vec![]));
    // No leader (an election, or no quorum): nothing is sent.
    let v = view(
        false,
        vec![shard(
            true,
            vec![follows(10, &all), follows(11, &all), down()],
        )],
    );
    assert_eq!(one(&v, 3), (ShardPhase::Electing, vec![]));
    // A voter that does not answer stays a voter.
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &all), follows(11, &all), down()],
        )],
    );
    assert_eq!(one(&v, 3), (ShardPhase::Stable, vec![]));
    // Lowering with copy 0 not answering: copy 0 would be the only voter left; nothing moves,
    // and no copy is released.
    let v = view(
        false,
        vec![shard(
            true,
            vec![down(), leads(11, &all), follows(12, &all)],
        )],
    );
    assert!(decide(&v, 1).is_empty());
    // A formed group without a leader keeps its copies.
    let v = view(
        false,
        vec![shard(
            true,
            vec![follows(10, &all), follows(11, &all), follows(12, &all)],
        )],
    );
    assert!(decide(&v, 1).is_empty());
}

#[test]
fn a_copy_of_another_group_or_with_an_id_that_left_is_never_added() {
    let two = [m(0, 10, V, Some(0)), m(1, 11, V, Some(0))];
    // Copy 2 answers for another store's group.
    let mut other = fresh(2, 92);
    if let Observed::Status(s) = &mut other {
        s.group = Some(GroupId {
            store_uid: "other".into(),
            shard: 0,
        });
    }
    let v = view(
        false,
        vec![shard(true, vec![leads(10, &two), follows(11, &two), other])],
    );
    let step = steps(&v, 3).remove(0);
    assert!(step.actions.is_empty(), "{step:?}");
    assert!(step.note.unwrap().contains("another group"));
    // Copy 2 remembers a membership that no longer counts it (its ID 12 was removed).
    let old = three_voters([0, 0, 0]);
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &two), follows(11, &two), follows(12, &old)],
        )],
    );
    let step = steps(&v, 3).remove(0);
    assert_eq!((step.phase, step.actions), (ShardPhase::Waiting, vec![]));
    assert!(step.note.unwrap().contains("delete its claim"));
}

#[test]
fn factor_1_without_a_group_sends_nothing_and_releases_copies_that_never_joined() {
    let v = view(false, vec![shard(false, vec![fresh(0, 10), fresh(1, 11)])]);
    assert_eq!(decide(&v, 1), vec![Action::ReleaseCopies { from: 1 }]);
    let v = view(false, vec![shard(false, vec![fresh(0, 10)])]);
    assert!(decide(&v, 1).is_empty());
}

#[test]
fn every_decision_is_the_same_when_made_again_from_the_same_view() {
    // What a restarted operator does: decide again from what the groups report.
    let both = [
        m(0, 10, V, Some(0)),
        m(1, 11, L, Some(0)),
        m(2, 12, L, Some(0)),
    ];
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &both), follows(11, &both), follows(12, &both)],
        )],
    );
    assert_eq!(decide(&v, 3), decide(&v, 3));
    assert_eq!(decide(&v, 3).len(), 1);
}

#[test]
fn health_counts_voters_in_sync_against_the_quorum() {
    let mixed = [
        m(0, 10, V, Some(0)),
        m(1, 11, V, Some(IN_SYNC_LAG + 1)),
        m(2, 12, V, Some(IN_SYNC_LAG)),
        m(3, 13, L, Some(40_000)),
    ];
    let s = shard(
        true,
        vec![leads(10, &mixed), down(), follows(12, &mixed), down()],
    );
    let h = health(&s);
    assert_eq!((h.in_sync, h.quorum, h.max_lag), (2, 2, Some(40_000)));
    assert!(!h.below_quorum());
    let bad = three_voters([0, 2_000, 3_000]);
    let s = shard(true, vec![leads(10, &bad), down(), down()]);
    assert!(health(&s).below_quorum());
    // Without a leader: below quorum only when too few voters answer to elect one.
    let all = three_voters([0, 0, 0]);
    let electing = shard(true, vec![follows(10, &all), follows(11, &all), down()]);
    let h = health(&electing);
    assert_eq!((h.leader, h.in_sync, h.answering_voters), (None, 0, 2));
    assert!(!h.below_quorum());
    let lost = shard(true, vec![follows(10, &all), down(), down()]);
    assert!(health(&lost).below_quorum());
    // No group: never below quorum (factor 1's path, or a group being formed).
    assert!(!health(&shard(false, vec![fresh(0, 10)])).below_quorum());
}

#[test]
fn members_are_matched_to_copies_by_pod_name() {
    assert_eq!(view::copy_of_pod("kv", 3, "kv-3"), Some(0));
    assert_eq!(view::copy_of_pod("kv", 3, "kv-r2-3"), Some(2));
    for other in [
        "kv-r2-4", "kv-2", "kv-r0-3", "kvx-3", "kv-r-3", "other-3", "kv-03",
    ] {
        assert_eq!(view::copy_of_pod("kv", 3, other), None, "{other}");
    }
}

/// The report of `v` at `factor`, with the steps the machine decides and no release waiting.
fn report_of(v: &View, factor: u32, formed: &[bool], copies_exist: bool) -> ReplicationReport {
    report(
        v,
        factor,
        &steps(v, factor),
        formed,
        None,
        copies_exist,
        None,
    )
}

/// Shard `n`'s formed view of three copies, each an `Observed` of `members` renamed to shard
/// `n`'s pods: `copies[k]` is (leads, follows or down) for copy k.
fn shard_n(n: u32, members: &[MemberStatus], copies: [char; 3]) -> ShardView {
    let renamed: Vec<MemberStatus> = members
        .iter()
        .map(|x| {
            let copy = view::copy_of_pod("kv", 0, &x.member.pod).unwrap();
            MemberStatus {
                member: Member {
                    pod: kvproto::copy_pod("kv", copy, n),
                    addr: kvproto::copy_url_tls("kv", "ns", copy, n, 80, false),
                    ..x.member.clone()
                },
                ..x.clone()
            }
        })
        .collect();
    let observed = copies
        .iter()
        .zip(10u64..)
        .map(|(c, id)| match c {
            'L' => leads(id, &renamed),
            'F' => follows(id, &renamed),
            _ => down(),
        })
        .collect();
    ShardView {
        shard: n,
        ..shard(true, observed)
    }
}

#[test]
fn the_summary_is_the_least_replicated_shard_over_the_factor() {
    let all = three_voters([0, 0, 0]);
    let one_behind = three_voters([0, 0, 5_000]);
    let v = view(
        false,
        vec![
            shard_n(0, &all, ['L', 'F', 'F']),
            shard_n(1, &one_behind, ['L', 'F', 'F']),
        ],
    );
    let r = report_of(&v, 3, &[true, true], true).status.unwrap();
    assert_eq!((r.factor, r.summary.as_str()), (3, "2/3"));
    assert_eq!(
        r.shards.iter().map(|s| s.in_sync).collect::<Vec<_>>(),
        [3, 2]
    );
    // Two of three in sync is still a quorum: not degraded.
    assert_eq!(report_of(&v, 3, &[true, true], true).below_quorum, None);
    // Factor 1 with no copy left: "-"; with copies still being removed, counted over 1.
    let solo = [m(0, 10, V, Some(0))];
    let v = view(false, vec![shard(true, vec![leads(10, &solo)])]);
    assert_eq!(
        report_of(&v, 1, &[true], false).status.unwrap().summary,
        "-"
    );
    assert_eq!(
        report_of(&v, 1, &[true], true).status.unwrap().summary,
        "1/1"
    );
    // No shard at all (a stopped store): "-".
    let v = view(false, vec![]);
    assert_eq!(report_of(&v, 3, &[], true).status.unwrap().summary, "-");
}

#[test]
fn each_shard_below_quorum_is_named_in_the_degraded_message() {
    let bad = three_voters([0, 2_000, 3_000]);
    let all = three_voters([0, 0, 0]);
    let v = view(
        false,
        vec![
            shard_n(0, &bad, ['L', 'F', 'F']),
            shard_n(1, &all, ['L', 'F', 'F']),
            // No leader and one voter answering: too few to elect one.
            shard_n(2, &all, ['F', '-', '-']),
        ],
    );
    let r = report_of(&v, 3, &[true; 3], true);
    assert_eq!(
        r.below_quorum.as_deref(),
        Some(
            "shard kv-0: 1 of 3 voters in sync, quorum 2; \
             shard kv-2: 0 of 3 voters in sync, quorum 2"
        )
    );
    // The converging message names the shard not stable and why.
    assert_eq!(
        r.converging.as_deref(),
        Some("shard kv-2: Electing (no copy leads the group yet)")
    );
    let s = &r.status.unwrap().shards;
    assert_eq!(
        (s[0].leader.as_deref(), s[0].max_lag, s[2].leader.as_deref()),
        (Some("kv-0"), Some(3_000), None)
    );
}

#[test]
fn a_group_formed_now_or_seen_before_keeps_its_voters_in_the_status() {
    // Init answered this reconcile: its voters are recorded at once (never formed again).
    let mut s = shard(false, vec![fresh(0, 10), fresh(1, 11), fresh(2, 12)]);
    s.copy0_keys = Some(0);
    let v = view(true, vec![s]);
    let r = report_of(&v, 3, &[true], true).status.unwrap();
    assert_eq!(r.shards[0].voters, ["kv-0", "kv-r1-0", "kv-r2-0"]);
    assert_eq!(r.shards[0].phase, ShardPhase::Initializing);
    // A formed group no copy answers for: the voters last written stay.
    let v = view(false, vec![shard(true, vec![down(), down(), down()])]);
    let persisted = report_of(
        &view(
            false,
            vec![shard(
                true,
                vec![leads(10, &three_voters([0, 0, 0])), down(), down()],
            )],
        ),
        3,
        &[true],
        true,
    )
    .status
    .unwrap();
    let r = report(&v, 3, &steps(&v, 3), &[true], None, true, Some(&persisted));
    let s = &r.status.unwrap().shards[0];
    assert_eq!(s.voters, ["kv-0", "kv-r1-0", "kv-r2-0"]);
    assert_eq!((s.leader.as_deref(), s.in_sync), (None, 0));
    // A release waiting is part of the converging message.
    let all = three_voters([0, 0, 0]);
    let v = view(
        false,
        vec![shard(
            true,
            vec![leads(10, &all), follows(11, &all), follows(12, &all)],
        )],
    );
    let r = report(
        &v,
        3,
        &steps(&v, 3),
        &[true],
        Some("removing copies"),
        true,
        None,
    );
    assert_eq!(r.converging.as_deref(), Some("removing copies"));
}

#[test]
fn a_refused_join_names_the_claim_to_delete() {
    let v = view(false, vec![]);
    assert_eq!(
        super::report::join_refused(&v, 2, 0, "409: 3 keys"),
        "copy kv-2 refused to join its group (409: 3 keys): delete its claim data-kv-2 to \
         rebuild it empty"
    );
}

#[test]
fn a_copy_outside_its_formed_group_is_told_apart_from_a_member_and_from_no_group() {
    let all = three_voters([0, 0, 0]);
    let replaced = shard(true, vec![fresh(0, 90), leads(11, &all), follows(12, &all)]);
    assert!(health::outside_group(&replaced, 0));
    assert!(!health::outside_group(&replaced, 1));
    let member = shard(
        true,
        vec![follows(10, &all), leads(11, &all), follows(12, &all)],
    );
    assert!(!health::outside_group(&member, 0));
    // No group yet (a live store before init): copy 0 serves as it did.
    let live = shard(false, vec![fresh(0, 10), fresh(1, 11), fresh(2, 12)]);
    assert!(!health::outside_group(&live, 0));
    // Not answering: nothing is known of it.
    let silent = shard(true, vec![down(), leads(11, &all), follows(12, &all)]);
    assert!(!health::outside_group(&silent, 0));
}
