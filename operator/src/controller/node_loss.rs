//! Shards whose only volume is pinned to a node that has left the cluster, looked for while
//! some shard is not ready (see [`crate::placement`]). It reads cluster-scoped objects (get on
//! persistentvolumes, list on nodes); an install that does not grant them skips the check.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::debug;

use crate::context::Context;
use crate::error::Result;
use crate::labels;
use crate::placement::{self, LostShard};
use crate::validate::Instance;

/// The shards `0..shards` of `inst` whose volume can no longer be mounted anywhere.
pub(super) async fn lost_shards(
    ctx: &Context,
    inst: &Instance,
    shards: i32,
) -> Result<Vec<LostShard>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let mut pinned = Vec::new();
    for ordinal in 0..shards {
        let claim = labels::pvc(&inst.name, ordinal);
        let Some(volume) = claims
            .get_opt(&claim)
            .await?
            .and_then(|pvc| pvc.spec)
            .and_then(|spec| spec.volume_name)
        else {
            continue;
        };
        let pv = match volumes.get_opt(&volume).await {
            Ok(Some(pv)) => pv,
            Ok(None) => continue,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                debug!(store = %inst.name, "no grant to read volumes: node loss is not checked");
                return Ok(Vec::new());
            }
            Err(err) => return Err(err.into()),
        };
        let allowed = placement::pinned_nodes(&pv);
        if !allowed.is_empty() {
            pinned.push((ordinal, claim, volume, allowed));
        }
    }
    if pinned.is_empty() {
        return Ok(Vec::new());
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let present: BTreeSet<String> = match nodes.list_metadata(&ListParams::default()).await {
        Ok(list) => list.items.iter().map(ResourceExt::name_any).collect(),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            debug!(store = %inst.name, "no grant to list nodes: node loss is not checked");
            return Ok(Vec::new());
        }
        Err(err) => return Err(err.into()),
    };
    Ok(pinned
        .into_iter()
        .filter_map(|(ordinal, claim, volume, allowed)| {
            placement::is_lost(&allowed, &present).map(|node| LostShard {
                pod: labels::pod(&inst.name, ordinal),
                claim,
                volume,
                node,
            })
        })
        .collect())
}
