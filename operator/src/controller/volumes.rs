//! The claims and pods of shards beyond the shard count: the one place that deletes claims of a
//! live store and waits for pods to go.
//!
//! - A shrink's ScalingDown waits for the removed pods ([`remaining_pod`]); its DeletingPVCs
//!   deletes their claims ([`delete_drained`]).
//! - Volumes left behind by a move that changed course: a scale-up retargeted or cancelled
//!   before its new shards received a key leaves `data-NAME-i` claims of pods the StatefulSet no
//!   longer has. Once the store is stable again, claims beyond the committed shard count hold no
//!   key (every move copies a shard's keys out before it commits a smaller count), so they go
//!   ([`delete_unused`]).

use std::ops::Range;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::EventType;
use tracing::info;

use super::events::publish;
use crate::context::Context;
use crate::crd::KVStore;
use crate::error::Result;
use crate::labels;
use crate::validate::Instance;

/// Deletes the claims of ordinals `shards..` whose pod is gone; answers the names deleted.
/// Called only while no move is in flight and the committed map has `shards` shards.
pub(super) async fn delete_unused(
    ctx: &Context,
    kvs: &KVStore,
    inst: &Instance,
    shards: i32,
) -> Result<Vec<String>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    // Copy 0's claims: a copy's are its own StatefulSet's business.
    let selector = ListParams::default().labels(&labels::copy0_selector_string(&inst.name));
    let names: Vec<String> = claims
        .list_metadata(&selector)
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let mut deleted = Vec::new();
    for (name, ordinal) in beyond(&names, &inst.name, shards) {
        // A pod still running there (a StatefulSet not yet shrunk) keeps its claim for now.
        if remaining_pod(ctx, inst, ordinal..ordinal + 1)
            .await?
            .is_some()
            || !delete_claim(&claims, &name).await?
        {
            continue;
        }
        info!(pvc = %name, "deleting the unused volume of a shard beyond the committed count");
        let note = format!(
            "deleted volume {name}: shard {ordinal} is beyond the {shards} committed shards and holds no key"
        );
        publish(ctx, kvs, EventType::Normal, "VolumeDeleted", note).await;
        deleted.push(name);
    }
    Ok(deleted)
}

/// A pod of the shards `ordinals` that still exists, if any.
pub(super) async fn remaining_pod(
    ctx: &Context,
    inst: &Instance,
    ordinals: Range<i32>,
) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    for ordinal in ordinals {
        let name = labels::pod(&inst.name, ordinal);
        if pods.get_opt(&name).await?.is_some() {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Deletes the claims of every copy of the drained shards `ordinals` (`data-NAME-i` and, for a
/// replicated store, `data-NAME-rK-i`), and only those; answers one that still exists (being
/// deleted), if any: the copies of the store's factor (a copy beyond it leaves with its own
/// StatefulSet when the factor is lowered).
pub(super) async fn delete_drained(
    ctx: &Context,
    inst: &Instance,
    ordinals: Range<i32>,
) -> Result<Option<String>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let mut remaining = None;
    for ordinal in ordinals.filter_map(|i| u32::try_from(i).ok()) {
        for copy in 0..inst.factor() {
            let name = labels::copy_pvc(&inst.name, copy, ordinal);
            if delete_claim(&claims, &name).await? {
                info!(pvc = %name, "deleting the volume of a drained shard");
            }
            if remaining.is_none() && claims.get_opt(&name).await?.is_some() {
                remaining = Some(name);
            }
        }
    }
    Ok(remaining)
}

/// Deletes one claim; answers false when it was already gone.
async fn delete_claim(claims: &Api<PersistentVolumeClaim>, name: &str) -> Result<bool> {
    match claims.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// The claims among `names` that are `data-STORE-i` with `i >= shards`, with their ordinal.
fn beyond(names: &[String], store: &str, shards: i32) -> Vec<(String, i32)> {
    let prefix = format!("{}-{store}-", labels::DATA_VOLUME);
    names
        .iter()
        .filter_map(|name| {
            let ordinal: i32 = name.strip_prefix(&prefix)?.parse().ok()?;
            (ordinal >= shards).then(|| (name.clone(), ordinal))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn picks_only_this_stores_claims_at_or_beyond_the_shard_count() {
        let all = names(&[
            "data-kv-0",
            "data-kv-1",
            "data-kv-2",
            "data-kv-3",
            "data-kv-12",
            "data-kv-x",
            "data-kv-other-5",
            "data-kvx-7",
            "logs-kv-4",
        ]);
        assert_eq!(
            beyond(&all, "kv", 2),
            vec![
                ("data-kv-2".to_owned(), 2),
                ("data-kv-3".to_owned(), 3),
                ("data-kv-12".to_owned(), 12),
            ]
        );
    }

    #[test]
    fn nothing_beyond_when_every_claim_is_in_use() {
        let all = names(&["data-kv-0", "data-kv-1", "data-kv-2"]);
        assert!(beyond(&all, "kv", 3).is_empty());
    }
}
