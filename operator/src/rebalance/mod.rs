//! Moving keys between two non-zero shard counts (docs/rebalance.md): the state machine kept in
//! `status.rebalance`, run by the controller one persisted phase at a time.
//!
//! - [`machine`]: pure decisions (start, retarget, cancel, resume; next phase; what the
//!   StatefulSet and the clients see in each phase);
//! - [`maps`]: the shard maps a move pushes;
//! - [`steps`]: the shard side of each phase through [`DynShardAdmin`];
//! - [`copy`]: the copy engine (bulk export, grouped if-absent imports);
//! - [`hooks`]: annotations that let end-to-end tests act mid-move.
//!
//! The controller (`controller::rebalance`) persists each phase before running it, so a restarted
//! operator resumes where the last one stopped; every step is idempotent.
//!
//! [`DynShardAdmin`]: crate::shards::DynShardAdmin

pub mod copy;
pub mod hooks;
pub mod machine;
pub mod maps;
pub mod steps;
