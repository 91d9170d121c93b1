//! Moving keys between two non-zero shard counts (docs/rebalance.md): the state machine kept in
//! `status.rebalance`, run by the controller one persisted phase at a time.
//!
//! - [`machine`]: pure decisions (start, retarget, cancel, resume; next phase; what the
//!   StatefulSet and the clients see in each phase);
//! - [`maps`]: the shard maps a move pushes;
//! - [`steps`]: the shard side of each phase through [`ShardAdmin`];
//! - [`copy`]: the copy engine (bulk export, grouped if-absent imports);
//! - [`hooks`]: annotations that let end-to-end tests act mid-move.
//!
//! The controller (`controller::rebalance`) persists each phase before running it, so a restarted
//! operator resumes where the last one stopped; every step is idempotent.
//!
//! [`ShardAdmin`]: crate::shards::ShardAdmin

pub mod copy;
pub mod hooks;
pub mod machine;
pub mod maps;
pub mod steps;

use crate::plan::{ObservedStatefulSet, Plan, Report, stable};
use crate::status::TopologyStatus;
use crate::validate::Instance;

/// The ordinary plan for `spec.replicas` != the served count: keep serving the acknowledged map
/// until the controller's state machine takes over (it does so before planning, see
/// [`machine::decide`]).
pub fn plan(inst: &Instance, map: TopologyStatus, sts: ObservedStatefulSet) -> Plan {
    Plan {
        statefulset_replicas: map.shards,
        push: sts
            .all_ready(map.shards)
            .then(|| stable(inst, map.epoch, map.sharding, map.shards)),
        report: Report::RebalancePending {
            serving: map.shards,
            wanted: inst.spec.replicas,
        },
    }
}
