//! The PodDisruptionBudgets: a voluntary eviction takes at most one shard away at a time
//! ([`pod_disruption_budget`], the store-wide one of factor 1), or at most one copy of each
//! shard ([`shard_pod_disruption_budget`], one per shard when the store is replicated, in
//! place of the store-wide one: shards are independent groups, each keeps its quorum).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::meta;
use crate::labels;
use crate::validate::Instance;

/// maxUnavailable 1 over the store's shard pods.
pub fn pod_disruption_budget(inst: &Instance) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(inst, inst.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&inst.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// maxUnavailable 1 over the copies of shard `ordinal` (every copy StatefulSet's pod with that
/// index), named `NAME-sI`.
pub fn shard_pod_disruption_budget(inst: &Instance, ordinal: i32) -> PodDisruptionBudget {
    let mut metadata = meta(inst, labels::shard_pdb(&inst.name, ordinal));
    let mut selector = labels::selector(&inst.name);
    selector.insert(labels::POD_INDEX.to_owned(), ordinal.to_string());
    if let Some(l) = metadata.labels.as_mut() {
        l.insert(labels::SHARD.to_owned(), ordinal.to_string());
    }
    PodDisruptionBudget {
        metadata,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
