//! Computes the status from the outcome of a reconcile ([`compute_status`]): phase, conditions
//! (with stable transition times) and the served shard map. Pure, so every reported state is
//! unit-tested; the controller writes what it computes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::labels;
use crate::plan::Report;
use crate::status::{
    KVStoreStatus, Phase, RebalanceStatus, ReplicationStatus, RollPhase, RollStatus, TopologyStatus,
};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const PAUSED: &str = "ReconciliationPaused";

/// How a reconcile ended, as far as the status is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The plan ran; `topology` is the map every server acknowledged.
    Planned {
        report: Report,
        topology: Option<TopologyStatus>,
        serving: i32,
        /// Shards whose only volume is on a node that left the cluster (the message), found
        /// while some shard is not ready: Degraded, and nothing is deleted.
        lost: Option<String>,
    },
    /// A key move is in flight (`serving`: the count clients route over now); `problem` is
    /// the reason and message of what blocks its current phase, retried with backoff.
    Rebalancing {
        rebalance: RebalanceStatus,
        topology: Option<TopologyStatus>,
        serving: i32,
        problem: Option<(&'static str, String)>,
    },
    /// Every pod is ready but a server did not take the shard map.
    ShardUnreachable { message: String },
    /// The spec cannot be built; the children are left as they are.
    InvalidSpec { message: String },
    /// `spec.tls` names a Secret that is missing or incomplete; the children are left as they are.
    TlsSecretNotReady { message: String },
    /// The API server refused a child (e.g. an immutable StatefulSet field changed).
    Rejected { message: String },
    /// spec.paused: the children are left as they are.
    Paused,
}

/// What a reconcile learned about the store's replication, laid over the outcome's status by
/// [`with_replication`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationReport {
    /// `status.replication` as it is now; None keeps the previous one (the groups were not
    /// looked at, e.g. during a move).
    pub status: Option<ReplicationStatus>,
    /// Shards with fewer voters in sync than their quorum (the Degraded message).
    pub below_quorum: Option<String>,
    /// Copy objects whose names another owner holds (`NAME-rK`).
    pub conflicts: Vec<String>,
    /// Copies whose `join` was refused for good: their volume must be deleted (the Degraded
    /// message, reason JoinRefused).
    pub refused: Option<String>,
    /// Shards whose membership is still changing (the Progressing message).
    pub converging: Option<String>,
}

/// Lays `report` over `status` (computed by [`compute_status`]): `status.replication`, and
/// Degraded (reason NameConflict, ShardBelowQuorum naming the shards, or JoinRefused naming
/// the claims to delete) and Progressing
/// (ReplicationConverging) when the outcome did not already report a problem or progress. The
/// phase becomes Degraded with them, unless the store is paused or stopped.
pub fn with_replication(
    mut status: KVStoreStatus,
    report: &ReplicationReport,
    generation: Option<i64>,
    now: &Time,
) -> KVStoreStatus {
    if let Some(r) = &report.status {
        status.replication = Some(r.clone());
    }
    let problem = if !report.conflicts.is_empty() {
        Some((
            "NameConflict",
            format!(
                "{} already exist and belong to another owner: the copies of the store are not \
                 created over them; rename the store or remove them",
                report.conflicts.join(", ")
            ),
        ))
    } else {
        let below = report.below_quorum.clone().map(|m| ("ShardBelowQuorum", m));
        below.or_else(|| report.refused.clone().map(|m| ("JoinRefused", m)))
    };
    let quiet = |s: &KVStoreStatus, type_: &str| find(s, type_).is_none_or(|c| c.status != "True");
    if let Some((reason, message)) = problem {
        if quiet(&status, DEGRADED) {
            set_condition(
                &mut status.conditions,
                cond(DEGRADED, true, reason, &message),
                generation,
                now,
            );
        }
        if !matches!(status.phase, Some(Phase::Paused | Phase::Stopped)) {
            status.phase = Some(Phase::Degraded);
        }
    }
    if let Some(message) = &report.converging
        && quiet(&status, PROGRESSING)
    {
        set_condition(
            &mut status.conditions,
            cond(PROGRESSING, true, "ReplicationConverging", message),
            generation,
            now,
        );
    }
    status
}

/// Lays `status.roll` over `status`: while a roll is recorded (rolling, or waiting), Progressing
/// is True with reason Rolling, unless the outcome or the groups already report other progress
/// (a roll waits for those anyway) or the store is paused. A pod the roll deleted is a shard
/// starting again, so a rolling roll also takes over `ShardsStarting`. The phase and the other
/// conditions are left as the outcome set them.
pub fn with_roll(mut status: KVStoreStatus, generation: Option<i64>, now: &Time) -> KVStoreStatus {
    let Some(roll) = status.roll.as_ref() else {
        return status;
    };
    let busy = find(&status, PROGRESSING).is_some_and(|c| {
        c.status == "True" && !(roll.phase == RollPhase::Rolling && c.reason == "ShardsStarting")
    });
    if busy || status.phase == Some(Phase::Paused) {
        return status;
    }
    let message = roll_message(roll);
    set_condition(
        &mut status.conditions,
        cond(PROGRESSING, true, "Rolling", &message),
        generation,
        now,
    );
    status
}

/// The Progressing message of a roll: the revision, the pods in flight, what it waits for.
fn roll_message(roll: &RollStatus) -> String {
    let pods: Vec<String> = roll
        .pods
        .iter()
        .map(|p| format!("{} {:?}", p.pod, p.step))
        .collect();
    let mut parts = Vec::new();
    if !pods.is_empty() {
        parts.push(pods.join(", "));
    }
    parts.extend(roll.message.clone());
    let head = match roll.phase {
        RollPhase::Rolling => format!("rolling the pods to revision {}", roll.revision),
        RollPhase::Waiting => format!("a roll to revision {} waits", roll.revision),
    };
    if parts.is_empty() {
        head
    } else {
        format!("{head}: {}", parts.join("; "))
    }
}

/// One condition; `status` is a bool.
struct Cond {
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
}

/// The new status. Fields the outcome says nothing about keep their previous values.
pub fn compute_status(
    previous: Option<&KVStoreStatus>,
    name: &str,
    generation: Option<i64>,
    ready_replicas: i32,
    outcome: &Outcome,
    now: &Time,
) -> KVStoreStatus {
    let mut next = previous.cloned().unwrap_or_default();
    next.selector = Some(labels::selector_string(name));
    next.ready_replicas = ready_replicas;
    next.observed_generation = generation;
    let (phase, conds) = match outcome {
        Outcome::Planned {
            report,
            topology,
            serving,
            lost,
        } => {
            next.topology = *topology;
            next.replicas = *serving;
            let (phase, mut conds) = match lost {
                Some(message) => volume_lost(message),
                None => planned(report, *topology),
            };
            conds.push(not_paused());
            (phase, conds)
        }
        Outcome::Rebalancing {
            rebalance,
            topology,
            serving,
            problem,
        } => {
            next.topology = *topology;
            next.replicas = *serving;
            next.rebalance = Some(rebalance.clone());
            let (phase, mut conds) = rebalancing(rebalance, problem.as_ref());
            conds.push(not_paused());
            (phase, conds)
        }
        Outcome::ShardUnreachable { message } => (
            Phase::Degraded,
            vec![
                cond(AVAILABLE, false, "ShardUnreachable", message),
                cond(
                    PROGRESSING,
                    true,
                    "PushingShardMap",
                    "retrying the shard map push",
                ),
                cond(DEGRADED, true, "ShardUnreachable", message),
                not_paused(),
            ],
        ),
        Outcome::InvalidSpec { message } => (
            Phase::Degraded,
            vec![
                cond(
                    PROGRESSING,
                    false,
                    "InvalidSpec",
                    "fix the spec to continue",
                ),
                cond(DEGRADED, true, "InvalidSpec", message),
                not_paused(),
            ],
        ),
        Outcome::TlsSecretNotReady { message } => (
            Phase::Degraded,
            vec![
                cond(
                    PROGRESSING,
                    false,
                    "TlsSecretNotReady",
                    "waiting for the TLS Secret of spec.tls",
                ),
                cond(DEGRADED, true, "TlsSecretNotReady", message),
                not_paused(),
            ],
        ),
        Outcome::Rejected { message } => (
            Phase::Degraded,
            vec![
                cond(
                    PROGRESSING,
                    false,
                    "ChangeRejected",
                    "fix the spec to continue",
                ),
                cond(DEGRADED, true, "ChangeRejected", message),
                not_paused(),
            ],
        ),
        Outcome::Paused => (
            Phase::Paused,
            vec![cond(
                PAUSED,
                true,
                "Paused",
                "spec.paused is set: the operator leaves the children alone",
            )],
        ),
    };
    next.phase = Some(phase);
    for c in conds {
        set_condition(&mut next.conditions, c, generation, now);
    }
    next
}

/// A shard's only copy is on a node that is gone: only a human can choose to start it empty.
fn volume_lost(message: &str) -> (Phase, Vec<Cond>) {
    (
        Phase::Degraded,
        vec![
            cond(AVAILABLE, false, "ShardVolumeLost", message),
            cond(
                PROGRESSING,
                false,
                "ShardVolumeLost",
                "waiting for the node to return or for the claim to be deleted",
            ),
            cond(DEGRADED, true, "ShardVolumeLost", message),
        ],
    )
}

fn planned(report: &Report, topology: Option<TopologyStatus>) -> (Phase, Vec<Cond>) {
    let ok = |t, r, m: &str| cond(t, false, r, m);
    match report {
        Report::Available { shards } => {
            let epoch = topology.map_or(0, |t| t.epoch);
            let msg = format!("{shards}/{shards} shards ready, serving epoch {epoch}");
            (
                Phase::Available,
                vec![
                    cond(AVAILABLE, true, "AllShardsReady", &msg),
                    ok(PROGRESSING, "Reconciled", "the store matches its spec"),
                    ok(DEGRADED, "AsExpected", "all shards ready"),
                ],
            )
        }
        Report::Starting { ready, want } => {
            let msg = format!("{ready}/{want} shards ready");
            (
                Phase::Pending,
                vec![
                    cond(AVAILABLE, false, "ShardsStarting", &msg),
                    cond(PROGRESSING, true, "ShardsStarting", &msg),
                    ok(DEGRADED, "AsExpected", "shards are starting"),
                ],
            )
        }
        Report::ShardsNotReady { ready, want } => {
            let msg = format!("{ready}/{want} shards ready");
            (
                Phase::Degraded,
                vec![
                    cond(AVAILABLE, false, "ShardsNotReady", &msg),
                    cond(PROGRESSING, true, "ShardsStarting", &msg),
                    cond(DEGRADED, true, "ShardsNotReady", &msg),
                ],
            )
        }
        Report::Stopping { remaining } => {
            let msg = format!("spec.replicas is 0: {remaining} pods still stopping");
            (
                Phase::Stopped,
                vec![
                    cond(AVAILABLE, false, "Stopped", &msg),
                    cond(PROGRESSING, true, "Stopping", &msg),
                    ok(DEGRADED, "AsExpected", "stopping as asked"),
                ],
            )
        }
        Report::Stopped => {
            let msg = "spec.replicas is 0: no pod runs; volumes and shard map are kept";
            (
                Phase::Stopped,
                vec![
                    cond(AVAILABLE, false, "Stopped", msg),
                    ok(PROGRESSING, "Stopped", msg),
                    ok(DEGRADED, "AsExpected", "stopped as asked"),
                ],
            )
        }
        Report::RebalancePending { serving, wanted } => {
            let msg = format!("moving keys from {serving} to {wanted} shards is about to start");
            (
                Phase::Rebalancing,
                vec![
                    cond(AVAILABLE, true, "ServingPreviousShardCount", &msg),
                    cond(PROGRESSING, true, "RebalancePending", &msg),
                    ok(DEGRADED, "AsExpected", "all shards ready"),
                ],
            )
        }
    }
}

fn rebalancing(
    r: &RebalanceStatus,
    problem: Option<&(&'static str, String)>,
) -> (Phase, Vec<Cond>) {
    let step = r.phase.as_str();
    let mut msg = format!(
        "moving keys from {} to {} shards (epoch {}): {step}, {}/{} keys copied",
        r.from, r.to, r.epoch, r.keys_moved, r.keys_total
    );
    if let Some(detail) = &r.message {
        msg = format!("{msg}; {detail}");
    }
    let available = cond(AVAILABLE, true, "Rebalancing", &msg);
    let progressing = cond(PROGRESSING, true, step, &msg);
    match problem {
        None => (
            Phase::Rebalancing,
            vec![
                available,
                progressing,
                cond(DEGRADED, false, "AsExpected", "the move is progressing"),
            ],
        ),
        Some((reason, message)) => (
            Phase::Degraded,
            vec![
                available,
                progressing,
                cond(DEGRADED, true, reason, message),
            ],
        ),
    }
}

fn cond(type_: &'static str, status: bool, reason: &'static str, message: &str) -> Cond {
    Cond {
        type_,
        status,
        reason,
        message: message.to_owned(),
    }
}

fn not_paused() -> Cond {
    cond(PAUSED, false, "Reconciling", "spec.paused is not set")
}

/// Sets one condition; its transition time moves only when its status changes.
fn set_condition(list: &mut Vec<Condition>, c: Cond, generation: Option<i64>, now: &Time) {
    let status = if c.status { "True" } else { "False" }.to_owned();
    let existing = list.iter_mut().find(|x| x.type_ == c.type_);
    let last_transition_time = match &existing {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => now.clone(),
    };
    let new = Condition {
        type_: c.type_.to_owned(),
        status,
        reason: c.reason.to_owned(),
        message: c.message,
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(old) => *old = new,
        None => list.push(new),
    }
}

/// The condition of that type, if present.
pub fn find<'a>(status: &'a KVStoreStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RebalancePhase;
    use k8s_openapi::jiff::Timestamp;
    use kvproto::Sharding;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn map() -> Option<TopologyStatus> {
        Some(TopologyStatus {
            epoch: 1,
            shards: 3,
            sharding: Sharding::Modulo,
        })
    }

    #[test]
    fn available_sets_all_three_conditions_and_the_selector() {
        let outcome = Outcome::Planned {
            report: Report::Available { shards: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let s = compute_status(None, "demo", Some(2), 3, &outcome, &at(10));
        assert_eq!(s.phase, Some(Phase::Available));
        assert_eq!(s.replicas, 3);
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.topology, map());
        assert_eq!(find(&s, AVAILABLE).unwrap().status, "True");
        assert_eq!(find(&s, DEGRADED).unwrap().status, "False");
        assert_eq!(find(&s, PAUSED).unwrap().status, "False");
        assert_eq!(
            s.selector.as_deref(),
            Some(
                "app.kubernetes.io/component=server,app.kubernetes.io/instance=demo,app.kubernetes.io/name=kvstore"
            )
        );
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let avail = Outcome::Planned {
            report: Report::Available { shards: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let s1 = compute_status(None, "demo", Some(1), 3, &avail, &at(10));
        let s2 = compute_status(Some(&s1), "demo", Some(1), 3, &avail, &at(20));
        assert_eq!(find(&s2, AVAILABLE).unwrap().last_transition_time, at(10));
        let lost = Outcome::Planned {
            report: Report::ShardsNotReady { ready: 2, want: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let s3 = compute_status(Some(&s2), "demo", Some(1), 2, &lost, &at(30));
        assert_eq!(find(&s3, AVAILABLE).unwrap().last_transition_time, at(30));
        assert_eq!(s3.phase, Some(Phase::Degraded));
    }

    #[test]
    fn a_shard_whose_only_volume_is_on_a_gone_node_is_degraded_saying_so() {
        let outcome = Outcome::Planned {
            report: Report::ShardsNotReady { ready: 2, want: 3 },
            topology: map(),
            serving: 3,
            lost: Some("shard demo-2's only copy was on node n3, which is gone".into()),
        };
        let s = compute_status(None, "demo", Some(1), 2, &outcome, &at(10));
        assert_eq!(s.phase, Some(Phase::Degraded));
        let degraded = find(&s, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "ShardVolumeLost")
        );
        assert!(degraded.message.contains("demo-2"), "{}", degraded.message);
        assert_eq!(find(&s, PROGRESSING).unwrap().status, "False");
        assert_eq!(s.topology, map(), "the map served is kept");
    }

    #[test]
    fn invalid_spec_and_pause_keep_what_the_store_serves() {
        let avail = Outcome::Planned {
            report: Report::Available { shards: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let s1 = compute_status(None, "demo", Some(1), 3, &avail, &at(10));
        let bad = Outcome::InvalidSpec {
            message: "port 8081 is the kvserver ops port".into(),
        };
        let s2 = compute_status(Some(&s1), "demo", Some(2), 3, &bad, &at(20));
        assert_eq!(s2.phase, Some(Phase::Degraded));
        assert_eq!(s2.replicas, 3);
        assert_eq!(s2.topology, map());
        let degraded = find(&s2, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "InvalidSpec")
        );
        let s3 = compute_status(Some(&s2), "demo", Some(3), 3, &Outcome::Paused, &at(30));
        assert_eq!(s3.phase, Some(Phase::Paused));
        assert_eq!(find(&s3, PAUSED).unwrap().status, "True");
    }

    fn moving(phase: RebalancePhase) -> RebalanceStatus {
        RebalanceStatus {
            from: 3,
            to: 5,
            phase,
            epoch: 2,
            keys_moved: 10,
            keys_total: 0,
            started_at: Some(at(5)),
            message: None,
        }
    }

    #[test]
    fn a_move_in_flight_is_progressing_with_its_phase_and_routing_count() {
        let outcome = Outcome::Rebalancing {
            rebalance: moving(RebalancePhase::Copy),
            topology: map(),
            serving: 5,
            problem: None,
        };
        let s = compute_status(None, "demo", Some(2), 5, &outcome, &at(10));
        assert_eq!(s.phase, Some(Phase::Rebalancing));
        assert_eq!(s.replicas, 5);
        assert_eq!(s.topology, map(), "committed only at Commit");
        assert_eq!(s.rebalance, Some(moving(RebalancePhase::Copy)));
        let progressing = find(&s, PROGRESSING).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", "Copy")
        );
        assert_eq!(find(&s, DEGRADED).unwrap().status, "False");
    }

    #[test]
    fn an_unreachable_shard_mid_move_is_degraded_and_keeps_the_move() {
        let outcome = Outcome::Rebalancing {
            rebalance: moving(RebalancePhase::Handoff),
            topology: map(),
            serving: 3,
            problem: Some((
                "ShardUnreachable",
                "shard demo-3 unreachable: refused".into(),
            )),
        };
        let s = compute_status(None, "demo", Some(2), 4, &outcome, &at(10));
        assert_eq!(s.phase, Some(Phase::Degraded));
        assert_eq!(s.rebalance.as_ref().unwrap().phase, RebalancePhase::Handoff);
        let degraded = find(&s, DEGRADED).unwrap();
        assert_eq!(degraded.reason, "ShardUnreachable");
        assert!(degraded.message.contains("demo-3"));
        assert_eq!(find(&s, PROGRESSING).unwrap().reason, "Handoff");
    }

    #[test]
    fn a_refused_join_is_degraded_unless_a_shard_is_below_quorum_or_a_name_is_taken() {
        let available = Outcome::Planned {
            report: Report::Available { shards: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let base = compute_status(None, "demo", Some(1), 3, &available, &at(10));
        let refused = "shard demo-0: copy demo-0 refused to join its group (x): delete its claim \
                       data-demo-0 to rebuild it empty";
        let mut report = ReplicationReport {
            refused: Some(refused.to_owned()),
            ..ReplicationReport::default()
        };
        let s = with_replication(base.clone(), &report, Some(1), &at(20));
        assert_eq!(s.phase, Some(Phase::Degraded));
        let degraded = find(&s, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "JoinRefused")
        );
        assert_eq!(degraded.message, refused);
        // Writes stopping on a shard say more than a volume to delete.
        report.below_quorum = Some("shard demo-1: 1 of 3 voters in sync, quorum 2".to_owned());
        let s = with_replication(base.clone(), &report, Some(1), &at(20));
        assert_eq!(find(&s, DEGRADED).unwrap().reason, "ShardBelowQuorum");
        report.conflicts = vec!["demo-r1".to_owned()];
        let s = with_replication(base, &report, Some(1), &at(20));
        assert_eq!(find(&s, DEGRADED).unwrap().reason, "NameConflict");
    }

    #[test]
    fn a_roll_in_progress_or_waiting_is_what_progressing_says() {
        use crate::status::{RollPod, RollStep};
        let available = Outcome::Planned {
            report: Report::Available { shards: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let mut base = compute_status(None, "demo", Some(1), 3, &available, &at(10));
        // No roll: untouched (factor 1 never has one).
        assert_eq!(with_roll(base.clone(), Some(1), &at(20)), base);

        base.roll = Some(RollStatus {
            revision: "demo-b,demo-r1-b,demo-r2-b".into(),
            pods: vec![RollPod {
                pod: "demo-r2-0".into(),
                shard: 0,
                step: RollStep::Deleting,
            }],
            phase: RollPhase::Rolling,
            message: None,
        });
        let s = with_roll(base.clone(), Some(1), &at(20));
        let p = find(&s, PROGRESSING).unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_str(), p.message.as_str()),
            (
                "True",
                "Rolling",
                "rolling the pods to revision demo-b,demo-r1-b,demo-r2-b: demo-r2-0 Deleting"
            )
        );
        assert_eq!(p.last_transition_time, at(20));
        assert_eq!(s.phase, Some(Phase::Available), "a roll keeps the phase");

        let waiting = RollStatus {
            revision: "demo-b".into(),
            pods: vec![],
            phase: RollPhase::Waiting,
            message: Some("waiting for a roll slot: 1 store rolls at once".into()),
        };
        base.roll = Some(waiting.clone());
        let s = with_roll(base.clone(), Some(1), &at(20));
        let p = find(&s, PROGRESSING).unwrap();
        assert_eq!(
            (p.reason.as_str(), p.message.as_str()),
            (
                "Rolling",
                "a roll to revision demo-b waits: waiting for a roll slot: 1 store rolls at once"
            )
        );

        // A pod the roll deleted is not ready: the roll explains the shard starting again.
        let not_ready = Outcome::Planned {
            report: Report::ShardsNotReady { ready: 2, want: 3 },
            topology: map(),
            serving: 3,
            lost: None,
        };
        let mut s = compute_status(None, "demo", Some(1), 2, &not_ready, &at(10));
        s.roll = base.roll.clone();
        // Waiting, the shard starting is other progress: it stays.
        let kept = with_roll(s.clone(), Some(1), &at(20));
        assert_eq!(find(&kept, PROGRESSING).unwrap().reason, "ShardsStarting");
        s.roll = Some(RollStatus {
            phase: RollPhase::Rolling,
            ..waiting
        });
        let rolled = with_roll(s, Some(1), &at(20));
        assert_eq!(find(&rolled, PROGRESSING).unwrap().reason, "Rolling");
        // Paused: nothing rolls, nothing is said of it.
        let mut paused = compute_status(None, "demo", Some(1), 3, &Outcome::Paused, &at(10));
        paused.roll = base.roll;
        assert_eq!(with_roll(paused.clone(), Some(1), &at(20)), paused);
    }
}
