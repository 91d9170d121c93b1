//! The kvstore operator: the `KVStore` API and the controller that provisions, scales and
//! reports on a sharded key/value store.
//!
//! # Layout
//! - [`crd`], [`status`]: the custom resource's spec and status types (the CRD is generated).
//! - [`crdgen`]: the CRD as YAML (`kvstore-operator crd`, committed in `crds/`).
//! - [`labels`]: names and labels of the children.
//! - [`validate`]: pure check of a spec into an [`validate::Instance`].
//! - [`build`]: pure builders of the Service, StatefulSet, PodDisruptionBudget and token Secret.
//! - [`plan`]: pure decision of a reconcile (pods to run, shard map to push, what to report).
//! - [`rebalance`]: moving keys between two non-zero shard counts: the state machine's pure
//!   decisions, the shard maps, the steps through [`shards::ShardAdmin`] and the copy engine; the
//!   controller persists each phase in `status.rebalance` before running it.
//! - [`report`]: pure status (phase, conditions) from a reconcile's outcome.
//! - [`shards`]: admin calls to the shard servers, behind a trait.
//! - [`controller`]: the reconcile, error policy and Controller wiring; [`context`] is what
//!   every reconcile shares; [`error`] the error type and its categories.
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
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod ops_server;
pub mod plan;
pub mod rebalance;
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
