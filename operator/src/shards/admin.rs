//! The [`ShardAdmin`] trait (implement it with `async fn`): the admin API of one kvserver, as
//! the operator uses it, and the types of its answers.
//!
//! The Raft management calls of a replicated shard (`raft_status`, `raft_change`) have default
//! bodies that answer [`unsupported`]: a fake that never runs a replicated store need not
//! implement them.

use std::future::Future;

use futures::stream::BoxStream;
use kvproto::bulk::BulkRecord;
use kvproto::raft::{GroupId, RaftStatus};
use kvproto::{Fence, Topology};

use super::raft::RaftChange;

/// The answer of one admin call.
pub type CallResult<T> = Result<T, kvclient::Error>;

/// Records as an export streams them; an error ends the stream.
pub type RecordStream = BoxStream<'static, CallResult<BulkRecord>>;

/// The hosts of a store's servers, `NAME.NAMESPACE.svc`: every peer URL's host is one label
/// under it (`NAME-i.NAME.NAMESPACE.svc`), as its certificate's `*.NAME.NAMESPACE.svc` names.
pub fn store_domain(store: &str, namespace: &str) -> String {
    format!("{store}.{namespace}.svc")
}

/// What a [`ShardAdmin`] without the Raft management calls answers to them.
pub fn unsupported(base_url: &str) -> kvclient::Error {
    kvclient::Error::BadResponse {
        server: base_url.to_owned(),
        reason: "this admin client has no Raft management calls".to_owned(),
    }
}

/// The admin API of one kvserver, as the operator uses it.
pub trait ShardAdmin: Send + Sync {
    /// Trusts `ca_pem` (PEM CA certificates, a TLS Secret's `ca.crt`) and only it for the
    /// `https://` servers of the store whose hosts are under `domain` ([`store_domain`]);
    /// `None` forgets it. Called before each reconcile's calls, so a rotated CA is trusted from
    /// the next one. `http://` servers need nothing; a fake may ignore it.
    fn trust(&self, domain: &str, ca_pem: Option<&[u8]>) {
        let _ = (domain, ca_pem);
    }

    /// `PUT /v1/admin/topology` on the server at `base_url`, with the admin `token`.
    fn put_topology(
        &self,
        base_url: &str,
        token: &str,
        topology: &Topology,
    ) -> impl Future<Output = CallResult<()>> + Send;

    /// `GET /v1/admin/export?scope=moving`: the local records whose owner is another shard.
    fn export_moving(
        &self,
        base_url: &str,
        token: &str,
    ) -> impl Future<Output = CallResult<RecordStream>> + Send;

    /// `GET /v1/admin/export/count?scope=moving`: how many records `export_moving` would send.
    fn moving_count(
        &self,
        base_url: &str,
        token: &str,
    ) -> impl Future<Output = CallResult<u64>> + Send;

    /// `POST /v1/admin/import?mode=if-absent`, fenced at the move's copy: the number of
    /// records applied.
    fn import_if_absent(
        &self,
        base_url: &str,
        token: &str,
        fence: Fence,
        records: &[BulkRecord],
    ) -> impl Future<Output = CallResult<u64>> + Send;

    /// `POST /v1/admin/cleanup`, fenced at the committed epoch: drop keys the shard no longer
    /// owns, and tombstones.
    fn cleanup(
        &self,
        base_url: &str,
        token: &str,
        fence: Fence,
    ) -> impl Future<Output = CallResult<()>> + Send;

    /// `GET /v1/info`: how many keys the shard holds.
    fn key_count(
        &self,
        base_url: &str,
        token: &str,
    ) -> impl Future<Output = CallResult<u64>> + Send;

    /// `GET /v1/admin/raft/status`: the copy's view of its shard's group.
    fn raft_status(
        &self,
        base_url: &str,
        token: &str,
    ) -> impl Future<Output = CallResult<RaftStatus>> + Send {
        let _ = token;
        let err = unsupported(base_url);
        async move { Err(err) }
    }

    /// A membership change of `group` ([`RaftChange`]: its route and body) to the copy at
    /// `base_url`: the leader, or for an `init` the copy that forms the group (for a `join`
    /// the copy that takes it). What it changed
    /// is read back with [`ShardAdmin::raft_status`] at the next reconcile.
    fn raft_change(
        &self,
        base_url: &str,
        token: &str,
        group: &GroupId,
        change: &RaftChange,
    ) -> impl Future<Output = CallResult<()>> + Send {
        let _ = (token, group, change);
        let err = unsupported(base_url);
        async move { Err(err) }
    }
}
