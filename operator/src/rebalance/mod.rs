//! Changing between two non-zero shard counts. Moving keys is not implemented yet (issue 6), so
//! this keeps the StatefulSet at the served count — no key is ever lost silently — and reports
//! the situation honestly.
//!
//! The rebalance state machine (docs/rebalance.md) replaces this function: `Observed` gains the
//! persisted `status.rebalance`, the plan returns the next [`RebalanceStatus`] (written before its
//! step runs, so a restarted operator resumes it) and the step for the controller to execute
//! through [`ShardAdmin`] (push the Handoff/Copy/stable maps, copy, clean up, check drained),
//! and [`Report`] gains a Rebalancing variant for the phase and conditions.
//!
//! [`RebalanceStatus`]: crate::status::RebalanceStatus
//! [`ShardAdmin`]: crate::shards::ShardAdmin

use crate::plan::{ObservedStatefulSet, Plan, Report, stable};
use crate::status::TopologyStatus;
use crate::validate::Instance;

/// Plan for `spec.replicas` != the served shard count `map.shards`, both non-zero.
pub fn plan(inst: &Instance, map: TopologyStatus, sts: ObservedStatefulSet) -> Plan {
    Plan {
        statefulset_replicas: map.shards,
        push: sts
            .all_ready(map.shards)
            .then(|| stable(inst, map.epoch, map.sharding, map.shards)),
        report: Report::RebalanceNotImplemented {
            serving: map.shards,
            wanted: inst.spec.replicas,
        },
    }
}
