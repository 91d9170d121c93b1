//! What the operator saw of each shard's copies in one reconcile: per copy, the
//! [`RaftStatus`] it answered or why it did not answer. Built by the controller, read by
//! [`super::health`] and [`super::machine`].

use kvproto::raft::{GroupId, Member, MemberStatus, RaftStatus};

/// One copy of one shard as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// `GET /v1/admin/raft/status` failed (no pod yet, not started, refused, timed out).
    Unreachable(String),
    Status(RaftStatus),
}

/// Copy `copy` of a shard (0: the pod `NAME-i`; k: `NAME-rK-i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyView {
    pub copy: u32,
    pub observed: Observed,
    /// Its pod is being deleted: the copy drains (it hands leadership away and stops), so
    /// leadership is never moved to it, whatever it answers.
    pub leaving: bool,
}

impl CopyView {
    /// Its status, when it answered.
    pub fn status(&self) -> Option<&RaftStatus> {
        match &self.observed {
            Observed::Status(s) => Some(s),
            Observed::Unreachable(_) => None,
        }
    }
}

/// Every copy of one shard that exists or should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    pub shard: u32,
    /// Copies in index order, `copies[k].copy == k`: `0..max(factor, copies present)`.
    pub copies: Vec<CopyView>,
    /// The operator saw this shard's group formed before (it recorded voters in
    /// `status.replication`): the group is never initialized again, whatever answers now.
    pub formed: bool,
    /// Copy 0's key count, asked only for a new store's shard that has no group yet: all the
    /// copies of an empty shard may start as voters at once.
    pub copy0_keys: Option<u64>,
}

impl ShardView {
    /// The status of copy `copy`, when it answered.
    pub fn status(&self, copy: u32) -> Option<&RaftStatus> {
        self.copies.get(copy as usize).and_then(CopyView::status)
    }

    /// Whether copy `copy`'s pod is being deleted.
    pub fn leaving(&self, copy: u32) -> bool {
        self.copies.get(copy as usize).is_some_and(|c| c.leaving)
    }
}

/// The store's shards as observed, with what names their copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The KVStore's name, namespace and `metadata.uid` (the groups' identity).
    pub store: String,
    pub namespace: String,
    pub uid: String,
    pub port: u16,
    pub tls: bool,
    /// The store never served a shard map (`status.topology` absent): no client wrote to it.
    pub new_store: bool,
    pub shards: Vec<ShardView>,
}

impl View {
    /// The group of `shard` (`<uid>/<shard>`, the `x-kv-raft-group` value).
    pub fn group(&self, shard: u32) -> GroupId {
        GroupId {
            store_uid: self.uid.clone(),
            shard,
        }
    }

    /// The pod of copy `copy` of `shard`.
    pub fn pod(&self, shard: u32, copy: u32) -> String {
        kvproto::copy_pod(&self.store, copy, shard)
    }

    /// The base URL of copy `copy` of `shard`, where its admin calls go.
    pub fn url(&self, shard: u32, copy: u32) -> String {
        kvproto::copy_url_tls(
            &self.store,
            &self.namespace,
            copy,
            shard,
            self.port,
            self.tls,
        )
    }

    /// Copy `copy` of `shard` as a group member with `node_id`.
    pub fn member(&self, shard: u32, copy: u32, node_id: u64) -> Member {
        Member {
            node_id,
            pod: self.pod(shard, copy),
            addr: self.url(shard, copy),
        }
    }

    /// Which copy of `shard` a member is, by its pod name; None for a pod that is no copy of
    /// that shard.
    pub fn copy_of(&self, shard: u32, member: &MemberStatus) -> Option<u32> {
        copy_of_pod(&self.store, shard, &member.member.pod)
    }
}

/// The copy index of `pod` if it is a copy of `shard` of `store` (`kv-2` → 0, `kv-r1-2` → 1).
pub fn copy_of_pod(store: &str, shard: u32, pod: &str) -> Option<u32> {
    pod_copy_shard(store, pod).and_then(|(copy, s)| (s == shard).then_some(copy))
}

/// The copy and shard of pod `pod` of `store` (`kv-2` → (0, 2), `kv-r1-2` → (1, 2)).
pub fn pod_copy_shard(store: &str, pod: &str) -> Option<(u32, u32)> {
    let rest = pod.strip_prefix(store)?.strip_prefix('-')?;
    let (copy, ordinal) = match rest.strip_prefix('r').and_then(|t| t.split_once('-')) {
        Some((k, i)) if k.parse::<u32>().is_ok_and(|k| k > 0) => (k.parse::<u32>().ok()?, i),
        _ => (0, rest),
    };
    let shard = ordinal.parse::<u32>().ok()?;
    (kvproto::copy_pod(store, copy, shard) == pod).then_some((copy, shard))
}
