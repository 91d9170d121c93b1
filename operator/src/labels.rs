//! Names and labels of the children, derived from the KVStore's name only, so they never change.

use std::collections::BTreeMap;

/// The one field manager of every server-side apply, and the `managed-by` label.
pub const MANAGER: &str = "kvstore-operator";
/// `app.kubernetes.io/name` of everything the operator creates.
pub const APP_NAME: &str = "kvstore";
/// `app.kubernetes.io/component` of the shard pods and their Service.
pub const COMPONENT: &str = "server";

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "app.kubernetes.io/part-of";

/// Labels that select the shard pods of one store. Users may not override them.
pub fn selector(instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_owned(), APP_NAME.to_owned()),
        (INSTANCE.to_owned(), instance.to_owned()),
        (COMPONENT_LABEL.to_owned(), COMPONENT.to_owned()),
    ])
}

/// Every label of every child: the selector plus the informational ones.
pub fn common(instance: &str) -> BTreeMap<String, String> {
    let mut labels = selector(instance);
    labels.insert(MANAGED_BY.to_owned(), MANAGER.to_owned());
    labels.insert(PART_OF.to_owned(), APP_NAME.to_owned());
    labels
}

/// The ordinal of `pod` of `instance` (`demo-2` → 2); None for another name.
pub fn ordinal_of(instance: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(instance)?.strip_prefix('-')?.parse().ok()
}

/// Label of the objects of copy k ≥ 1 of every shard (the StatefulSet `NAME-rK`, its pods and
/// claims), valued `k`. Copy 0 (the StatefulSet `NAME`) never has it, and its selector, which is
/// immutable, also matches copy pods: lists that mean copy 0's pods exclude this label.
pub const COPY: &str = "kvstore.dev/copy";

/// The pod index label Kubernetes sets on every StatefulSet pod: the shard, in every copy's
/// StatefulSet (per-shard PodDisruptionBudgets and the copies' spread select by it).
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";

/// Label of the per-shard PodDisruptionBudgets of a replicated store (`NAME-sI`), valued `i`.
pub const SHARD: &str = "kvstore.dev/shard";

/// The name of the kvserver container in every shard pod.
pub const KVSERVER_CONTAINER: &str = "kvserver";

/// The selector as a string, for `status.selector` and list calls.
pub fn selector_string(instance: &str) -> String {
    selector(instance)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The selector of copy 0's pods (the book's `NAME-i`): [`selector_string`] without the
/// copies' pods, which the StatefulSet `NAME`'s own selector also matches.
pub fn copy0_selector_string(instance: &str) -> String {
    format!("{},!{COPY}", selector_string(instance))
}

/// The selector of every copy k ≥ 1 object of the store (StatefulSets, pods, claims).
pub fn copies_selector_string(instance: &str) -> String {
    format!("{INSTANCE}={instance},{COPY}")
}

/// Name of the StatefulSet of copy `copy` ≥ 1: `NAME-rK` (copy 0 is `NAME`).
pub fn copy_statefulset(instance: &str, copy: u32) -> String {
    match copy {
        0 => instance.to_owned(),
        k => format!("{instance}-r{k}"),
    }
}

/// Name of the PodDisruptionBudget of shard `ordinal` of a replicated store: `NAME-sI`.
pub fn shard_pdb(instance: &str, ordinal: i32) -> String {
    format!("{instance}-s{ordinal}")
}

/// The copy index of a StatefulSet of `instance` (`NAME` → 0, `NAME-r2` → 2); None for another.
pub fn copy_of_statefulset(instance: &str, statefulset: &str) -> Option<u32> {
    if statefulset == instance {
        return Some(0);
    }
    let k: u32 = statefulset
        .strip_prefix(instance)?
        .strip_prefix("-r")?
        .parse()
        .ok()?;
    (k > 0).then_some(k)
}

/// Name of the Secret holding the admin token.
pub fn token_secret(instance: &str) -> String {
    format!("{instance}-admin-token")
}

/// Name of the volume claim template; PVCs are `data-NAME-i`.
pub const DATA_VOLUME: &str = "data";

/// Name of shard `ordinal`'s PVC.
pub fn pvc(instance: &str, ordinal: i32) -> String {
    format!("{DATA_VOLUME}-{instance}-{ordinal}")
}

/// Name of the PVC of copy `copy` of shard `ordinal` (`data-NAME-i`, `data-NAME-rK-i`).
pub fn copy_pvc(instance: &str, copy: u32, ordinal: u32) -> String {
    format!(
        "{DATA_VOLUME}-{}",
        kvproto::copy_pod(instance, copy, ordinal)
    )
}

/// Name of shard `ordinal`'s pod (the StatefulSet's naming).
pub fn pod(instance: &str, ordinal: i32) -> String {
    format!("{instance}-{ordinal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinal_comes_back_from_its_pod_name() {
        assert_eq!(ordinal_of("demo", &pod("demo", 12)), Some(12));
        assert_eq!(ordinal_of("demo", "demo-x"), None);
        assert_eq!(ordinal_of("demo", "demo2-1"), None);
        assert_eq!(ordinal_of("de", "demo-1"), None);
    }

    #[test]
    fn selector_string_is_sorted_and_stable() {
        assert_eq!(
            selector_string("demo"),
            "app.kubernetes.io/component=server,app.kubernetes.io/instance=demo,app.kubernetes.io/name=kvstore"
        );
    }

    #[test]
    fn names_follow_the_statefulset_conventions() {
        assert_eq!(pvc("demo", 2), "data-demo-2");
        assert_eq!(pod("demo", 2), "demo-2");
        assert_eq!(token_secret("demo"), "demo-admin-token");
        assert_eq!(copy_statefulset("demo", 0), "demo");
        assert_eq!(copy_statefulset("demo", 2), "demo-r2");
        assert_eq!(shard_pdb("demo", 3), "demo-s3");
    }

    #[test]
    fn copy_indexes_come_back_from_statefulset_names() {
        assert_eq!(copy_of_statefulset("demo", "demo"), Some(0));
        assert_eq!(copy_of_statefulset("demo", "demo-r4"), Some(4));
        for other in ["demo-r0", "demo-rx", "demo-1", "demox-r1", "dem"] {
            assert_eq!(copy_of_statefulset("demo", other), None, "{other}");
        }
    }

    #[test]
    fn every_copy_has_its_own_claim() {
        assert_eq!(copy_pvc("kv", 0, 3), pvc("kv", 3));
        assert_eq!(copy_pvc("kv", 2, 3), "data-kv-r2-3");
    }

    #[test]
    fn copy_0_lists_leave_out_the_copies() {
        assert_eq!(
            copy0_selector_string("demo"),
            format!("{},!kvstore.dev/copy", selector_string("demo"))
        );
        assert_eq!(
            copies_selector_string("demo"),
            "app.kubernetes.io/instance=demo,kvstore.dev/copy"
        );
    }
}
