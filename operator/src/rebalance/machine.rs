//! The pure decisions of the rebalance state machine: whether a move starts, is retargeted,
//! cancelled or resumed, which phase follows which, and what the StatefulSet and the clients
//! see in each phase. Every input is persisted state, so a restarted operator decides the same.

use crate::status::{RebalancePhase, RebalanceStatus, TopologyStatus};

/// What a reconcile does about moving keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No move in flight or wanted, or the store is stopped (a move in flight is kept and
    /// resumes when the store starts again): the ordinary plan applies.
    Idle,
    /// The move is abandoned before anything was pushed: forget it, the ordinary plan applies.
    Cancel,
    /// Run the move in this state; persist it first when it differs from the persisted one.
    Run(RebalanceStatus),
}

/// Decides from `spec.replicas`, the acknowledged map and the persisted move.
pub fn decide(
    wanted: i32,
    topology: Option<TopologyStatus>,
    persisted: Option<&RebalanceStatus>,
) -> Decision {
    if wanted <= 0 {
        return Decision::Idle;
    }
    match (persisted, topology) {
        (None, Some(map)) if map.shards > 0 && map.shards != wanted => {
            Decision::Run(RebalanceStatus {
                from: map.shards,
                to: wanted,
                phase: RebalancePhase::ScalingUp,
                epoch: map.epoch + 1,
                keys_moved: 0,
                keys_total: 0,
                started_at: None,
                message: None,
            })
        }
        (None, _) => Decision::Idle,
        // Nothing of the new map was pushed yet: follow the new count.
        (Some(r), _) if r.phase == RebalancePhase::ScalingUp && r.to != wanted => {
            if wanted == r.from {
                Decision::Cancel
            } else {
                Decision::Run(RebalanceStatus {
                    to: wanted,
                    message: None,
                    ..r.clone()
                })
            }
        }
        // Past Handoff the servers know the new map: finish it; the next move follows.
        (Some(r), _) => Decision::Run(r.clone()),
    }
}

/// The phase after `r.phase`, or `None` when the move is complete.
pub fn next_phase(r: &RebalanceStatus) -> Option<RebalancePhase> {
    use RebalancePhase::*;
    let shrinking = r.to < r.from;
    match r.phase {
        ScalingUp => Some(Handoff),
        Handoff => Some(Copy),
        Copy => Some(Commit),
        Commit => Some(Cleanup),
        Cleanup if shrinking => Some(ScalingDown),
        Cleanup => None,
        ScalingDown => Some(DeletingPVCs),
        DeletingPVCs => None,
    }
}

/// Servers involved in the move: the larger count.
pub fn span(r: &RebalanceStatus) -> i32 {
    r.from.max(r.to)
}

/// The shard count clients route over in this phase (`status.replicas`).
pub fn serving(r: &RebalanceStatus) -> i32 {
    match r.phase {
        RebalancePhase::ScalingUp | RebalancePhase::Handoff => r.from,
        _ => r.to,
    }
}

/// The StatefulSet's replicas in this phase. In ScalingDown the step itself shrinks it once
/// the removed shards are proven empty, so an already shrunk StatefulSet stays shrunk.
pub fn statefulset_replicas(r: &RebalanceStatus, observed_desired: Option<i32>) -> i32 {
    match r.phase {
        RebalancePhase::ScalingDown if observed_desired.is_some_and(|d| d <= r.to) => r.to,
        RebalancePhase::DeletingPVCs => r.to,
        _ => span(r),
    }
}

/// The acknowledged map once the move is committed.
pub fn committed(r: &RebalanceStatus, before: TopologyStatus) -> TopologyStatus {
    TopologyStatus {
        epoch: r.epoch,
        shards: r.to,
        sharding: before.sharding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RebalancePhase::*;
    use kvproto::Sharding;

    fn map(epoch: i64, shards: i32) -> Option<TopologyStatus> {
        Some(TopologyStatus {
            epoch,
            shards,
            sharding: Sharding::Modulo,
        })
    }

    fn moving(from: i32, to: i32, phase: RebalancePhase) -> RebalanceStatus {
        RebalanceStatus {
            from,
            to,
            phase,
            epoch: 2,
            keys_moved: 0,
            keys_total: 0,
            started_at: None,
            message: None,
        }
    }

    fn run(d: Decision) -> RebalanceStatus {
        match d {
            Decision::Run(r) => r,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn a_new_count_starts_a_move_in_scaling_up_at_the_next_epoch() {
        let r = run(decide(5, map(1, 3), None));
        assert_eq!((r.from, r.to, r.phase, r.epoch), (3, 5, ScalingUp, 2));
        assert_eq!(decide(3, map(1, 3), None), Decision::Idle);
        assert_eq!(decide(3, None, None), Decision::Idle, "first map: no move");
    }

    #[test]
    fn each_phase_leads_to_the_next_and_growth_skips_the_shrink_phases() {
        let mut grow = moving(3, 5, ScalingUp);
        let mut seen = vec![grow.phase];
        while let Some(p) = next_phase(&grow) {
            grow.phase = p;
            seen.push(p);
        }
        assert_eq!(seen, [ScalingUp, Handoff, Copy, Commit, Cleanup]);
        let mut shrink = moving(5, 2, ScalingUp);
        let mut seen = vec![shrink.phase];
        while let Some(p) = next_phase(&shrink) {
            shrink.phase = p;
            seen.push(p);
        }
        assert_eq!(
            seen,
            [
                ScalingUp,
                Handoff,
                Copy,
                Commit,
                Cleanup,
                ScalingDown,
                DeletingPVCs
            ]
        );
    }

    #[test]
    fn a_change_during_scaling_up_retargets_or_cancels() {
        let r = moving(3, 5, ScalingUp);
        assert_eq!(run(decide(4, map(1, 3), Some(&r))).to, 4);
        assert_eq!(run(decide(4, map(1, 3), Some(&r))).epoch, 2);
        assert_eq!(decide(3, map(1, 3), Some(&r)), Decision::Cancel);
    }

    #[test]
    fn a_change_after_handoff_finishes_the_current_move_first() {
        for phase in [Handoff, Copy, Commit, Cleanup, ScalingDown, DeletingPVCs] {
            let r = moving(5, 3, phase);
            assert_eq!(run(decide(2, map(1, 5), Some(&r))), r, "{phase:?}");
            assert_eq!(run(decide(5, map(1, 5), Some(&r))), r, "{phase:?}");
        }
        // Once done, the next reconcile starts the next move from the committed map.
        let next = run(decide(2, map(2, 3), None));
        assert_eq!((next.from, next.to, next.epoch), (3, 2, 3));
    }

    #[test]
    fn every_persisted_phase_resumes_as_it_was() {
        for phase in [
            ScalingUp,
            Handoff,
            Copy,
            Commit,
            Cleanup,
            ScalingDown,
            DeletingPVCs,
        ] {
            let r = RebalanceStatus {
                keys_moved: 17,
                ..moving(3, 2, phase)
            };
            assert_eq!(run(decide(2, map(1, 3), Some(&r))), r);
        }
    }

    #[test]
    fn scale_to_zero_mid_move_stops_and_keeps_the_move() {
        let r = moving(3, 5, Copy);
        assert_eq!(decide(0, map(1, 3), Some(&r)), Decision::Idle);
        assert_eq!(run(decide(5, map(1, 3), Some(&r))), r, "resumes");
        // Stopping during ScalingUp does not retarget to 0.
        let r = moving(3, 5, ScalingUp);
        assert_eq!(decide(0, map(1, 3), Some(&r)), Decision::Idle);
        assert_eq!(run(decide(5, map(1, 3), Some(&r))), r);
    }

    #[test]
    fn clients_switch_to_the_new_count_at_copy_and_pods_shrink_last() {
        let mut r = moving(5, 2, Handoff);
        assert_eq!(serving(&r), 5);
        assert_eq!(statefulset_replicas(&r, Some(5)), 5);
        r.phase = Copy;
        assert_eq!(serving(&r), 2);
        assert_eq!(statefulset_replicas(&r, Some(5)), 5);
        r.phase = ScalingDown;
        assert_eq!(statefulset_replicas(&r, Some(5)), 5, "not before drained");
        assert_eq!(statefulset_replicas(&r, Some(2)), 2, "already shrunk");
        r.phase = DeletingPVCs;
        assert_eq!(statefulset_replicas(&r, Some(5)), 2);
        let grow = moving(3, 5, ScalingUp);
        assert_eq!(statefulset_replicas(&grow, Some(3)), 5);
    }
}
