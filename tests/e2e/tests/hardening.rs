//! Issue 13 on the real cluster: a shard pod whose volume was replaced serves nothing until the
//! operator gives it its map (item 2), and a copy batch that a deposed operator sends after the
//! move went on changes nothing (item 3).

use std::time::Duration;

use bytes::Bytes;
use e2e::namespace::TestNamespace;
use e2e::shard_http::{self, Shard};
use e2e::{Error, Result, check, cluster, pods, stores, wait};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kvproto::bulk::BulkRecord;
use kvproto::{Fence, Key};
use operator::KVStore;
use operator::rebalance::hooks::COPY_BATCH_PAUSE;
use operator::status::Phase;

const LONG: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(1);

async fn shard(ns: &TestNamespace, store: &str, ordinal: u32) -> Result<Shard> {
    shard_http::shards(ns, store)
        .await?
        .into_iter()
        .find(|s| s.ordinal == ordinal)
        .ok_or_else(|| Error::Check(format!("no shard {ordinal} of {store} with an IP")))
}

async fn set_paused(ns: &TestNamespace, store: &str, paused: bool) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "paused": paused } });
    ns.api::<KVStore>()
        .patch(store, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The admin token the operator gave the store (the first line of its Secret).
async fn admin_token(ns: &TestNamespace, store: &str) -> Result<String> {
    let secret = ns
        .api::<Secret>()
        .get(&operator::labels::token_secret(store))
        .await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|b| b.0.clone())
        .ok_or_else(|| Error::Check("the token Secret has no `token`".into()))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Check(e.to_string()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Item 2: the pod of shard 1 comes back on an empty volume while the operator is paused. It
/// starts, answers its probes, and still serves no key and is not ready; the operator, once
/// resumed, pushes it the map and only then does it serve.
#[tokio::test]
async fn a_shard_on_a_new_volume_serves_nothing_until_it_has_its_map() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "newpod").await?;
    ns.run(|| async {
        let store = "np";
        stores::create(&ns, &stores::kvstore(store, 2, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;
        let topology = shard(&ns, store, 0).await?.topology().await?;
        let key = shard_http::keys_owned_by(&topology, 1, "early-", 1)
            .pop()
            .ok_or_else(|| Error::Check("no key for shard 1".into()))?;

        set_paused(&ns, store, true).await?;
        stores::wait_until(&ns, store, "the store paused", LONG, |kvs| {
            kvs.status.as_ref().and_then(|s| s.phase) == Some(Phase::Paused)
        })
        .await?;
        // A new, empty volume for shard 1: the claim goes with its pod, both come back.
        let claim = operator::labels::pvc(store, 1);
        ns.api::<PersistentVolumeClaim>()
            .delete(&claim, &DeleteParams::default())
            .await?;
        pods::delete(&ns, &operator::labels::pod(store, 1)).await?;
        let fresh = wait::until("shard 1 started on a new volume", LONG, POLL, || async {
            let pod = ns
                .api::<Pod>()
                .get_opt(&operator::labels::pod(store, 1))
                .await
                .map_err(|e| e.to_string())?;
            let started = pod.as_ref().is_some_and(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.started == Some(true)))
            });
            if !started {
                return Ok(None);
            }
            match shard(&ns, store, 1).await {
                Ok(s) if s.readyz().await.is_ok() => Ok(Some(s)),
                Ok(_) => Err("ops port not answering yet".into()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let (status, body) = fresh.readyz().await?;
        check(status == 503 && body.contains("no topology"), || {
            format!("a server without a map must not be ready: {status} {body}")
        })?;
        let (status, body) = fresh.put(&key, "too-early").await?;
        check(status == 503 && body.contains("misdirected"), || {
            format!("a server without a map took a write: {status} {body}")
        })?;

        set_paused(&ns, store, false).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;
        let owner = shard(&ns, store, 1).await?;
        let (status, body) = owner.get(&key).await?;
        check(status == 404, || {
            format!("the refused early write landed after all: {status} {body}")
        })?;
        let (status, body) = owner.put(&key, "in-time").await?;
        check((200..300).contains(&status), || {
            format!("shard 1 does not serve with its map: {status} {body}")
        })?;
        Ok(())
    })
    .await
}

/// Item 3: a move runs to its end while the copy of epoch E is replayed afterwards, as a
/// deposed operator that kept copying would: the server refuses the batch (409 `fenced`) and
/// the key the client deleted stays deleted; an unfenced import is refused too.
#[tokio::test]
async fn a_late_copy_batch_from_a_deposed_operator_changes_nothing() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "fence").await?;
    ns.run(|| async {
        let store = "fc";
        stores::create(&ns, &stores::kvstore(store, 2, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;
        // Keys to move, so that the paced copy lasts long enough to be seen in Copy.
        let before = shard(&ns, store, 0).await?.topology().await?;
        for owner in 0..2 {
            let server = shard(&ns, store, owner).await?;
            for key in shard_http::keys_owned_by(&before, owner, "moving-", 600) {
                let (status, body) = server.put(&key, "v").await?;
                check((200..300).contains(&status), || {
                    format!("put {key}: {status} {body}")
                })?;
            }
        }
        stores::annotate(&ns, store, COPY_BATCH_PAUSE, Some("1000")).await?;
        stores::scale(&ns, store, 3).await?;
        stores::wait_rebalance_phase(&ns, store, "Copy", LONG).await?;
        let copying = shard(&ns, store, 2).await?.topology().await?;
        stores::annotate(&ns, store, COPY_BATCH_PAUSE, None).await?;
        stores::wait_phase(&ns, store, Phase::Available, 3, LONG).await?;

        // A key the client wrote and deleted at its owner once the move was over.
        let owner = shard(&ns, store, 2).await?;
        let after = owner.topology().await?;
        check(
            after.epoch == copying.epoch && after.migration.is_none(),
            || {
                format!(
                    "expected epoch {} committed, shard 2 holds {after:?}",
                    copying.epoch
                )
            },
        )?;
        let key = shard_http::keys_owned_by(&after, 2, "deleted-", 1)
            .pop()
            .ok_or_else(|| Error::Check("no key for shard 2".into()))?;
        owner.put(&key, "v1").await?;
        let (status, body) = owner.delete(&key).await?;
        check((200..300).contains(&status), || {
            format!("delete: {status} {body}")
        })?;

        let token = admin_token(&ns, store).await?;
        let late = [BulkRecord {
            key: Key::new(key.clone()).map_err(|e| Error::Check(e.to_string()))?,
            version: 1,
            value: Some(Bytes::from_static(b"v1")),
        }];
        let fence = format!("&{}", Fence::copy(copying.epoch).query());
        for (what, query) in [("the copy's fence", fence.as_str()), ("no fence", "")] {
            let (status, body) = owner.import(&token, query, &late).await?;
            check(status == 409 && body.contains("fenced"), || {
                format!("a late import with {what} was not refused: {status} {body}")
            })?;
        }
        let (status, body) = owner.get(&key).await?;
        check(status == 404, || {
            format!("the deleted key came back: {status} {body}")
        })?;
        Ok(())
    })
    .await
}
