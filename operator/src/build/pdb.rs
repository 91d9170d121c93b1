//! The PodDisruptionBudget: a voluntary eviction takes at most one shard away at a time.

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
