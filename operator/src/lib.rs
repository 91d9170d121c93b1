//! The kvstore operator: the `KVStore` API and the controller that provisions, scales and
//! reports on a sharded key/value store.
//!
//! # Layout
//! - [`crd`], [`status`]: the custom resource's spec and status types (the CRD is generated).
//! - [`crdgen`]: the CRD as YAML (`kvstore-operator crd`, committed in `crds/`).
//! - [`labels`]: names and labels of the children.
//! - [`validate`]: pure check of a spec into an [`validate::Instance`].
//! - [`grace`]: how a shard pod spends its termination grace period (preStop, drain, sync).
//! - [`build`]: pure builders of the Service, StatefulSet, PodDisruptionBudget and token Secret.
//! - [`placement`]: pure check of whether a shard's only volume is on a node that is gone.
//! - [`plan`]: pure decision of a reconcile (pods to run, shard map to push, what to report),
//!   including the wait before a move starts.
//! - [`rebalance`]: moving keys between two non-zero shard counts: the state machine's pure
//!   decisions, the shard maps, the steps through [`shards::DynShardAdmin`] and the copy engine;
//!   the controller checkpoints each phase in `status.rebalance` before running it.
//! - [`replication`]: replicated shards' membership: what each group reports, its health, and
//!   the pure state machine deciding the admin calls (init, learners, voters, leadership) and
//!   when surplus copies may go.
//! - [`roll`]: the roller of a replicated store's pods (OnDelete): the pure planner of which pod
//!   goes next (canRoll, followers first, the leader last) and how a roll resumes.
//! - [`status_report`]: pure [`status_report::compute_status`] (phase, conditions) from a
//!   reconcile's outcome.
//! - [`shards`]: admin calls to the shard servers behind an async trait, the one helper that
//!   calls every shard, and [`shards::ShardError`].
//! - [`controller`]: the reconcile (ending in one status write), error policy and Controller
//!   wiring; [`context`] is what every reconcile shares; [`error`] the error type and its
//!   categories.
//!
//! A module uses only modules below it: none imports one that imports it back.
//! - [`metrics`], [`ops_server`], [`telemetry`], [`leader`], [`cli`], [`runtime`]: running the
//!   operator process.
#![forbid(unsafe_code)]

pub mod build;
pub mod cli;
pub mod context;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod error;
pub mod grace;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod ops_server;
pub mod placement;
pub mod plan;
pub mod rebalance;
pub mod replication;
pub mod roll;
pub mod runtime;
pub mod shards;
pub mod status;
pub mod status_report;
pub mod telemetry;
pub mod validate;

#[cfg(test)]
mod fixtures;

pub use crd::{KVStore, KVStoreSpec};
pub use error::{Error, Result};
pub use status::KVStoreStatus;
