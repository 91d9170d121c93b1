//! What a reconcile writes of the groups: `status.replication` (the summary, each shard's
//! leader, voters, learners, lag, phase and note) and the messages of the Degraded
//! (`ShardBelowQuorum`) and Progressing (`ReplicationConverging`) conditions, from the view, the
//! steps decided and what the calls did.

use super::health::{Health, health};
use super::machine::{Action, ShardStep};
use super::view::View;
use crate::labels;
use crate::status::{ReplicationStatus, ShardPhase, ShardReplicationStatus};
use crate::status_report::ReplicationReport;

/// `status.replication` and the conditions' messages. `formed[i]`: shard i's group exists
/// (seen before or formed now); `releasing`: what the release of surplus copies waits for;
/// `copies_exist`: the store has copy StatefulSets (at factor 1, being removed);
/// `persisted`: `status.replication` as last written.
pub fn report(
    view: &View,
    factor: u32,
    steps: &[ShardStep],
    formed: &[bool],
    releasing: Option<&str>,
    copies_exist: bool,
    persisted: Option<&ReplicationStatus>,
) -> ReplicationReport {
    let mut below = Vec::new();
    let mut moving = Vec::new();
    let mut shards = Vec::new();
    for ((s, step), formed) in view.shards.iter().zip(steps).zip(formed) {
        let h = health(s);
        let name = labels::pod(&view.store, i32::try_from(s.shard).unwrap_or(i32::MAX));
        let voters = h.voters().count();
        if h.below_quorum() {
            below.push(format!(
                "shard {name}: {} of {voters} voters in sync, quorum {}",
                h.in_sync, h.quorum
            ));
        }
        if step.phase != ShardPhase::Stable {
            let why = step
                .note
                .as_deref()
                .map_or(String::new(), |n| format!(" ({n})"));
            moving.push(format!("shard {name}: {}{why}", step.phase.as_str()));
        }
        let previous = persisted.and_then(|p| p.shards.iter().find(|p| p.shard == s.shard as i32));
        shards.push(shard_status(view, s.shard, &h, step, *formed, previous));
    }
    if let Some(r) = releasing {
        moving.push(r.to_owned());
    }
    let summary = match (factor, shards.iter().map(|s| s.in_sync).min()) {
        (1, _) if !copies_exist => "-".to_owned(),
        (_, Some(min)) => format!("{min}/{factor}"),
        (_, None) => "-".to_owned(),
    };
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join("; "));
    ReplicationReport {
        status: Some(ReplicationStatus {
            factor: i32::try_from(factor).unwrap_or(i32::MAX),
            summary,
            shards,
        }),
        below_quorum: join(below),
        conflicts: Vec::new(),
        refused: None,
        converging: join(moving),
    }
}

/// What a copy whose `join` was refused for good ([`crate::shards::RaftChange::refused_for_good`])
/// needs: its volume deleted, so that it comes back empty with a new node ID.
pub fn join_refused(view: &View, shard: u32, copy: u32, why: &str) -> String {
    let pod = view.pod(shard, copy);
    format!(
        "copy {pod} refused to join its group ({why}): delete its claim {}-{pod} to rebuild it \
         empty",
        labels::DATA_VOLUME
    )
}

fn shard_status(
    view: &View,
    shard: u32,
    h: &Health<'_>,
    step: &ShardStep,
    formed: bool,
    previous: Option<&ShardReplicationStatus>,
) -> ShardReplicationStatus {
    let pods = |it: &mut dyn Iterator<Item = &kvproto::raft::MemberStatus>| {
        it.map(|m| m.member.pod.clone()).collect::<Vec<_>>()
    };
    let mut voters = pods(&mut h.voters());
    // A formed group stays recorded while no copy reports it (the voters last seen), and one
    // formed just now (init answered) is recorded at once: it is never formed again.
    if voters.is_empty() && formed {
        let initialized = step.actions.iter().find_map(|a| match a {
            Action::Init { voters, .. } => Some(voters.iter().map(|m| m.pod.clone()).collect()),
            _ => None,
        });
        voters = previous
            .map(|p| p.voters.clone())
            .filter(|v| !v.is_empty())
            .or(initialized)
            .unwrap_or_default();
    }
    ShardReplicationStatus {
        shard: i32::try_from(shard).unwrap_or(i32::MAX),
        leader: h.leader.map(|(copy, _)| view.pod(shard, copy)),
        in_sync: i32::try_from(h.in_sync).unwrap_or(i32::MAX),
        voters,
        learners: pods(&mut h.learners()),
        max_lag: h.max_lag.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
        phase: step.phase,
        message: step.note.clone(),
    }
}
