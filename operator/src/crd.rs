//! The `KVStore` custom resource: its spec, generated into the CRD with schemars.
//!
//! Every field carries a doc comment (it becomes the schema description that `kubectl explain`
//! prints), a default where the book has one, and validation the API server enforces. Field
//! docs are one line per paragraph: schemars keeps line breaks, and `kubectl explain` would
//! print them mid-sentence.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use kvproto::Sharding;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::KVStoreStatus;

/// API group of the CRD.
pub const GROUP: &str = "kvstore.dev";
/// The only version so far.
pub const VERSION: &str = "v1alpha1";

/// A sharded key/value store: one kvserver pod per shard, each with its own volume.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kvstore.dev",
    version = "v1alpha1",
    kind = "KVStore",
    plural = "kvstores",
    singular = "kvstore",
    shortname = "kvs",
    namespaced,
    status = "KVStoreStatus",
    derive = "PartialEq",
    doc = "A sharded key/value store run by the kvstore operator: a headless Service, a StatefulSet of kvserver shards with one volume each, and the shard map the servers route by.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Shards asked for in spec.replicas","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","description":"Shard pods that are ready","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Serving","type":"integer","description":"Shards clients route over now","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","description":"Summary of the store's state","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Rebalance","type":"string","description":"Step of the key move in flight","jsonPath":".status.rebalance.phase"}"#,
    printcolumn = r#"{"name":"Moved","type":"integer","description":"Keys copied by the move in flight","jsonPath":".status.rebalance.keysMoved"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","description":"Keys the move in flight copies (known once its copy starts)","jsonPath":".status.rebalance.keysTotal"}"#,
    printcolumn = r#"{"name":"Replication","type":"string","description":"Copies in sync on the least replicated shard, over the replication factor (- at factor 1)","jsonPath":".status.replication.summary","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Epoch","type":"integer","priority":1,"description":"Epoch of the served shard map","jsonPath":".status.topology.epoch"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.tls) == has(oldSelf.tls)", "message": "tls cannot be turned on or off after creation: the servers' shard map names http:// or https:// peers"}
]))]
pub struct KVStoreSpec {
    /// Number of shards (kvserver pods). 0 stops the store and keeps every volume and the shard map; scaling back to the same count brings every key back. Changing between two non-zero counts moves keys between shards (rebalancing).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Container image of the kvserver.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// When the kubelet pulls the image.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,

    /// Data port of every kvserver and of the headless Service (the book's servers listen on 80). The ops port 8081 (probes, metrics) is reserved. Fixed at creation.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self != 8081", "message": "port 8081 is the kvserver ops port"},
        {"rule": "self == oldSelf", "message": "port cannot be changed after creation: the servers' shard map names it"}
    ]))]
    pub port: i32,

    /// The volume of every shard.
    #[serde(default)]
    pub storage: StorageSpec,

    /// CPU and memory of the kvserver container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Seconds a shard pod gets to stop (the book uses 10), at least 7: a 2 s preStop sleep while the Service drops the pod, 2 s answering 503 `_shutting_down_` after SIGTERM, then the rest for in-flight requests less 2 s kept for the final fsync, so the kubelet never kills a shard before its last acknowledged write is on disk.
    #[serde(default = "default_grace")]
    #[schemars(range(min = crate::grace::MIN_GRACE_SECONDS))]
    pub termination_grace_period_seconds: i64,

    /// What an acknowledged write survives (the kvserver's `--sync`, set as KV_SYNC). `batch` (the default) fsyncs every 50 ms: a crash of the kvserver process loses nothing acknowledged, a power loss or kernel crash loses up to the last 50 ms of acknowledged writes. `always` fsyncs before answering every write: a power loss loses nothing acknowledged, at the cost of one fsync per write.
    #[serde(default)]
    pub durability: Durability,

    /// How the StatefulSet starts and stops pods: OrderedReady (one at a time, as in the book) or Parallel. Fixed at creation (a StatefulSet cannot change it).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "podManagementPolicy cannot be changed after creation"}
    ]))]
    pub pod_management_policy: PodManagementPolicy,

    /// How keys map to shards: `modulo` (the book's scheme) or `jump` (jump consistent hashing, far fewer keys move on a scale). Fixed at creation.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "sharding cannot be changed after creation"}
    ]))]
    pub sharding: Sharding,

    /// Additions to the shard pods: labels, annotations and scheduling.
    #[serde(default, skip_serializing_if = "PodOverrides::is_empty")]
    pub pod_overrides: PodOverrides,

    /// Serve the data port (data, admin and peer traffic) over HTTPS with the certificate of a Secret. Unset: plain HTTP. Fixed at creation: the servers' shard map names http:// or https:// peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Who may use the data routes. Admin and peer traffic always need their own tokens, kept in the Secrets NAME-admin-token and NAME-peer-token.
    #[serde(default, skip_serializing_if = "AuthSpec::is_default")]
    pub auth: AuthSpec,

    /// Copies of every shard, kept in step by Raft (one group per shard). Factor 1 (the default) runs exactly one pod per shard, as without this field.
    #[serde(default, skip_serializing_if = "ReplicationSpec::is_default")]
    pub replication: ReplicationSpec,

    /// Stops reconciling: the operator leaves the children as they are and says so in the ReconciliationPaused condition.
    #[serde(default)]
    pub paused: bool,
}

/// How many copies each shard has, and how they are placed.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSpec {
    /// Copies of each shard: 1, 2, 3 or 5. A shard answers writes while a majority of its copies (its quorum) is up: 3 copies survive one failure, 5 survive two. Factor 2 has a quorum of 2 and survives no failure for writes: it only keeps a second copy of the data. Copy 0 of shard i is the pod NAME-i; copy k is NAME-rK-i (StatefulSet NAME-rK, volumes data-NAME-rK-i). Lowering the factor removes the extra copies from their groups first, then their pods and volumes.
    #[serde(default = "default_factor")]
    #[schemars(extend("enum" = [1, 2, 3, 5]))]
    pub factor: i32,

    /// How the copies of one shard are spread over nodes (kubernetes.io/hostname): `preferred` (the default) spreads them when the cluster allows and schedules anyway otherwise; `required` never schedules a copy where it would put two copies of a shard more on one node than on another (maxSkew 1). Zones (topology.kubernetes.io/zone) are always a preference, so that a cluster without zone labels schedules as before.
    #[serde(default)]
    pub spread: Spread,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        ReplicationSpec {
            factor: default_factor(),
            spread: Spread::default(),
        }
    }
}

impl ReplicationSpec {
    /// True for the defaults (factor 1: nothing to write out).
    pub fn is_default(&self) -> bool {
        self == &ReplicationSpec::default()
    }
}

/// How the copies of one shard are spread over nodes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// Spread copies over nodes when possible, schedule anyway when not (ScheduleAnyway).
    #[default]
    Preferred,
    /// Never put more copies of a shard on one node than the spread allows (DoNotSchedule): a copy stays Pending instead.
    Required,
}

impl Spread {
    /// The topology spread constraint's `whenUnsatisfiable`.
    pub fn when_unsatisfiable(self) -> &'static str {
        match self {
            Spread::Preferred => "ScheduleAnyway",
            Spread::Required => "DoNotSchedule",
        }
    }
}

/// TLS on the data port.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret in the store's namespace with `tls.crt`, `tls.key` and `ca.crt` (PEM), e.g. a `kubernetes.io/tls` Secret issued by cert-manager from a CA issuer. The certificate must name every shard's peer host, `*.NAME.NAMESPACE.svc`. The servers re-read it every 2 s, so a renewal in place needs no restart; the operator trusts its `ca.crt` (and only that) for its own calls to the servers.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Authentication of the data routes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Data routes (book routes and /v1/keys) answer 401 without a bearer token: the data token of the Secret NAME-data-token (the admin and peer tokens are accepted too). Off: data routes are open to whoever reaches the port, as in the book.
    #[serde(default)]
    pub require_data_token: bool,
}

impl AuthSpec {
    /// True for the defaults (nothing to write out).
    pub fn is_default(&self) -> bool {
        self == &AuthSpec::default()
    }
}

/// When the kubelet pulls the image.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

impl KVStore {
    /// `namespace/name`, for logs and the per-object backoff.
    pub fn object_key(&self) -> String {
        use kube::ResourceExt;
        format!(
            "{}/{}",
            self.namespace().unwrap_or_default(),
            self.name_any()
        )
    }
}

impl ImagePullPolicy {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// What an acknowledged write survives; the kvserver's `--sync` mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync before answering each write: nothing acknowledged is lost on power loss.
    Always,
    /// fsync every 50 ms: up to 50 ms of acknowledged writes lost on power loss or kernel crash, nothing on a process crash.
    #[default]
    Batch,
}

impl Durability {
    /// The kvserver's `--sync` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Always => "always",
            Durability::Batch => "batch",
        }
    }
}

/// How the StatefulSet starts and stops pods.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PodManagementPolicy {
    /// One pod at a time, each waiting for the previous one to be Ready.
    #[default]
    OrderedReady,
    /// All pods at once.
    Parallel,
}

impl PodManagementPolicy {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PodManagementPolicy::OrderedReady => "OrderedReady",
            PodManagementPolicy::Parallel => "Parallel",
        }
    }
}

/// The persistent volume of every shard (`data-NAME-i`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each shard's volume, as a Kubernetes quantity (e.g. 1Gi). Fixed at creation.
    #[serde(default = "default_size")]
    #[schemars(schema_with = "quantity_schema")]
    pub size: Quantity,

    /// StorageClass of the volumes; the cluster's default class when unset. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "storageClassName cannot be changed after creation"}
    ]))]
    pub storage_class_name: Option<String>,

    /// What happens to the volumes when the KVStore is deleted: Retain keeps them (and the data), Delete removes them. Volumes of shards removed by a scale-down are deleted only once the shard is proven empty.
    #[serde(default)]
    pub retention_policy: RetentionPolicy,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_size(),
            storage_class_name: None,
            retention_policy: RetentionPolicy::default(),
        }
    }
}

/// What happens to the volumes when the KVStore is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RetentionPolicy {
    /// Keep the volumes and their data.
    #[default]
    Retain,
    /// Delete the volumes with the store.
    Delete,
}

/// Additions to the shard pods. Labels may not override the operator's selector labels.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra labels of the shard pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations of the shard pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Node labels a shard pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the shard pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Scheduling constraints. Without a podAntiAffinity here, the operator prefers spreading the shards over nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

impl PodOverrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &PodOverrides::default()
    }
}

fn default_factor() -> i32 {
    1
}

fn default_replicas() -> i32 {
    3
}

fn default_image() -> String {
    "kvstore/kvserver:dev".to_owned()
}

fn default_port() -> i32 {
    80
}

fn default_grace() -> i64 {
    10
}

fn default_size() -> Quantity {
    Quantity("1Gi".to_owned())
}

/// A quantity as a string the API server checks with the CEL quantity library.
fn quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": 64,
        "description": "Size of each shard's volume, as a Kubernetes quantity (e.g. 1Gi). Fixed at creation (a StatefulSet's volume claim template cannot change).",
        "default": "1Gi",
        "x-kubernetes-validations": [{
            "rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
            "message": "size must be a positive quantity such as 1Gi"
        }, {
            "rule": "self == oldSelf",
            "message": "storage.size cannot be changed after creation"
        }]
    })
}
