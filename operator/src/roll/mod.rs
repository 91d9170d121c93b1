//! The roller of a replicated store's pods (docs/replication.md section 9), pure: its
//! StatefulSets roll `OnDelete`, so a changed template only marks pods outdated, and the
//! operator replaces them itself. What it saw ([`view`]) and what to do next ([`plan::plan`]).
//! The controller observes (the StatefulSets' update revisions, the pods, the groups), plans
//! here, writes `status.roll` and only then acts (a transfer of leadership, a pod deleted).
//!
//! Guarantees, each tested in `tests`:
//! - nothing rolls while a shard's membership is changing or a rebalance is pending or runs;
//! - a pod goes only while its shard keeps a quorum of in-sync voters without it (canRoll),
//!   counting only voters that answered this reconcile and whose pod is Ready and not being
//!   deleted; a delete resent after a restart is judged again (a pod that leads by now hands
//!   leadership over first);
//! - a pod is updated only when its revision and its own StatefulSet's (seen by that
//!   StatefulSet's controller) are both known and equal;
//! - per shard one pod at a time, followers first (the most lagged first), the leader last,
//!   after leadership moved to an in-sync copy that already runs the new template;
//! - the next pod of a shard waits for the new pod to be Ready and in sync;
//! - every step is decided again from `status.roll` and what the store reports now, so a
//!   restarted operator resumes where the last one stopped, and a resent step is idempotent.
//!
//! Layers, each using only those above it: `view`, `plan`.

pub mod plan;
pub mod view;

#[cfg(test)]
mod tests;

pub use plan::{RollAction, RollPlan, hold_leadership, holds, plan, queued, started};
pub use view::{MemberState, PodState, RollView, ShardState, shard_state};
