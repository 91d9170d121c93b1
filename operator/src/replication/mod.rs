//! Replicated shards' membership (docs/replication.md section 7), pure: what the operator saw of
//! each shard's Raft group ([`view`]), how healthy each group is ([`health`]), and what to do
//! next ([`machine::decide`]). The controller observes (one `GET /v1/admin/raft/status` per
//! copy), decides here, then acts (the admin `POST`s, and the copies' StatefulSets).
//!
//! Guarantees, each tested in `tests`:
//! - every action is decided from the membership the group reports now, so resending it after
//!   an operator restart changes nothing that is already done;
//! - at most one membership change per shard at a time;
//! - nothing is removed or re-formed on what the operator cannot see: a group is never formed
//!   twice (an `init` needs every copy that answers to be outside any group, with no term nor
//!   log of it and copy 0 reporting none, and a shard whose group was seen formed is never
//!   initialized again), a voter is removed only for a copy that
//!   answered with a new node ID (its volume was replaced) or for a lowered factor with every
//!   remaining voter in sync;
//! - a new copy's stale predecessor (same pod, old node ID) leaves the group before the new one
//!   joins, so one pod never counts as two voters;
//! - a copy 0 on a new volume (no group, while the others run it) is `join`ed first, with the
//!   member entry add-learner names next; a refused join is final (its claim must go).
//!
//! Layers, each using only those above it: `view`, `health`, `machine`, `report` (what the
//! status says of the groups: `status.replication`, the Degraded and Progressing messages).

pub mod health;
pub mod machine;
pub mod report;
pub mod view;

#[cfg(test)]
mod tests;

pub use health::{Health, IN_SYNC_LAG, PROMOTE_LAG, health};
pub use machine::{Action, ShardStep, decide, steps};
pub use report::report;
pub use view::{CopyView, Observed, ShardView, View};
