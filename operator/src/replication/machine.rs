//! The membership state machine (docs/replication.md section 7), pure: from a [`View`] and the
//! wanted factor, the admin calls that bring each shard's group one step closer, and the step
//! each shard is at. Every decision is made again from what the group reports at the next
//! reconcile, so a lost answer or an operator restart only repeats an idempotent call.
//!
//! Per shard, the first of these that applies (one membership change at a time):
//! 1. no group anywhere: `init` copy 0 alone (its records predate the log and become the
//!    group's first snapshot), or, for a new store whose copy 0 is empty, every copy at once as
//!    voters once all of them answer (it waits until then); never at factor 1, never for a
//!    shard seen formed before, never while a copy shows it ran or took the group (a log or
//!    a term, or copy 0 reporting the group: it joined) without its membership in sight;
//! 2. no leader: wait (an election);
//! 3. a copy answered in no group and with no membership while another copy runs the group
//!    (copy 0 on a replaced volume: no raft flags name its group): `join` on it, with its
//!    entry as add-learner will name it (docs/replication.md, "Phase 6 kvserver follow-ups");
//!    a copy answered with a new node ID while the group still lists its pod under the old
//!    one (its volume was replaced): the old ID leaves first (`voters` without it);
//! 4. the leader is a copy beyond the factor: leadership moves to an in-sync copy that stays
//!    (never to one whose pod is being deleted);
//! 5. copies beyond the factor are members: `voters` without them, once every remaining
//!    voter answers and is in sync;
//! 6. a wanted copy answers outside the group: `add-learner`;
//! 7. every wanted learner caught up: `voters` with them (one joint change);
//! 8. copy 0 is an in-sync voter but does not lead: leadership back to it (the preferred
//!    leader: book clients reach copy 0 first), unless its pod is being deleted.
//!
//! Then, store-wide: once no group counts a copy beyond the factor, those copies' StatefulSets
//! may go ([`Action::ReleaseCopies`]).
//!
//! `voters` leaves exactly the members named (the kvserver's contract: learners not named are
//! removed too), so it is only sent when no wanted learner is still catching up.

use std::collections::BTreeSet;

use kvproto::raft::{Member, MemberStatus, Role};

use super::health::{IN_SYNC_LAG, PROMOTE_LAG, health, within};
use super::view::{ShardView, View};
use crate::shards::RaftChange;
use crate::status::ShardPhase;

/// One call the controller makes for a shard (or, for [`Action::ReleaseCopies`], to the
/// Kubernetes API). `copy`/`leader` name the copy of the shard the call goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `POST /v1/admin/raft/init` to copy `copy`.
    Init {
        shard: u32,
        copy: u32,
        voters: Vec<Member>,
    },
    /// `POST /v1/admin/raft/join` to copy `copy` (in no group): it takes the group as
    /// `member` and waits for the leader's add-learner.
    Join {
        shard: u32,
        copy: u32,
        member: Member,
    },
    /// `POST /v1/admin/raft/add-learner` to the leader.
    AddLearner {
        shard: u32,
        leader: u32,
        member: Member,
    },
    /// `POST /v1/admin/raft/voters` to the leader.
    SetVoters {
        shard: u32,
        leader: u32,
        voters: Vec<Member>,
    },
    /// `POST /v1/admin/raft/transfer-leader` to the leader.
    TransferLeader { shard: u32, leader: u32, to: Member },
    /// No group counts copies `from..` any more: scale their StatefulSets down and remove them
    /// with their claims.
    ReleaseCopies { from: u32 },
}

impl Action {
    /// The shard the call is for (None for the store-wide release).
    pub fn shard(&self) -> Option<u32> {
        self.raft_change().map(|(shard, _, _)| shard)
    }

    /// A call to a group as (shard, the copy it goes to, the change); None for the release.
    pub fn raft_change(&self) -> Option<(u32, u32, RaftChange)> {
        let (shard, copy, change) = match self {
            Action::Init {
                shard,
                copy,
                voters,
            } => (
                shard,
                copy,
                RaftChange::Init {
                    voters: voters.clone(),
                },
            ),
            Action::Join {
                shard,
                copy,
                member,
            } => (
                shard,
                copy,
                RaftChange::Join {
                    member: member.clone(),
                },
            ),
            Action::AddLearner {
                shard,
                leader,
                member,
            } => (
                shard,
                leader,
                RaftChange::AddLearner {
                    member: member.clone(),
                },
            ),
            Action::SetVoters {
                shard,
                leader,
                voters,
            } => (
                shard,
                leader,
                RaftChange::SetVoters {
                    voters: voters.clone(),
                },
            ),
            Action::TransferLeader { shard, leader, to } => (
                shard,
                leader,
                RaftChange::TransferLeader {
                    to: Some(to.clone()),
                },
            ),
            Action::ReleaseCopies { .. } => return None,
        };
        Some((*shard, *copy, change))
    }
}

/// Where one shard stands, and the calls that move it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStep {
    pub shard: u32,
    pub phase: ShardPhase,
    /// What it waits for, or what needs a human.
    pub note: Option<String>,
    pub actions: Vec<Action>,
}

impl ShardStep {
    fn new(shard: u32, phase: ShardPhase, note: Option<String>, actions: Vec<Action>) -> Self {
        ShardStep {
            shard,
            phase,
            note,
            actions,
        }
    }
}

/// Every call to make now (see the module docs), the release of surplus copies last.
pub fn decide(view: &View, factor: u32) -> Vec<Action> {
    let mut actions: Vec<Action> = steps(view, factor)
        .into_iter()
        .flat_map(|s| s.actions)
        .collect();
    if let Some(release) = release(view, factor) {
        actions.push(release);
    }
    actions
}

/// Each shard's step (phase, note and calls), in shard order.
pub fn steps(view: &View, factor: u32) -> Vec<ShardStep> {
    view.shards.iter().map(|s| step(view, s, factor)).collect()
}

/// [`Action::ReleaseCopies`] when copies beyond `factor` exist and no group counts any of
/// them (each formed group's leader says so; a formed group without a leader keeps them).
pub fn release(view: &View, factor: u32) -> Option<Action> {
    let surplus = view.shards.iter().any(|s| s.copies.len() > factor as usize);
    if !surplus {
        return None;
    }
    let let_go = view.shards.iter().all(|s| {
        let h = health(s);
        if !h.formed() {
            // No copy knows a group: only a shard never seen formed has none for sure.
            return !s.formed;
        }
        h.leader.is_some()
            && h.members
                .iter()
                .all(|m| view.copy_of(s.shard, m).is_some_and(|k| k < factor))
    });
    let_go.then_some(Action::ReleaseCopies { from: factor })
}

fn step(view: &View, s: &ShardView, factor: u32) -> ShardStep {
    let h = health(s);
    if !h.formed() {
        return form(view, s, factor);
    }
    let Some((leader, leader_status)) = h.leader else {
        return ShardStep::new(
            s.shard,
            ShardPhase::Electing,
            Some("no copy leads the group yet".to_owned()),
            Vec::new(),
        );
    };
    let shard = s.shard;
    let members = h.members;
    let voters: Vec<&MemberStatus> = h.voters().collect();
    let ids: BTreeSet<u64> = members.iter().map(|m| m.member.node_id).collect();
    let mut notes = Vec::new();
    let ours = view.group(shard);
    let runs_group = |copy: u32| {
        s.copies.iter().any(|o| {
            o.copy != copy
                && o.status()
                    .is_some_and(|st| st.group.as_ref() == Some(&ours) && !st.members.is_empty())
        })
    };

    // 3. A copy in no group while the others run it takes the group first (join); a pod the
    // group lists under an old node ID, now answering with a new one, replaces it.
    let mut joins = Vec::new();
    let mut stale = Vec::new();
    let mut joining = Vec::new();
    for c in &s.copies {
        let Some(status) = c.status() else { continue };
        if ids.contains(&status.node_id) {
            continue;
        }
        let pod = view.pod(shard, c.copy);
        if status.group.is_none()
            && status.members.is_empty()
            && c.copy < factor
            && runs_group(c.copy)
        {
            // Its entry is the one add-learner gets later: its own node ID, pod and address.
            joins.push(Action::Join {
                shard,
                copy: c.copy,
                member: view.member(shard, c.copy, status.node_id),
            });
            notes.push(format!(
                "{pod} joins the group under its new node ID {} first",
                status.node_id
            ));
            continue;
        }
        if status
            .group
            .as_ref()
            .is_some_and(|g| *g != view.group(shard))
        {
            notes.push(format!("copy {pod} belongs to another group"));
            continue;
        }
        let old: Vec<&MemberStatus> = members.iter().filter(|m| m.member.pod == pod).collect();
        if !status.members.is_empty() {
            // It remembers a membership that no longer counts it: an ID that left the group
            // is never added again (its log may be older than what the group acknowledged).
            // A copy beyond the factor is simply on its way out.
            if c.copy >= factor {
                continue;
            }
            notes.push(format!(
                "copy {pod} holds node ID {} that left the group: delete its claim to rebuild it",
                status.node_id
            ));
            continue;
        }
        stale.extend(old);
        if c.copy < factor {
            joining.push((c.copy, status.node_id));
        }
    }
    let note = |notes: &[String]| (!notes.is_empty()).then(|| notes.join("; "));
    if !joins.is_empty() {
        // Nothing else changes until it runs the group: the leader's next calls (its old ID
        // out, add-learner) need it to answer the leader's RPCs.
        return ShardStep::new(shard, ShardPhase::Replacing, note(&notes), joins);
    }
    let stale_voters: Vec<&MemberStatus> = stale
        .iter()
        .copied()
        .filter(|m| m.role == Role::Voter)
        .collect();
    if !stale_voters.is_empty() {
        let keep = voters
            .iter()
            .filter(|v| !stale_voters.contains(v))
            .map(|v| v.member.clone())
            .collect();
        let gone: Vec<String> = stale_voters.iter().map(|m| m.member.to_string()).collect();
        notes.insert(
            0,
            format!("removing replaced node {} first", gone.join(", ")),
        );
        return ShardStep::new(
            shard,
            ShardPhase::Replacing,
            note(&notes),
            vec![Action::SetVoters {
                shard,
                leader,
                voters: keep,
            }],
        );
    }

    // 4 and 5. Copies beyond the factor leave, leadership first.
    let wanted = |m: &MemberStatus| view.copy_of(shard, m).is_none_or(|k| k < factor);
    let leader_id = leader_status.node_id;
    let in_sync = |m: &MemberStatus| within(m, Some(leader_id), IN_SYNC_LAG);
    let surplus: Vec<&MemberStatus> = members.iter().filter(|m| !wanted(m)).collect();
    if !surplus.is_empty() {
        let remaining: Vec<&MemberStatus> = voters.iter().copied().filter(|v| wanted(v)).collect();
        let answering = |m: &MemberStatus| {
            s.copies
                .iter()
                .any(|c| c.status().is_some_and(|st| st.node_id == m.member.node_id))
        };
        let ready = !remaining.is_empty() && remaining.iter().all(|v| in_sync(v) && answering(v));
        if !ready {
            notes.insert(
                0,
                "lowering waits for every remaining voter to answer and be in sync".to_owned(),
            );
            return ShardStep::new(shard, ShardPhase::Lowering, note(&notes), Vec::new());
        }
        if surplus.iter().any(|m| m.member.node_id == leader_id) {
            // Copy 0 when it can, else the remaining voter least behind.
            let staying = |v: &&&MemberStatus| view.copy_of(shard, v).is_none_or(|k| !s.leaving(k));
            let to = remaining
                .iter()
                .filter(staying)
                .find(|v| view.copy_of(shard, v) == Some(0))
                .or_else(|| {
                    remaining
                        .iter()
                        .filter(staying)
                        .min_by_key(|v| v.lag.unwrap_or(u64::MAX))
                })
                .map(|v| v.member.clone());
            if let Some(to) = to {
                return ShardStep::new(
                    shard,
                    ShardPhase::TransferringLeader,
                    note(&notes),
                    vec![Action::TransferLeader { shard, leader, to }],
                );
            }
        }
        let keep = remaining.iter().map(|v| v.member.clone()).collect();
        return ShardStep::new(
            shard,
            ShardPhase::Lowering,
            note(&notes),
            vec![Action::SetVoters {
                shard,
                leader,
                voters: keep,
            }],
        );
    }

    // 6. A wanted copy outside the group joins as a learner (its stale learner entry, if any,
    // goes with the next `voters`).
    if let Some((copy, node_id)) = joining.first() {
        let member = view.member(shard, *copy, *node_id);
        return ShardStep::new(
            shard,
            ShardPhase::AddingLearner,
            note(&notes),
            vec![Action::AddLearner {
                shard,
                leader,
                member,
            }],
        );
    }

    // 7. Learners caught up become voters together; stale learners are dropped with it.
    let stale_ids: BTreeSet<u64> = stale.iter().map(|m| m.member.node_id).collect();
    let learners: Vec<&MemberStatus> = h
        .learners()
        .filter(|m| !stale_ids.contains(&m.member.node_id))
        .collect();
    if !learners.is_empty() {
        let behind: Vec<String> = learners
            .iter()
            .filter(|m| !within(m, Some(leader_id), PROMOTE_LAG))
            .map(|m| match m.lag {
                Some(lag) => format!("{} ({lag} entries behind)", m.member.pod),
                None => format!("{} (no progress reported)", m.member.pod),
            })
            .collect();
        if !behind.is_empty() {
            notes.insert(0, format!("catching up: {}", behind.join(", ")));
            return ShardStep::new(shard, ShardPhase::CatchingUp, note(&notes), Vec::new());
        }
        let all = voters
            .iter()
            .chain(learners.iter())
            .map(|m| m.member.clone())
            .collect();
        return ShardStep::new(
            shard,
            ShardPhase::Promoting,
            note(&notes),
            vec![Action::SetVoters {
                shard,
                leader,
                voters: all,
            }],
        );
    }

    // 8. The preferred leader: copy 0, once in sync, unless its pod is going (a draining
    // copy handed leadership away; moving it back would leave the group leaderless when it
    // stops).
    if leader != 0
        && !s.leaving(0)
        && let Some(c0) = voters
            .iter()
            .find(|v| view.copy_of(shard, v) == Some(0) && within(v, Some(leader_id), PROMOTE_LAG))
    {
        return ShardStep::new(
            shard,
            ShardPhase::TransferringLeader,
            note(&notes),
            vec![Action::TransferLeader {
                shard,
                leader,
                to: c0.member.clone(),
            }],
        );
    }

    let missing: Vec<String> = (0..factor)
        .map(|k| view.pod(shard, k))
        .filter(|pod| !voters.iter().any(|v| v.member.pod == *pod))
        .collect();
    if missing.is_empty() {
        ShardStep::new(shard, ShardPhase::Stable, note(&notes), Vec::new())
    } else {
        notes.insert(0, format!("waiting for {} to answer", missing.join(", ")));
        ShardStep::new(shard, ShardPhase::Waiting, note(&notes), Vec::new())
    }
}

/// Step 1: a shard no copy knows a group of.
fn form(view: &View, s: &ShardView, factor: u32) -> ShardStep {
    let shard = s.shard;
    let wait = |phase, why: String| ShardStep::new(shard, phase, Some(why), Vec::new());
    if factor <= 1 {
        // Factor 1 runs no group; copies beyond it (being released) hold none.
        return ShardStep::new(shard, ShardPhase::Stable, None, Vec::new());
    }
    if s.formed {
        return wait(
            ShardPhase::Waiting,
            "the group was formed before and no copy answers with it: nothing is formed again"
                .to_owned(),
        );
    }
    let Some(c0) = s.status(0) else {
        return wait(
            ShardPhase::Initializing,
            format!("waiting for {} to answer", view.pod(shard, 0)),
        );
    };
    let group = view.group(shard);
    let foreign: Vec<String> = s
        .copies
        .iter()
        .filter(|c| {
            c.status()
                .is_some_and(|st| st.group.as_ref().is_some_and(|g| *g != group))
        })
        .map(|c| view.pod(shard, c.copy))
        .collect();
    if !foreign.is_empty() {
        return wait(
            ShardPhase::Waiting,
            format!("{} belong to another group", foreign.join(", ")),
        );
    }
    // A copy that ran the group (a term or a log), or a copy 0 that reports it (copy 0 has no
    // flags: it took the group by init or join), while no membership is in sight (the others
    // down, or it is starting its group): the group exists, and an init would form a second.
    let ran: Vec<String> = s
        .copies
        .iter()
        .filter(|c| {
            c.status().is_some_and(|st| {
                st.group.as_ref() == Some(&group)
                    && (c.copy == 0
                        || st.term > 0
                        || st.last_log_index.is_some()
                        || st.applied.is_some())
            })
        })
        .map(|c| view.pod(shard, c.copy))
        .collect();
    if !ran.is_empty() {
        return wait(
            ShardPhase::Waiting,
            format!(
                "{} ran or took the group and no copy reports its membership: nothing is formed \
                 again",
                ran.join(", ")
            ),
        );
    }
    // Every copy as a voter only when none can hold a record: a new store that never served
    // a map and copy 0 empty (it waits for every copy to answer). Else copy 0 alone, whose records predate
    // the log (the others join as learners and get them by snapshot). Either way the call
    // goes to copy 0 (the only copy without its group in its flags); the others join when it
    // first reaches them.
    let all: Option<Vec<Member>> = (0..factor)
        .map(|k| s.status(k).map(|st| view.member(shard, k, st.node_id)))
        .collect();
    let empty = view.new_store && s.copy0_keys == Some(0);
    let voters = match all {
        Some(all) if empty => all,
        // A new store forms each group with all its copies: no snapshot, no promotion.
        None if empty => {
            let missing: Vec<String> = (0..factor)
                .filter(|k| s.status(*k).is_none())
                .map(|k| view.pod(shard, k))
                .collect();
            return wait(
                ShardPhase::Initializing,
                format!(
                    "a new store's group forms with every copy: waiting for {} to answer",
                    missing.join(", ")
                ),
            );
        }
        _ => vec![view.member(shard, 0, c0.node_id)],
    };
    ShardStep::new(
        shard,
        ShardPhase::Initializing,
        None,
        vec![Action::Init {
            shard,
            copy: 0,
            voters,
        }],
    )
}
