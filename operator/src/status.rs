//! The `KVStore` status: what the store serves now, its conditions, and the rebalance in flight.
//! Field docs are one line per paragraph, as in [`crate::crd`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kvproto::Sharding;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a KVStore, written by the operator only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KVStoreStatus {
    /// Number of shards clients must route over now: the shard count of the map every server acknowledged (kept while stopped, 0 before the first map). The scale subresource reports it as the current replica count.
    #[serde(default)]
    pub replicas: i32,

    /// Shard pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the shard pods, for the scale subresource and autoscalers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// One-word summary of the store's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Available, Progressing, Degraded and ReconciliationPaused, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The shard map last acknowledged by every server; absent before the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologyStatus>,

    /// The key move in flight, when the shard count changes; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,

    /// The copies of each shard and their Raft groups (`spec.replication`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,

    /// The roll of a replicated store's pods to a changed template, while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll: Option<RollStatus>,
}

/// A replicated store's pods replaced by the operator (its StatefulSets roll OnDelete): one copy of a shard at a time, only while the shard keeps a quorum of in-sync voters without it, a leader last. Each step is written here before it runs, so a restarted operator resumes it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollStatus {
    /// The StatefulSets' update revisions the pods roll to, copy 0's first, comma-separated.
    pub revision: String,
    /// The pods being replaced now, at most one per shard (shards roll in parallel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<RollPod>,
    /// Rolling, or Waiting for the store to allow it (every shard Stable, no rebalance) or for
    /// a roll slot (`--max-concurrent-rolls`: other stores roll).
    pub phase: RollPhase,
    /// What the roll waits for, or why a pod may not go yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One pod being replaced.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollPod {
    /// The pod (`NAME-i` or `NAME-rK-i`).
    pub pod: String,
    /// Its shard.
    pub shard: i32,
    /// Where its replacement stands.
    pub step: RollStep,
}

/// The steps of one pod's replacement.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RollStep {
    /// The pod leads its shard: leadership moves to an in-sync, already updated copy first.
    TransferringLeader,
    /// The pod is being deleted (its StatefulSet recreates it from the new template).
    Deleting,
    /// The new pod must be Ready and in sync before the shard's next pod goes.
    Replacing,
}

/// Where a roll stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RollPhase {
    /// Pods are being replaced.
    #[default]
    Rolling,
    /// Pods are outdated but the store does not allow a roll now, or other stores hold every
    /// roll slot (`--max-concurrent-rolls`).
    Waiting,
}

/// The copies of each shard, as their groups report them.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The replication factor the operator works towards (`spec.replication.factor`).
    pub factor: i32,
    /// Copies in sync on the least replicated shard over the factor (`2/3`); `-` at factor 1.
    pub summary: String,
    /// One entry per shard of a replicated store, in shard order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardReplicationStatus>,
}

/// One shard's group.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardReplicationStatus {
    /// The shard (the pods' ordinal).
    pub shard: i32,
    /// The pod that leads the group; absent during an election or while no copy answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Voters within 1000 entries of the leader, the leader included.
    #[serde(default)]
    pub in_sync: i32,
    /// Pods that vote in the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<String>,
    /// Pods that receive the log without a vote (catching up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learners: Vec<String>,
    /// Entries the furthest member is behind the leader's last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<i64>,
    /// Where the shard's membership stands.
    pub phase: ShardPhase,
    /// What it waits for, or what needs a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a shard's membership stands (docs/replication.md section 7).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ShardPhase {
    /// Every wanted copy votes; copy 0 leads when in sync.
    Stable,
    /// The group is being formed on copy 0.
    Initializing,
    /// A copy joins as a learner.
    AddingLearner,
    /// Learners receive the log (or a snapshot) before they may vote.
    CatchingUp,
    /// Caught-up learners become voters.
    Promoting,
    /// Leadership moves (back to copy 0, or off a copy that leaves).
    TransferringLeader,
    /// Copies beyond the factor leave the group.
    Lowering,
    /// A copy whose volume was replaced (new node ID) is swapped for its old ID.
    Replacing,
    /// No copy leads right now.
    Electing,
    /// A wanted copy does not answer yet.
    Waiting,
}

impl ShardPhase {
    /// The name written to the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardPhase::Stable => "Stable",
            ShardPhase::Initializing => "Initializing",
            ShardPhase::AddingLearner => "AddingLearner",
            ShardPhase::CatchingUp => "CatchingUp",
            ShardPhase::Promoting => "Promoting",
            ShardPhase::TransferringLeader => "TransferringLeader",
            ShardPhase::Lowering => "Lowering",
            ShardPhase::Replacing => "Replacing",
            ShardPhase::Electing => "Electing",
            ShardPhase::Waiting => "Waiting",
        }
    }
}

/// One-word summary of the store's state.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Pods are starting; no shard map yet.
    Pending,
    /// Every shard is ready and serves the shard map.
    Available,
    /// Keys are moving to a new shard count.
    Rebalancing,
    /// Something needs attention; see the Degraded condition.
    Degraded,
    /// spec.paused is set; the operator leaves the children alone.
    Paused,
    /// spec.replicas is 0: no pods run, the volumes and the shard map are kept.
    Stopped,
}

impl Phase {
    /// The name shown by `kubectl get kvs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Available => "Available",
            Phase::Rebalancing => "Rebalancing",
            Phase::Degraded => "Degraded",
            Phase::Paused => "Paused",
            Phase::Stopped => "Stopped",
        }
    }
}

/// The shard map every server acknowledged.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyStatus {
    /// Grows by one with every change of the shard count; 1 for the first map.
    pub epoch: i64,
    /// Number of shards keys are spread over.
    pub shards: i32,
    /// The shard function.
    pub sharding: Sharding,
}

/// Progress of a key move between shard counts (written by the rebalance state machine).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// Shard count keys move from.
    pub from: i32,
    /// Shard count keys move to.
    pub to: i32,
    /// Step of the move, persisted before the step runs so that a restarted operator resumes it.
    pub phase: RebalancePhase,
    /// Epoch of the shard map being moved to.
    pub epoch: i64,
    /// Keys copied so far.
    #[serde(default)]
    pub keys_moved: i64,
    /// Keys to copy: counted on the old shards when the copy starts.
    #[serde(default)]
    pub keys_total: i64,
    /// When the move started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Human-readable detail of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Steps of a key move (see docs/rebalance.md).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RebalancePhase {
    /// The StatefulSet grows to the larger count; new pods get the current map.
    ScalingUp,
    /// Old owners forward the keys they lose to the new owners.
    Handoff,
    /// Clients route over the new count while keys are copied.
    Copy,
    /// The new map is pushed as stable.
    Commit,
    /// Servers drop the keys they no longer own.
    Cleanup,
    /// The StatefulSet shrinks once the removed shards hold no key.
    ScalingDown,
    /// Volumes of the drained shards are deleted.
    DeletingPVCs,
}

impl RebalancePhase {
    /// The name written to the status, used as Event reason and condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalancePhase::ScalingUp => "ScalingUp",
            RebalancePhase::Handoff => "Handoff",
            RebalancePhase::Copy => "Copy",
            RebalancePhase::Commit => "Commit",
            RebalancePhase::Cleanup => "Cleanup",
            RebalancePhase::ScalingDown => "ScalingDown",
            RebalancePhase::DeletingPVCs => "DeletingPVCs",
        }
    }
}
