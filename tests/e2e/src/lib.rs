//! Harness for the end-to-end suites. They run against the cluster that `KUBECONFIG` names (the
//! project's own local cluster under `make test`), with the operator installed by its Helm chart
//! and the project's images; every data-plane check runs in real client pods.
//!
//! # Layout
//! - [`cluster`]: connecting, and failing loudly when there is no cluster.
//! - [`namespace`]: a throw-away namespace per test that dumps its state when the test fails.
//! - [`wait`]: bounded polling that fails with what it was waiting for.
//! - [`pods`]: running client pods and reading their logs.
//! - [`stores`]: creating and observing `KVStore`s.
//! - [`screen`]: parsing the book client's screen out of a pod log.
//! - [`load`]: the load generator as a pod, and the no-lost-write verdict on its JSON report
//!   (kvclient's own `LoadReport`).
//! - [`shard_http`]: one shard's pod IP directly (its topology, its keys, its own status codes).
//! - [`replicas`]: a replicated store's copies: their pods, their Raft status (the leader of
//!   each shard, copies in sync) and the operator's `status.replication`.
//! - [`replication_suite`]: what the replication suites share: one factor-3 store per test, and
//!   per case its client pods (load, history, screen), started before a fault and judged after.
//! - [`rolls`]: a roll of a replicated store's pods watched from outside (order, copies out).
//! - [`linearizability`]: a load's client history out of its pod log, checked by the Porcupine
//!   checker of `tests/linearizability`.
//! - [`summary`]: each case's figures line, printed and kept for the run's summary.
//! - [`host`]: the node's processes: finding a pod's or container's in `/proc` and SIGKILLing them.
//! - [`volumes`]: fillable tmpfs volumes offered as pre-bound PVs (the disk-full case).
//! - [`netcut`]: a pod cut off the network by iptables rules inside its network namespace.
//! - [`cordon`]: a node cordoned for a test, uncordoned after it whatever happens.
//! - [`operator_pod`]: the operator's pod: its process SIGKILLed, and back Ready.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod cordon;
pub mod host;
pub mod linearizability;
pub mod load;
pub mod namespace;
pub mod netcut;
pub mod operator_pod;
pub mod pods;
pub mod replicas;
pub mod replication_suite;
pub mod rolls;
pub mod screen;
pub mod shard_http;
pub mod stores;
pub mod summary;
pub mod volumes;
pub mod wait;

/// Errors of the harness; a test fails with one of these, never silently.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no Kubernetes cluster: {0}. Run `make cluster-up` and `eval \"$(make -s cluster-env)\"`, or set KUBECONFIG"
    )]
    NoCluster(String),
    #[error("timed out after {secs}s waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("kvserver: {0}")]
    Client(#[from] kvclient::Error),
    #[error("{0}")]
    Check(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("yaml: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fails a check with a message.
pub fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::Check(msg())) }
}
