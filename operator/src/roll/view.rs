//! What the roller saw in one reconcile: each StatefulSet's update revision, each pod's
//! revision and readiness, and each shard's group as the membership step observed it.

use std::collections::BTreeMap;

use kvproto::raft::Member;

use crate::replication::health::{IN_SYNC_LAG, health, within};
use crate::replication::{ShardStep, ShardView, View};
use crate::status::ShardPhase;

/// One pod of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub pod: String,
    pub shard: u32,
    pub copy: u32,
    /// Its `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Its Ready condition is True.
    pub ready: bool,
    /// It is being deleted.
    pub terminating: bool,
    /// Its uid: a delete names it, so a pod recreated meanwhile is never deleted by mistake.
    pub uid: Option<String>,
}

/// One member of a shard's group, as its leader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub copy: u32,
    pub member: Member,
    pub voter: bool,
    /// A voter within [`IN_SYNC_LAG`] of the leader.
    pub in_sync: bool,
    pub lag: Option<u64>,
    /// Its copy answered the status call of this reconcile with this member's node ID: the
    /// leader's lag of a copy that stopped answering stays small while nothing is written.
    pub answering: bool,
}

/// One shard's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardState {
    pub shard: u32,
    /// The membership step found nothing to do (`Stable`).
    pub stable: bool,
    /// The copy that leads.
    pub leader: Option<u32>,
    pub members: Vec<MemberState>,
    /// Majority of the voters.
    pub quorum: u32,
}

impl ShardState {
    /// The member that is copy `copy`.
    pub fn member(&self, copy: u32) -> Option<&MemberState> {
        self.members.iter().find(|m| m.copy == copy)
    }

    /// Voters in sync that answered and whose pod `alive` says is up (Ready, not being
    /// deleted), copy `without` left out: what keeps the shard's quorum while it is gone.
    pub fn in_sync_without(&self, without: u32, alive: impl Fn(u32) -> bool) -> u32 {
        let n = self
            .members
            .iter()
            .filter(|m| m.voter && m.in_sync && m.answering && m.copy != without && alive(m.copy))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Everything the roller plans from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollView {
    /// Each copy's StatefulSet `status.updateRevision`, by copy index.
    pub revisions: BTreeMap<u32, String>,
    pub pods: Vec<PodState>,
    pub shards: Vec<ShardState>,
    /// A shard count change is pending or in flight.
    pub rebalancing: bool,
}

impl RollView {
    /// The pod named `pod`.
    pub fn pod(&self, pod: &str) -> Option<&PodState> {
        self.pods.iter().find(|p| p.pod == pod)
    }

    /// True when `pod` runs an older template than its StatefulSet's (a pod whose revision is
    /// not known is left alone).
    pub fn outdated(&self, pod: &PodState) -> bool {
        match (self.revisions.get(&pod.copy), &pod.revision) {
            (Some(want), Some(has)) => want != has,
            _ => false,
        }
    }

    /// True when `pod` runs its own StatefulSet's update revision. Not the negation of
    /// [`RollView::outdated`]: a pod or StatefulSet whose revision is not known is neither.
    pub fn updated(&self, pod: &PodState) -> bool {
        match (self.revisions.get(&pod.copy), &pod.revision) {
            (Some(want), Some(has)) => want == has,
            _ => false,
        }
    }

    /// True when copy `copy` of `shard` has a pod that is Ready and not being deleted.
    pub fn alive(&self, shard: u32, copy: u32) -> bool {
        self.pods
            .iter()
            .any(|p| p.shard == shard && p.copy == copy && p.ready && !p.terminating)
    }

    /// The update revisions, copy 0's first, comma-separated (`status.roll.revision`).
    pub fn revision(&self) -> String {
        let all: Vec<&str> = self.revisions.values().map(String::as_str).collect();
        all.join(",")
    }
}

/// Shard `s`'s group for the roller, from what the membership step saw and decided.
pub fn shard_state(view: &View, s: &ShardView, step: &ShardStep) -> ShardState {
    let h = health(s);
    let leader_id = h.leader.map(|(_, st)| st.node_id);
    let answering =
        |copy: u32, node_id: u64| s.status(copy).is_some_and(|st| st.node_id == node_id);
    let members = h
        .members
        .iter()
        .filter_map(|m| {
            let copy = view.copy_of(s.shard, m)?;
            let voter = m.role == kvproto::raft::Role::Voter;
            Some(MemberState {
                copy,
                member: m.member.clone(),
                voter,
                in_sync: voter && leader_id.is_some() && within(m, leader_id, IN_SYNC_LAG),
                lag: m.lag,
                answering: answering(copy, m.member.node_id),
            })
        })
        .collect();
    ShardState {
        shard: s.shard,
        stable: step.phase == ShardPhase::Stable && step.actions.is_empty(),
        leader: h.leader.map(|(copy, _)| copy),
        members,
        quorum: h.quorum,
    }
}
