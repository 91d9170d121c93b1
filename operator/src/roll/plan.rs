//! The roll planner, pure: from a [`RollView`] and `status.roll` as last written, the
//! `status.roll` to write now and the actions to run once it is written.
//!
//! Per shard (shards in parallel), one pod at a time:
//! 1. a pod in flight (`status.roll.pods`) is resumed from its step: `TransferringLeader` sends
//!    the transfer again while the pod still leads (and is done once it does not);
//!    `Deleting` deletes it again while it still runs the old template and still canRoll (a
//!    pod that leads by now hands leadership over first), else it is `Replacing`;
//!    `Replacing` waits until the new pod is Ready and in sync, then it is done (a new pod
//!    outdated again by a later template is deleted again, as `Deleting`);
//! 2. else an outdated follower that canRoll (its shard keeps a quorum of in-sync voters
//!    without it, each answering and with its pod Ready), the most lagged first, is deleted;
//! 3. else an outdated leader hands leadership to an in-sync follower that already runs the
//!    new template (it is deleted as a follower at a later reconcile).
//!
//! Nothing starts while a shard's membership changes or a rebalance is pending or runs.

use kvproto::raft::Member;

use super::view::{PodState, RollView, ShardState};
use crate::replication::{Action, ShardStep};
use crate::status::{RollPhase, RollPod, RollStatus, RollStep, ShardPhase};

/// One action of the roller, run after `status.roll` was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollAction {
    /// `transfer-leader` of `shard`'s group, sent to the leading copy `leader`.
    TransferLeader { shard: u32, leader: u32, to: Member },
    /// Delete the pod (its StatefulSet recreates it from the new template); `uid` guards a
    /// pod recreated meanwhile.
    DeletePod { pod: String, uid: Option<String> },
}

/// What to write and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollPlan {
    /// `status.roll` from now on; None when no pod is outdated nor in flight.
    pub status: Option<RollStatus>,
    pub actions: Vec<RollAction>,
}

/// True when the roll `persisted` describes has started (it rolled, or holds a pod): an
/// operator restarted mid-roll resumes it beyond `--max-concurrent-rolls`. A roll that only
/// waited (for a slot, or for the store) has not, and takes a slot like any other.
pub fn started(persisted: Option<&RollStatus>) -> bool {
    persisted.is_some_and(|r| r.phase == RollPhase::Rolling || !r.pods.is_empty())
}

/// `status.roll` of a store whose pods are outdated (`planned`) while other stores hold all
/// `max` roll slots: nothing of it rolls yet.
pub fn queued(planned: &RollStatus, max: usize) -> RollStatus {
    let stores = if max == 1 {
        "store rolls"
    } else {
        "stores roll"
    };
    RollStatus {
        revision: planned.revision.clone(),
        pods: Vec::new(),
        phase: RollPhase::Waiting,
        message: Some(format!(
            "waiting for a roll slot: {max} {stores} at once (--max-concurrent-rolls)"
        )),
    }
}

/// True when `pod` is being replaced by the roll (the membership step then leaves its
/// leadership alone).
pub fn holds(persisted: Option<&RollStatus>, pod: &str) -> bool {
    persisted.is_some_and(|r| r.pods.iter().any(|p| p.pod == pod))
}

/// Drops the membership step's moves of leadership to a pod the roll holds (the preferred
/// leader back to a copy 0 being replaced would undo the roll's transfer); a shard left with
/// nothing else to do is Stable, so the roll goes on.
pub fn hold_leadership(steps: &mut [ShardStep], persisted: Option<&RollStatus>) {
    for step in steps {
        let before = step.actions.len();
        step.actions.retain(|a| match a {
            Action::TransferLeader { to, .. } => !holds(persisted, &to.pod),
            _ => true,
        });
        if step.actions.len() < before
            && step.actions.is_empty()
            && step.phase == ShardPhase::TransferringLeader
        {
            step.phase = ShardPhase::Stable;
            step.note =
                Some("leadership stays while the roll replaces the preferred leader".to_owned());
        }
    }
}

/// The plan (see the module docs).
pub fn plan(view: &RollView, persisted: Option<&RollStatus>) -> RollPlan {
    let in_flight: Vec<RollPod> = persisted.map(|r| r.pods.clone()).unwrap_or_default();
    let outdated = view.pods.iter().any(|p| view.outdated(p));
    if !outdated && in_flight.is_empty() {
        return RollPlan {
            status: None,
            actions: Vec::new(),
        };
    }
    let status = |phase, pods, notes: Vec<String>| RollStatus {
        revision: view.revision(),
        pods,
        phase,
        message: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    let mut blocked = Vec::new();
    if view.rebalancing {
        blocked.push("a rebalance is pending or in flight".to_owned());
    }
    let moving: Vec<String> = view
        .shards
        .iter()
        .filter(|s| !s.stable)
        .map(|s| s.shard.to_string())
        .collect();
    if !moving.is_empty() {
        blocked.push(format!(
            "the membership of shard {} is changing",
            moving.join(", ")
        ));
    }
    if !blocked.is_empty() {
        return RollPlan {
            status: Some(status(RollPhase::Waiting, in_flight, blocked)),
            actions: Vec::new(),
        };
    }
    let mut pods = Vec::new();
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    for shard in &view.shards {
        let entry = in_flight
            .iter()
            .find(|p| u32::try_from(p.shard).ok() == Some(shard.shard));
        let next = match entry {
            Some(e) => resume(view, shard, e),
            None => None,
        };
        let next = match next {
            Some(next) => Some(next),
            None => choose(view, shard),
        };
        if let Some(Next { pod, action, note }) = next {
            pods.extend(pod);
            actions.extend(action);
            notes.extend(note);
        }
    }
    if pods.is_empty() && !outdated {
        return RollPlan {
            status: None,
            actions: Vec::new(),
        };
    }
    RollPlan {
        status: Some(status(RollPhase::Rolling, pods, notes)),
        actions,
    }
}

/// One shard's next step: the pod it keeps in flight, the action, what it waits for.
struct Next {
    pod: Option<RollPod>,
    action: Option<RollAction>,
    note: Option<String>,
}

impl Next {
    fn step(e: &PodState, step: RollStep, action: Option<RollAction>) -> Self {
        Next {
            pod: Some(RollPod {
                pod: e.pod.clone(),
                shard: i32::try_from(e.shard).unwrap_or(i32::MAX),
                step,
            }),
            action,
            note: None,
        }
    }

    fn wait(note: String) -> Self {
        Next {
            pod: None,
            action: None,
            note: Some(note),
        }
    }
}

/// The step after `entry`'s, or None once it is done (the shard may choose its next pod).
fn resume(view: &RollView, shard: &ShardState, entry: &RollPod) -> Option<Next> {
    let pod = view.pod(&entry.pod);
    let keep = |step, action, note: Option<String>| Next {
        pod: Some(RollPod {
            step,
            ..entry.clone()
        }),
        action,
        note,
    };
    match entry.step {
        RollStep::TransferringLeader => {
            let p = pod?;
            if shard.leader != Some(p.copy) {
                // Leadership moved: it is an outdated follower now, chosen as one.
                return None;
            }
            Some(match transfer(view, shard, p) {
                Ok(action) => keep(RollStep::TransferringLeader, Some(action), None),
                Err(why) => keep(RollStep::TransferringLeader, None, Some(why)),
            })
        }
        RollStep::Deleting | RollStep::Replacing => match pod {
            // Still (or, after a later template change, again) outdated: deleted again, judged
            // as when it was chosen, since the shard may have changed since the step was written.
            Some(p) if view.outdated(p) && !p.terminating => Some(redelete(view, shard, p, keep)),
            _ => replaced(view, shard, entry, pod)
                .map(|note| keep(RollStep::Replacing, None, Some(note))),
        },
    }
}

/// The resent delete of an outdated pod in flight: while it leads (an election since), its
/// leadership moves first; while its shard would fall below quorum without it, it waits.
fn redelete(
    view: &RollView,
    shard: &ShardState,
    p: &PodState,
    keep: impl Fn(RollStep, Option<RollAction>, Option<String>) -> Next,
) -> Next {
    if shard.leader == Some(p.copy) {
        return match transfer(view, shard, p) {
            Ok(action) => keep(RollStep::TransferringLeader, Some(action), None),
            Err(why) => keep(RollStep::TransferringLeader, None, Some(why)),
        };
    }
    match can_roll(view, shard, p) {
        Ok(()) => keep(RollStep::Deleting, Some(delete(p)), None),
        Err(why) => keep(RollStep::Deleting, None, Some(why)),
    }
}

/// canRoll: `p`'s shard keeps a quorum of in-sync voters without it, each answering and with
/// its pod up; why not, when it does not.
fn can_roll(view: &RollView, shard: &ShardState, p: &PodState) -> Result<(), String> {
    let left = shard.in_sync_without(p.copy, |copy| view.alive(shard.shard, copy));
    if shard.leader.is_some() && shard.quorum > 0 && left >= shard.quorum {
        return Ok(());
    }
    Err(format!(
        "{} may not go: {left} in-sync voters without it, quorum {}",
        p.pod, shard.quorum
    ))
}

/// What the new pod of `entry` still waits for, or None once it is Ready and in sync.
fn replaced(
    view: &RollView,
    shard: &ShardState,
    entry: &RollPod,
    pod: Option<&PodState>,
) -> Option<String> {
    let Some(p) = pod.filter(|p| !p.terminating && view.updated(p)) else {
        return Some(format!("{} is being recreated", entry.pod));
    };
    let in_sync = shard.member(p.copy).is_some_and(|m| m.voter && m.in_sync);
    match (p.ready, in_sync) {
        (true, true) => None,
        (false, _) => Some(format!("{} is not Ready yet", p.pod)),
        (true, false) => Some(format!("{} is not in sync yet", p.pod)),
    }
}

/// The shard's next pod to roll, if any.
fn choose(view: &RollView, shard: &ShardState) -> Option<Next> {
    let outdated: Vec<&PodState> = view
        .pods
        .iter()
        .filter(|p| p.shard == shard.shard && view.outdated(p) && !p.terminating)
        .collect();
    if outdated.is_empty() {
        return None;
    }
    let Some(leader) = shard.leader else {
        return Some(Next::wait(format!(
            "shard {} has no leader: nothing of it rolls",
            shard.shard
        )));
    };
    let mut followers: Vec<&PodState> = outdated
        .iter()
        .copied()
        .filter(|p| p.copy != leader)
        .collect();
    if followers.is_empty() {
        // Only the leader is left: leadership first.
        let p = outdated.first().copied()?;
        return Some(match transfer(view, shard, p) {
            Ok(action) => Next::step(p, RollStep::TransferringLeader, Some(action)),
            Err(why) => Next::wait(why),
        });
    }
    // The most lagged first (one that is not in sync, or reports nothing, before all others).
    let lag = |p: &PodState| match shard.member(p.copy) {
        Some(m) if m.in_sync => m.lag.unwrap_or(0),
        _ => u64::MAX,
    };
    followers.sort_by(|a, b| lag(b).cmp(&lag(a)).then(a.copy.cmp(&b.copy)));
    let mut refused = Vec::new();
    for p in followers {
        match can_roll(view, shard, p) {
            Ok(()) => return Some(Next::step(p, RollStep::Deleting, Some(delete(p)))),
            Err(why) => refused.push(why),
        }
    }
    Some(Next::wait(refused.join("; ")))
}

/// The transfer of leadership off `leader_pod` to an in-sync follower already updated (the
/// least behind, then the lowest copy); why not, when there is none.
fn transfer(
    view: &RollView,
    shard: &ShardState,
    leader_pod: &PodState,
) -> Result<RollAction, String> {
    let updated = |copy: u32| {
        view.pods.iter().any(|p| {
            p.shard == shard.shard && p.copy == copy && p.ready && !p.terminating && view.updated(p)
        })
    };
    shard
        .members
        .iter()
        .filter(|m| {
            m.voter && m.in_sync && m.answering && m.copy != leader_pod.copy && updated(m.copy)
        })
        .min_by_key(|m| (m.lag.unwrap_or(0), m.copy))
        .map(|m| RollAction::TransferLeader {
            shard: shard.shard,
            leader: leader_pod.copy,
            to: m.member.clone(),
        })
        .ok_or_else(|| {
            format!(
                "{} leads and no in-sync follower runs the new template yet",
                leader_pod.pod
            )
        })
}

fn delete(p: &PodState) -> RollAction {
    RollAction::DeletePod {
        pod: p.pod.clone(),
        uid: p.uid.clone(),
    }
}
