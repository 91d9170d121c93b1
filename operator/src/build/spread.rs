//! The spread of a replicated shard's copies over nodes and zones: a copy k ≥ 1 pod is
//! scheduled away from the other copies of its shard (same `apps.kubernetes.io/pod-index`,
//! any copy's StatefulSet), by `topologySpreadConstraints` with `matchLabelKeys`.
//!
//! Only the copies k ≥ 1 carry them: copy 0's template is the same at every factor (a factor
//! change restarts no book pod), and every copy after it is placed against the pods already
//! there, copy 0's included (they match the selector). Copy 0 keeps its preferred spread of
//! shards over nodes (the pod anti-affinity of the StatefulSet builder).

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::labels;
use crate::placement::HOSTNAME_LABEL;
use crate::validate::Instance;

/// The zone label of nodes. Zones are a preference only: with `DoNotSchedule`, a node without
/// the label could take no pod at all, and most single-zone clusters do not label zones.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Spread over nodes per `spec.replication.spread`, and (always preferred) over zones.
pub fn constraints(inst: &Instance) -> Vec<TopologySpreadConstraint> {
    let over = |key: &str, when: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.to_owned(),
        when_unsatisfiable: when.to_owned(),
        label_selector: Some(LabelSelector {
            match_labels: Some(labels::selector(&inst.name)),
            ..LabelSelector::default()
        }),
        // The copies of one shard: the pods of every copy StatefulSet with the same index.
        match_label_keys: Some(vec![labels::POD_INDEX.to_owned()]),
        ..TopologySpreadConstraint::default()
    };
    vec![
        over(
            HOSTNAME_LABEL,
            inst.spec.replication.spread.when_unsatisfiable(),
        ),
        over(ZONE_LABEL, "ScheduleAnyway"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Spread;
    use crate::fixtures::kvstore;
    use crate::validate::validate;

    #[test]
    fn nodes_follow_the_spec_and_zones_stay_a_preference() {
        let mut kvs = kvstore("kv", 3);
        for (spread, when) in [
            (Spread::Preferred, "ScheduleAnyway"),
            (Spread::Required, "DoNotSchedule"),
        ] {
            kvs.spec.replication.spread = spread;
            let c = constraints(&validate(&kvs).unwrap());
            assert_eq!(c[0].topology_key, HOSTNAME_LABEL);
            assert_eq!(c[0].when_unsatisfiable, when);
            assert_eq!(c[1].topology_key, ZONE_LABEL);
            assert_eq!(c[1].when_unsatisfiable, "ScheduleAnyway");
            assert!(c.iter().all(
                |c| c.match_label_keys.as_deref() == Some(&[labels::POD_INDEX.to_owned()][..])
            ));
        }
    }
}
