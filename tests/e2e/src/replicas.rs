//! The copies of a replicated store (docs/replication.md sections 3 and 7): which pod is which
//! copy of which shard, each copy's Raft status read with the admin token, each shard's leader,
//! and the operator's `status.replication` with condition `Degraded`.
//!
//! Copy 0 of shard i is pod `NAME-i` (StatefulSet `NAME`, no copy label); copy k ≥ 1 is pod
//! `NAME-r<k>-i` (StatefulSet `NAME-r<k>`, label `kvstore.dev/copy: "<k>"`). The KVStore is
//! created and read as a `DynamicObject`, so the suite holds the operator to the contract
//! whether or not the operator's Rust types carry `spec.replication` and `status.replication`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use kvproto::raft::{RaftStatus, Role, ServerState};
use kvproto::raft_admin::STATUS_PATH;
use kvproto::wire::header;
use operator::KVStore;
use serde::Deserialize;

use crate::namespace::TestNamespace;
use crate::{Error, Result, check, host, shard_http, stores, wait};

/// A voter within this many entries of its leader's last index is in sync (the operator's
/// threshold, docs/replication.md section 7).
pub const IN_SYNC_LAG: u64 = 1000;
/// Per-request deadline of every call to a copy.
const TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(500);

/// One kvserver pod of a replicated store.
#[derive(Debug, Clone)]
pub struct CopyPod {
    pub shard: u32,
    pub copy: u32,
    pub pod: Pod,
}

impl CopyPod {
    pub fn name(&self) -> String {
        self.pod.name_any()
    }
}

/// Every kvserver pod of `store`, all copies of all shards, by shard then copy. The copy is the
/// `kvstore.dev/copy` label (absent: 0), the shard the pod's ordinal.
pub async fn copy_pods(ns: &TestNamespace, store: &str) -> Result<Vec<CopyPod>> {
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={store}"));
    let mut out = Vec::new();
    for pod in ns.api::<Pod>().list(&lp).await?.items {
        let name = pod.name_any();
        let copy = match pod.labels().get(stores::COPY_LABEL) {
            None => 0,
            Some(k) => k.parse().map_err(|_| {
                Error::Check(format!(
                    "pod {name}: label {}={k:?} is not a copy number",
                    stores::COPY_LABEL
                ))
            })?,
        };
        let shard = name
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Check(format!("pod {name} has no ordinal")))?;
        out.push(CopyPod { shard, copy, pod });
    }
    out.sort_by_key(|c| (c.shard, c.copy));
    Ok(out)
}

/// The pod of copy `copy` of `shard` that the contract names (kvproto's `copy_pod`).
pub fn pod_name(store: &str, copy: u32, shard: u32) -> String {
    kvproto::copy_pod(store, copy, shard)
}

/// One copy and what it answered on `GET /v1/admin/raft/status` (or why it did not).
#[derive(Debug, Clone)]
pub struct CopyRaft {
    pub copy: CopyPod,
    pub status: Result<RaftStatus, String>,
}

/// The copy that leads a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub pod: String,
    pub node_id: u64,
    pub term: u64,
}

/// A shard whose copies all answer, agree on one leader, and are voters in sync with it.
#[derive(Debug, Clone)]
pub struct ShardRaft {
    pub shard: u32,
    pub leader: Leader,
    /// Every copy with its status, by copy number.
    pub copies: Vec<(CopyPod, RaftStatus)>,
}

impl ShardRaft {
    /// The copies that follow, by copy number.
    pub fn followers(&self) -> impl Iterator<Item = &(CopyPod, RaftStatus)> {
        self.copies
            .iter()
            .filter(|(c, _)| c.name() != self.leader.pod)
    }

    /// The status of the copy on pod `pod`.
    pub fn status_of(&self, pod: &str) -> Option<&RaftStatus> {
        self.copies
            .iter()
            .find(|(c, _)| c.name() == pod)
            .map(|(_, s)| s)
    }
}

/// Reads the copies' Raft status through their pod IPs (reachable from the node, as
/// [`shard_http`] reaches shards), with the store's admin token.
#[derive(Debug, Clone)]
pub struct RaftProbe {
    store: String,
    token: String,
    http: reqwest::Client,
}

impl RaftProbe {
    pub async fn new(ns: &TestNamespace, store: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| Error::Check(format!("http client: {e}")))?;
        Ok(RaftProbe {
            store: store.to_owned(),
            token: stores::admin_token(ns, store).await?,
            http,
        })
    }

    fn base(pod: &Pod) -> Result<String> {
        shard_http::address(pod)
            .ok_or_else(|| Error::Check(format!("pod {} has no IP or http port", pod.name_any())))
    }

    /// One copy's `GET /v1/admin/raft/status`.
    pub async fn status(&self, pod: &Pod) -> Result<RaftStatus> {
        let url = format!("{}{STATUS_PATH}", Self::base(pod)?);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Error::Check(format!("{url}: {e}")))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(Error::Check(format!("{url}: {status} {body}")));
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Every copy pod's status, by shard.
    pub async fn copies(&self, ns: &TestNamespace) -> Result<BTreeMap<u32, Vec<CopyRaft>>> {
        let mut out: BTreeMap<u32, Vec<CopyRaft>> = BTreeMap::new();
        for copy in copy_pods(ns, &self.store).await? {
            let status = self.status(&copy.pod).await.map_err(|e| e.to_string());
            out.entry(copy.shard)
                .or_default()
                .push(CopyRaft { copy, status });
        }
        Ok(out)
    }

    /// The copy each shard's copies say leads right now (the one in state leader with the
    /// highest term), for the shards that have one; nothing is waited for.
    pub async fn leaders(&self, ns: &TestNamespace) -> Result<BTreeMap<u32, Leader>> {
        Ok(self
            .copies(ns)
            .await?
            .into_iter()
            .filter_map(|(shard, copies)| current_leader(&copies).map(|l| (shard, l)))
            .collect())
    }

    /// Waits (at most `limit`) until every one of `shards` shards has `factor` copies that
    /// answer, agree on one leader, and are voters in sync with it ([`agreed_shard`]).
    pub async fn wait_leaders(
        &self,
        ns: &TestNamespace,
        shards: u32,
        factor: u32,
        limit: Duration,
    ) -> Result<BTreeMap<u32, ShardRaft>> {
        wait::until(
            &format!(
                "{shards} shards of {} with one leader and {factor} copies in sync",
                self.store
            ),
            limit,
            POLL,
            || async move {
                let copies = self.copies(ns).await.map_err(|e| e.to_string())?;
                let mut agreed = BTreeMap::new();
                for shard in 0..shards {
                    let of_shard = copies.get(&shard).map(Vec::as_slice).unwrap_or_default();
                    let view = agreed_shard(&self.store, shard, factor, of_shard)
                        .map_err(|e| format!("shard {shard}: {e}"))?;
                    agreed.insert(shard, view);
                }
                Ok(Some(agreed))
            },
        )
        .await
    }

    /// The `x-kv-leader` this copy answers a `GET /v1/keys/{key}` with (any status).
    pub async fn leader_named_by(&self, pod: &Pod, key: &str) -> Result<Option<String>> {
        let url = format!("{}/v1/keys/{key}", Self::base(pod)?);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Check(format!("{url}: {e}")))?;
        Ok(resp
            .headers()
            .get(header::LEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }
}

/// The copy in state leader with the highest term among `copies`, if any answers so.
pub fn current_leader(copies: &[CopyRaft]) -> Option<Leader> {
    copies
        .iter()
        .filter_map(|c| c.status.as_ref().ok().map(|s| (c, s)))
        .filter(|(_, s)| s.state == ServerState::Leader)
        .max_by_key(|(_, s)| s.term)
        .map(|(c, s)| Leader {
            pod: c.copy.name(),
            node_id: s.node_id,
            term: s.term,
        })
}

/// The shard `shard` of `store` if its `copies` are exactly copies 0..factor on the pods the
/// contract names, all answer for the same group, one leads (itself as its leader) and the
/// others follow it in its term, and the leader's membership is those copies' node IDs as
/// voters (no learners), each within [`IN_SYNC_LAG`] of it. Otherwise what is not so yet.
pub fn agreed_shard(
    store: &str,
    shard: u32,
    factor: u32,
    copies: &[CopyRaft],
) -> Result<ShardRaft, String> {
    let names: Vec<String> = copies.iter().map(|c| c.copy.name()).collect();
    let want: Vec<String> = (0..factor).map(|k| pod_name(store, k, shard)).collect();
    let numbers: Vec<u32> = copies.iter().map(|c| c.copy.copy).collect();
    if names != want || numbers != (0..factor).collect::<Vec<_>>() {
        return Err(format!(
            "copies {names:?} (copy numbers {numbers:?}), want {want:?}"
        ));
    }
    let mut answered = Vec::new();
    for c in copies {
        match &c.status {
            Ok(s) => answered.push((c.copy.clone(), s.clone())),
            Err(e) => return Err(format!("{} does not answer: {e}", c.copy.name())),
        }
    }
    let groups: BTreeSet<String> = answered
        .iter()
        .map(|(_, s)| {
            s.group
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect();
    let group_shard = answered
        .first()
        .and_then(|(_, s)| s.group.as_ref())
        .map(|g| g.shard);
    if groups.len() != 1 || group_shard != Some(shard) {
        return Err(format!(
            "copies in groups {groups:?}, want one group of shard {shard}"
        ));
    }
    let leading: Vec<&(CopyPod, RaftStatus)> = answered
        .iter()
        .filter(|(_, s)| s.state == ServerState::Leader)
        .collect();
    let [(leader_pod, leader)] = leading.as_slice() else {
        let states: Vec<String> = answered
            .iter()
            .map(|(c, s)| format!("{}={:?}@{}", c.name(), s.state, s.term))
            .collect();
        return Err(format!("not exactly one leader: {states:?}"));
    };
    let leader_name = leader_pod.name();
    for (c, s) in &answered {
        let follows = s.leader.as_ref().map(|m| m.pod.as_str());
        let state_ok = c.name() == leader_name || s.state == ServerState::Follower;
        if !state_ok || follows != Some(leader_name.as_str()) || s.term != leader.term {
            return Err(format!(
                "{} is {:?} in term {} following {follows:?}; the leader {leader_name} is in term {}",
                c.name(),
                s.state,
                s.term,
                leader.term
            ));
        }
    }
    let ids: BTreeSet<(u64, String)> = answered
        .iter()
        .map(|(c, s)| (s.node_id, c.name()))
        .collect();
    let voters: BTreeSet<(u64, String)> = leader
        .members
        .iter()
        .filter(|m| m.role == Role::Voter)
        .map(|m| (m.member.node_id, m.member.pod.clone()))
        .collect();
    let learners = leader
        .members
        .iter()
        .filter(|m| m.role == Role::Learner)
        .count();
    if voters != ids || learners != 0 {
        return Err(format!(
            "the leader's voters {voters:?} and {learners} learners; the copies are {ids:?}"
        ));
    }
    for m in &leader.members {
        if m.member.pod == leader_name {
            continue;
        }
        match m.lag {
            Some(lag) if lag <= IN_SYNC_LAG => {}
            lag => {
                return Err(format!(
                    "{} lags the leader by {lag:?} entries",
                    m.member.pod
                ));
            }
        }
    }
    Ok(ShardRaft {
        shard,
        leader: Leader {
            pod: leader_name,
            node_id: leader.node_id,
            term: leader.term,
        },
        copies: answered,
    })
}

/// The KVStore API as dynamic objects (fields the operator's types may lack are kept).
pub fn kvstore_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<KVStore>(&());
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

/// Creates a KVStore of `shards` shards with `spec.replication.factor: factor`, and fails at
/// once when the API server dropped the field (a CRD without replication).
pub async fn create(ns: &TestNamespace, store: &str, shards: i32, factor: u32) -> Result<()> {
    let json = stores::kvstore_json(
        store,
        shards,
        serde_json::json!({ "replication": { "factor": factor } }),
    );
    let object: DynamicObject = serde_json::from_value(json)?;
    let created = kvstore_api(ns)
        .create(&PostParams::default(), &object)
        .await?;
    let kept = created.data["spec"]["replication"]["factor"].as_u64();
    check(kept == Some(u64::from(factor)), || {
        format!(
            "the KVStore CRD kept spec.replication.factor as {kept:?}, not {factor}: the \
             installed operator has no replication (spec: {})",
            created.data["spec"]
        )
    })
}

/// One shard in `status.replication.shards`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReplication {
    #[serde(default)]
    pub shard: u32,
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub in_sync: Option<u64>,
    /// A count, or a list of members (either is read as its count).
    #[serde(default)]
    pub voters: serde_json::Value,
    #[serde(default)]
    pub learners: serde_json::Value,
    #[serde(default)]
    pub max_lag: Option<u64>,
    #[serde(default)]
    pub phase: Option<String>,
}

/// `status.replication`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    #[serde(default)]
    pub factor: u32,
    #[serde(default)]
    pub shards: Vec<ShardReplication>,
}

/// A count given as a number or as a list; `None` when absent.
fn count(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::Array(a) => Some(a.len() as u64),
        _ => None,
    }
}

/// The store's `status.replication`, as last written (`None` before the operator wrote it).
pub fn replication_of(store: &DynamicObject) -> Result<Option<ReplicationStatus>> {
    let value = &store.data["status"]["replication"];
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_value(value.clone())?))
}

/// The store `Available` at its generation, with `status.replication` at `factor` for
/// `shards` shards, each with a leader among its copies, all `factor` copies in sync, no
/// learners, phase `Stable`, and condition `Degraded=False`. Otherwise what is not so yet.
pub fn healthy(
    store: &DynamicObject,
    shards: u32,
    factor: u32,
) -> Result<ReplicationStatus, String> {
    let name = store.name_any();
    let status = &store.data["status"];
    let observed = status["observedGeneration"].as_i64();
    if observed != store.metadata.generation || status["phase"] != "Available" {
        return Err(format!(
            "phase {} at generation {observed:?} of {:?}",
            status["phase"], store.metadata.generation
        ));
    }
    let degraded: Vec<&serde_json::Value> = status["conditions"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["type"] == "Degraded").collect())
        .unwrap_or_default();
    if degraded.len() != 1 || degraded.iter().any(|c| c["status"] != "False") {
        return Err(format!("condition Degraded: {degraded:?}"));
    }
    let replication = replication_of(store)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no status.replication".to_owned())?;
    if replication.factor != factor || replication.shards.len() != shards as usize {
        return Err(format!(
            "status.replication factor {} with {} shards",
            replication.factor,
            replication.shards.len()
        ));
    }
    for shard in 0..shards {
        let Some(s) = replication.shards.iter().find(|s| s.shard == shard) else {
            return Err(format!("status.replication has no shard {shard}"));
        };
        let copies: Vec<String> = (0..factor).map(|k| pod_name(&name, k, shard)).collect();
        let leads = s.leader.as_ref().is_some_and(|l| copies.contains(l));
        let voters = count(&s.voters);
        let learners = count(&s.learners);
        let ok = leads
            && s.in_sync == Some(u64::from(factor))
            && voters.is_none_or(|v| v == u64::from(factor))
            && learners.is_none_or(|l| l == 0)
            && s.phase.as_deref().is_none_or(|p| p == "Stable");
        if !ok {
            return Err(format!(
                "shard {shard}: leader {:?} (copies {copies:?}), inSync {:?}, voters {voters:?}, \
                 learners {learners:?}, phase {:?}, maxLag {:?}",
                s.leader, s.in_sync, s.phase, s.max_lag
            ));
        }
    }
    Ok(replication)
}

/// Waits (at most `limit`) until [`healthy`] holds for the store.
pub async fn wait_replication_healthy(
    ns: &TestNamespace,
    store: &str,
    shards: u32,
    factor: u32,
    limit: Duration,
) -> Result<ReplicationStatus> {
    let api = kvstore_api(ns);
    wait::until(
        &format!("kvstore {store}: replication healthy ({shards} shards x {factor} copies, Degraded=False)"),
        limit,
        POLL,
        || {
            let api = api.clone();
            async move {
                let object = api.get(store).await.map_err(|e| e.to_string())?;
                healthy(&object, shards, factor).map(Some)
            }
        },
    )
    .await
}

/// What runs a copy now: its pod's UID and its kvserver container's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incarnation {
    pub uid: String,
    pub container: String,
}

fn incarnation_of(pod: &Pod) -> Result<Incarnation> {
    Ok(Incarnation {
        uid: pod.uid().unwrap_or_default(),
        container: host::container_id(pod, operator::labels::KVSERVER_CONTAINER)?,
    })
}

/// The copy on pod `name` as it runs now.
pub async fn incarnation(ns: &TestNamespace, name: &str) -> Result<Incarnation> {
    incarnation_of(&ns.api::<Pod>().get(name).await?)
}

/// Ready and not terminating (for a copy: in sync, by its readiness probe).
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits (at most `limit`) until pod `name` runs another kvserver than `before` (a restarted
/// container or a new pod) and is Ready (for a copy: in sync); answers the new incarnation.
pub async fn wait_replaced(
    ns: &TestNamespace,
    name: &str,
    before: &Incarnation,
    limit: Duration,
) -> Result<Incarnation> {
    let pods = ns.api::<Pod>();
    wait::until(
        &format!("pod {name} running a new, Ready kvserver"),
        limit,
        POLL,
        || {
            let pods = pods.clone();
            async move {
                let pod = pods.get(name).await.map_err(|e| e.to_string())?;
                let now = incarnation_of(&pod).map_err(|e| e.to_string())?;
                if &now != before && now.container != before.container && is_ready(&pod) {
                    Ok(Some(now))
                } else {
                    Err(format!("{now:?}, ready {}", is_ready(&pod)))
                }
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproto::raft::{GroupId, Member, MemberStatus};

    fn copy(store: &str, shard: u32, k: u32) -> CopyPod {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": pod_name(store, k, shard) }
        }))
        .unwrap_or_default();
        CopyPod {
            shard,
            copy: k,
            pod,
        }
    }

    fn member(shard: u32, k: u32) -> Member {
        Member {
            node_id: u64::from(10 * shard + k + 1),
            pod: pod_name("kv", k, shard),
            addr: String::new(),
        }
    }

    /// Shard `shard` of store kv, copy `lead` leading in term 3, every follower `lag` behind.
    fn shard_of(shard: u32, lead: u32, lag: u64) -> Vec<CopyRaft> {
        let members: Vec<MemberStatus> = (0..3)
            .map(|k| MemberStatus {
                member: member(shard, k),
                role: Role::Voter,
                matched: Some(100u64.saturating_sub(lag)),
                lag: Some(if k == lead { 0 } else { lag }),
            })
            .collect();
        (0..3)
            .map(|k| CopyRaft {
                copy: copy("kv", shard, k),
                status: Ok(RaftStatus {
                    group: Some(GroupId {
                        store_uid: "uid".into(),
                        shard,
                    }),
                    node_id: member(shard, k).node_id,
                    state: if k == lead {
                        ServerState::Leader
                    } else {
                        ServerState::Follower
                    },
                    term: 3,
                    leader: Some(member(shard, lead)),
                    last_log_index: Some(100),
                    committed: Some(100),
                    applied: Some(100),
                    members: if k == lead {
                        members.clone()
                    } else {
                        Vec::new()
                    },
                }),
            })
            .collect()
    }

    #[test]
    fn a_shard_with_one_leader_and_copies_in_sync_is_agreed() {
        let view = agreed_shard("kv", 1, 3, &shard_of(1, 2, 5));
        let view = view.map_err(|e| e.to_string());
        assert_eq!(
            view.as_ref().map(|v| v.leader.pod.clone()),
            Ok("kv-r2-1".to_owned())
        );
        assert_eq!(
            view.map(|v| v.followers().map(|(c, _)| c.name()).collect::<Vec<_>>()),
            Ok(vec!["kv-1".to_owned(), "kv-r1-1".to_owned()])
        );
        assert_eq!(
            current_leader(&shard_of(1, 2, 5)).map(|l| l.pod),
            Some("kv-r2-1".to_owned())
        );
    }

    #[test]
    fn lagging_silent_split_or_misnamed_copies_are_not_agreed() {
        assert!(agreed_shard("kv", 0, 3, &shard_of(0, 0, IN_SYNC_LAG + 1)).is_err());
        let mut silent = shard_of(0, 0, 0);
        silent[1].status = Err("connection refused".into());
        assert!(agreed_shard("kv", 0, 3, &silent).is_err());
        let mut two = shard_of(0, 0, 0);
        if let Ok(s) = two[1].status.as_mut() {
            s.state = ServerState::Leader;
        }
        assert!(agreed_shard("kv", 0, 3, &two).is_err());
        let mut stale_term = shard_of(0, 0, 0);
        if let Ok(s) = stale_term[2].status.as_mut() {
            s.term = 2;
        }
        assert!(agreed_shard("kv", 0, 3, &stale_term).is_err());
        // A copy pod without its copy label would be listed as copy 0.
        let mut unlabelled = shard_of(0, 0, 0);
        unlabelled[2].copy.copy = 0;
        assert!(agreed_shard("kv", 0, 3, &unlabelled).is_err());
        // A rebuilt copy whose new node ID is not yet a voter (the old one still is).
        let mut rebuilt = shard_of(0, 0, 0);
        if let Ok(s) = rebuilt[1].status.as_mut() {
            s.node_id = 999;
        }
        assert!(agreed_shard("kv", 0, 3, &rebuilt).is_err());
        assert!(agreed_shard("kv", 0, 3, &shard_of(0, 0, 0)[..2]).is_err());
    }

    fn store(status: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kvstore.dev/v1alpha1", "kind": "KVStore",
            "metadata": { "name": "kv", "generation": 2 },
            "spec": {}, "status": status,
        }))
        .unwrap_or_else(|_| DynamicObject::new("kv", &ApiResource::erase::<KVStore>(&())))
    }

    fn shard_status(shard: u32, in_sync: u32, phase: &str) -> serde_json::Value {
        serde_json::json!({ "shard": shard, "leader": pod_name("kv", 1, shard),
            "inSync": in_sync, "voters": 3, "learners": 0, "maxLag": 4, "phase": phase })
    }

    fn status(shards: Vec<serde_json::Value>, degraded: &str) -> serde_json::Value {
        serde_json::json!({
            "phase": "Available", "observedGeneration": 2,
            "conditions": [{ "type": "Degraded", "status": degraded }],
            "replication": { "factor": 3, "shards": shards },
        })
    }

    #[test]
    fn replication_status_is_healthy_only_when_every_shard_is_in_sync() {
        let all = |in_sync, phase: &str| -> Vec<serde_json::Value> {
            (0..3).map(|i| shard_status(i, in_sync, phase)).collect()
        };
        assert!(healthy(&store(status(all(3, "Stable"), "False")), 3, 3).is_ok());
        assert!(healthy(&store(status(all(2, "Stable"), "False")), 3, 3).is_err());
        assert!(healthy(&store(status(all(3, "CatchingUp"), "False")), 3, 3).is_err());
        assert!(healthy(&store(status(all(3, "Stable"), "True")), 3, 3).is_err());
        assert!(
            healthy(
                &store(status(all(3, "Stable")[..2].to_vec(), "False")),
                3,
                3
            )
            .is_err()
        );
        assert!(
            healthy(
                &store(serde_json::json!({ "phase": "Available", "observedGeneration": 2 })),
                3,
                3
            )
            .is_err()
        );
    }
}
