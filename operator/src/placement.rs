//! Where a shard's only copy lives, and whether that place still exists (pure). With node-local
//! volumes (local PVs with node affinity, as on bare metal) a pod whose node is gone cannot
//! follow its volume elsewhere: its shard's data went with the node. With one copy per shard
//! the operator can only say so; it never deletes the claim on its own (that would start the
//! shard empty, a decision for a human).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PersistentVolume;

/// The node label a local volume's affinity names.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A shard whose volume is pinned to a node that is no longer in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostShard {
    pub pod: String,
    pub claim: String,
    pub volume: String,
    pub node: String,
}

/// The nodes a volume's required node affinity allows (`kubernetes.io/hostname In [...]`);
/// empty for a volume any node can mount (network storage, no affinity).
pub fn pinned_nodes(pv: &PersistentVolume) -> Vec<String> {
    let terms = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .filter(|e| e.key == HOSTNAME_LABEL && e.operator == "In")
        .flat_map(|e| e.values.iter().flatten().cloned())
        .collect()
}

/// Whether a volume pinned to `pinned` can no longer be mounted: every node it allows is gone
/// (a volume with no affinity is never lost this way).
pub fn is_lost(pinned: &[String], nodes: &BTreeSet<String>) -> Option<String> {
    if pinned.is_empty() || pinned.iter().any(|n| nodes.contains(n)) {
        return None;
    }
    pinned.first().cloned()
}

/// The Degraded message for `lost` shards of `store`.
pub fn message(store: &str, lost: &[LostShard]) -> String {
    let each: Vec<String> = lost
        .iter()
        .map(|l| {
            format!(
                "shard {}'s only copy (claim {}, volume {}) was on node {}, which is gone",
                l.pod, l.claim, l.volume, l.node
            )
        })
        .collect();
    format!(
        "{}. The operator deletes nothing of {store}: bring the node back, or delete the \
         claim to start that shard empty (its keys are lost)",
        each.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_pv(nodes: &[&str]) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "local-pv" },
            "spec": { "nodeAffinity": { "required": { "nodeSelectorTerms": [
                { "matchExpressions": [
                    { "key": "kubernetes.io/hostname", "operator": "In", "values": nodes }
                ] }
            ] } } }
        }))
        .unwrap_or_default()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_local_volume_is_lost_only_when_every_node_it_allows_is_gone() {
        let pinned = pinned_nodes(&local_pv(&["node-3"]));
        assert_eq!(pinned, ["node-3"]);
        assert_eq!(
            is_lost(&pinned, &names(&["node-1", "node-2"])).as_deref(),
            Some("node-3")
        );
        assert_eq!(is_lost(&pinned, &names(&["node-1", "node-3"])), None);
        let two = pinned_nodes(&local_pv(&["node-2", "node-3"]));
        assert_eq!(is_lost(&two, &names(&["node-2"])), None);
    }

    #[test]
    fn a_volume_without_node_affinity_is_never_lost_to_a_node() {
        let network = PersistentVolume::default();
        assert!(pinned_nodes(&network).is_empty());
        assert_eq!(is_lost(&pinned_nodes(&network), &names(&[])), None);
    }

    #[test]
    fn the_message_names_each_shard_its_node_and_the_one_human_decision() {
        let lost = [LostShard {
            pod: "kv-2".into(),
            claim: "data-kv-2".into(),
            volume: "local-kvstore-node-3-pv4".into(),
            node: "kvstore-node-3".into(),
        }];
        let text = message("kv", &lost);
        for part in [
            "kv-2",
            "data-kv-2",
            "kvstore-node-3",
            "deletes nothing",
            "delete the claim",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }
}
