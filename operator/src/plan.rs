//! The pure decision of a reconcile: given the spec, the shard map the servers acknowledged and
//! the StatefulSet as observed, how many pods to run, which shard map to push, and what to report.
//!
//! A change between two non-zero shard counts is a rebalance: the controller hands it to the
//! state machine in [`crate::rebalance`] before this plan is made, so here it only reports a
//! move that is pending (`rebalance_pending`, e.g. a stopped store that keeps a move).

use kvproto::{Sharding, Topology};

use crate::status::{Phase, TopologyStatus};
use crate::validate::Instance;

/// The StatefulSet as the reconcile saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObservedStatefulSet {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.replicas`: pods that exist.
    pub current: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// How many leading ordinals `0..started` have a started kvserver (its startup probe passed)
    /// and are not being deleted: they answer admin calls. A server waiting for its first map
    /// (`--require-topology`) is started, and not ready until it gets it; with OrderedReady the
    /// next pod is only created once it is ready, so maps go to started pods, not ready ones.
    pub started: i32,
}

impl ObservedStatefulSet {
    /// True when exactly `n` pods exist, all ready, and the StatefulSet asks for `n`.
    pub fn all_ready(&self, n: i32) -> bool {
        self.desired == n && self.current == n && self.ready == n
    }

    /// The servers of `0..n` a map can be pushed to now: the started ones.
    pub fn reachable(&self, n: i32) -> u32 {
        u32::try_from(self.started.min(n)).unwrap_or(0)
    }
}

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The StatefulSet, if it exists.
    pub statefulset: Option<ObservedStatefulSet>,
    /// The shard map every server acknowledged (`status.topology`).
    pub topology: Option<TopologyStatus>,
    /// The phase last reported: pods that are not ready yet are "starting" until the store
    /// has been Available once, and "not ready" afterwards.
    pub phase: Option<Phase>,
}

/// What the reconcile must do and report.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Replica count of the StatefulSet to apply.
    pub statefulset_replicas: i32,
    /// Shard map to push now (idempotent on the servers), to servers `0..push_to`: every
    /// started one, so that a new server gets the map that lets it become ready.
    pub push: Option<Topology>,
    pub push_to: u32,
    /// What the status should say once the plan has run.
    pub report: Report,
}

/// The state to report, turned into phase and conditions by [`crate::status_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Pods are starting; `ready` of `want` are ready.
    Starting { ready: i32, want: i32 },
    /// Every shard is ready and serves the map.
    Available { shards: i32 },
    /// The store served before and some shards are not ready now.
    ShardsNotReady { ready: i32, want: i32 },
    /// spec.replicas is 0 and pods are still stopping.
    Stopping { remaining: i32 },
    /// spec.replicas is 0 and no pod runs.
    Stopped,
    /// spec.replicas differs from the served shard count; the rebalance has not started yet.
    RebalancePending { serving: i32, wanted: i32 },
}

/// Decides the plan (see the module docs).
pub fn plan(inst: &Instance, observed: &Observed) -> Plan {
    let wanted = inst.spec.replicas;
    let sts = observed.statefulset.unwrap_or_default();
    match observed.topology {
        _ if wanted == 0 => Plan {
            statefulset_replicas: 0,
            push: None,
            push_to: 0,
            report: if sts.current == 0 && sts.desired == 0 {
                Report::Stopped
            } else {
                Report::Stopping {
                    remaining: sts.current,
                }
            },
        },
        None => Plan {
            statefulset_replicas: wanted,
            // The first map, to each pod once it has started.
            push: (sts.desired == wanted && sts.reachable(wanted) > 0)
                .then(|| stable(inst, 1, inst.spec.sharding, wanted)),
            push_to: sts.reachable(wanted),
            report: if sts.all_ready(wanted) {
                Report::Available { shards: wanted }
            } else {
                Report::Starting {
                    ready: sts.ready,
                    want: wanted,
                }
            },
        },
        Some(map) if map.shards == wanted => Plan {
            statefulset_replicas: wanted,
            // Re-pushing the acknowledged map heals a shard whose volume was replaced, and
            // reaches the pods of a first map that were not started yet.
            push: (sts.reachable(wanted) > 0)
                .then(|| stable(inst, map.epoch, map.sharding, wanted)),
            push_to: sts.reachable(wanted),
            report: if sts.all_ready(wanted) {
                Report::Available { shards: wanted }
            } else if sts.desired < wanted
                || matches!(observed.phase, None | Some(Phase::Pending | Phase::Stopped))
            {
                Report::Starting {
                    ready: sts.ready,
                    want: wanted,
                }
            } else {
                Report::ShardsNotReady {
                    ready: sts.ready,
                    want: wanted,
                }
            },
        },
        Some(map) => rebalance_pending(inst, map, sts),
    }
}

/// The plan for `spec.replicas` != the served count: keep serving the acknowledged map until
/// the controller's state machine takes over (it decides before planning, see
/// [`crate::rebalance::machine::decide`]; only a stopped store that keeps a move reaches here).
fn rebalance_pending(inst: &Instance, map: TopologyStatus, sts: ObservedStatefulSet) -> Plan {
    Plan {
        statefulset_replicas: map.shards,
        push: (sts.reachable(map.shards) > 0)
            .then(|| stable(inst, map.epoch, map.sharding, map.shards)),
        push_to: sts.reachable(map.shards),
        report: Report::RebalancePending {
            serving: map.shards,
            wanted: inst.spec.replicas,
        },
    }
}

/// The stable map over `shards` servers.
pub fn stable(inst: &Instance, epoch: i64, sharding: Sharding, shards: i32) -> Topology {
    Topology::stable(
        u64::try_from(epoch).unwrap_or(0),
        sharding,
        peers(inst, shards),
    )
}

/// The base URLs of servers `0..n`, addressed through the headless Service (`https://` under
/// `spec.tls`, which is fixed at creation: a map's peers never change scheme).
pub fn peers(inst: &Instance, n: i32) -> Vec<String> {
    (0..u32::try_from(n).unwrap_or(0))
        .map(|i| kvproto::peer_url_tls(&inst.name, &inst.namespace, i, inst.port(), inst.tls()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::instance;

    fn observed(
        sts: Option<(i32, i32, i32)>,
        shards: Option<i32>,
        phase: Option<Phase>,
    ) -> Observed {
        Observed {
            statefulset: sts.map(|(desired, current, ready)| ObservedStatefulSet {
                desired,
                current,
                ready,
                started: ready,
            }),
            topology: shards.map(|shards| TopologyStatus {
                epoch: 1,
                shards,
                sharding: Sharding::Modulo,
            }),
            phase,
        }
    }

    const AVAILABLE: Option<Phase> = Some(Phase::Available);

    #[test]
    fn each_server_gets_the_first_map_as_soon_as_it_has_started() {
        // `--require-topology`: started, not ready until the map arrives; OrderedReady creates
        // the next pod only then.
        let inst = instance("demo", 3);
        let mut o = observed(Some((3, 1, 0)), None, None);
        assert_eq!(plan(&inst, &o).push, None, "no server has started");
        if let Some(sts) = o.statefulset.as_mut() {
            sts.started = 1;
        }
        let p = plan(&inst, &o);
        assert_eq!(p.push.map(|m| (m.epoch, m.shards)), Some((1, 3)));
        assert_eq!(p.push_to, 1);
        assert_eq!(p.report, Report::Starting { ready: 0, want: 3 });
    }

    #[test]
    fn a_new_store_starts_its_pods_then_pushes_the_first_map() {
        let inst = instance("demo", 3);
        let p = plan(&inst, &observed(None, None, None));
        assert_eq!(p.statefulset_replicas, 3);
        assert_eq!(p.push, None);
        assert_eq!(p.report, Report::Starting { ready: 0, want: 3 });

        let p = plan(
            &inst,
            &observed(Some((3, 3, 3)), None, Some(Phase::Pending)),
        );
        let pushed = p.push.unwrap();
        assert_eq!((pushed.epoch, pushed.shards), (1, 3));
        assert_eq!(pushed.peers[2], "http://demo-2.demo.default.svc:80");
        assert_eq!(p.report, Report::Available { shards: 3 });
    }

    #[test]
    fn scale_to_zero_stops_and_keeps_the_map() {
        let inst = instance("demo", 0);
        let p = plan(&inst, &observed(Some((3, 3, 3)), Some(3), AVAILABLE));
        assert_eq!(p.statefulset_replicas, 0);
        assert_eq!(p.push, None);
        assert_eq!(p.report, Report::Stopping { remaining: 3 });
        let p = plan(
            &inst,
            &observed(Some((0, 0, 0)), Some(3), Some(Phase::Stopped)),
        );
        assert_eq!(p.report, Report::Stopped);
    }

    #[test]
    fn back_to_the_same_count_starts_and_serves_the_same_map() {
        let inst = instance("demo", 3);
        let p = plan(
            &inst,
            &observed(Some((0, 0, 0)), Some(3), Some(Phase::Stopped)),
        );
        assert_eq!(p.statefulset_replicas, 3);
        assert_eq!(p.report, Report::Starting { ready: 0, want: 3 });
        // OrderedReady brings the pods one at a time: still starting, not degraded.
        let p = plan(
            &inst,
            &observed(Some((3, 1, 0)), Some(3), Some(Phase::Pending)),
        );
        assert_eq!(p.report, Report::Starting { ready: 0, want: 3 });
        let p = plan(
            &inst,
            &observed(Some((3, 3, 3)), Some(3), Some(Phase::Pending)),
        );
        assert_eq!(p.push.unwrap().epoch, 1);
    }

    #[test]
    fn a_lost_pod_of_an_available_store_is_reported_and_the_others_keep_their_map() {
        let inst = instance("demo", 3);
        let p = plan(&inst, &observed(Some((3, 3, 2)), Some(3), AVAILABLE));
        // Pods 0 and 1 run (the same map again changes nothing); pod 2 gets it once started.
        assert_eq!(p.push.map(|m| m.epoch), Some(1));
        assert_eq!(p.push_to, 2);
        assert_eq!(p.report, Report::ShardsNotReady { ready: 2, want: 3 });
    }

    #[test]
    fn a_count_change_keeps_the_serving_count() {
        let inst = instance("demo", 5);
        let p = plan(&inst, &observed(Some((3, 3, 3)), Some(3), AVAILABLE));
        assert_eq!(p.statefulset_replicas, 3);
        let expected = Report::RebalancePending {
            serving: 3,
            wanted: 5,
        };
        assert_eq!(p.report, expected);
    }
}
