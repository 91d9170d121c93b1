//! [`ShardAdmin`] as a trait object: the reconcile's [`Context`](crate::context::Context) holds
//! whichever implementation it was given, so this is the one place that boxes the calls.

use futures::future::BoxFuture;
use kvproto::bulk::BulkRecord;
use kvproto::raft::{GroupId, RaftStatus};
use kvproto::{Fence, Topology};

use super::admin::{CallResult, RecordStream, ShardAdmin};
use super::raft::RaftChange;

/// [`ShardAdmin`] with boxed futures; every `ShardAdmin` is one.
pub trait DynShardAdmin: Send + Sync {
    fn trust(&self, domain: &str, ca_pem: Option<&[u8]>);
    fn put_topology<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        topology: &'a Topology,
    ) -> BoxFuture<'a, CallResult<()>>;
    fn export_moving<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<RecordStream>>;
    fn moving_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<u64>>;
    fn import_if_absent<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        fence: Fence,
        records: &'a [BulkRecord],
    ) -> BoxFuture<'a, CallResult<u64>>;
    fn cleanup<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        fence: Fence,
    ) -> BoxFuture<'a, CallResult<()>>;
    fn key_count<'a>(&'a self, base_url: &'a str, token: &'a str)
    -> BoxFuture<'a, CallResult<u64>>;
    fn raft_status<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<RaftStatus>>;
    fn raft_change<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        change: &'a RaftChange,
    ) -> BoxFuture<'a, CallResult<()>>;
}

impl<A: ShardAdmin> DynShardAdmin for A {
    fn trust(&self, domain: &str, ca_pem: Option<&[u8]>) {
        ShardAdmin::trust(self, domain, ca_pem);
    }

    fn put_topology<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        topology: &'a Topology,
    ) -> BoxFuture<'a, CallResult<()>> {
        Box::pin(ShardAdmin::put_topology(self, base_url, token, topology))
    }

    fn export_moving<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<RecordStream>> {
        Box::pin(ShardAdmin::export_moving(self, base_url, token))
    }

    fn moving_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<u64>> {
        Box::pin(ShardAdmin::moving_count(self, base_url, token))
    }

    fn import_if_absent<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        fence: Fence,
        records: &'a [BulkRecord],
    ) -> BoxFuture<'a, CallResult<u64>> {
        Box::pin(ShardAdmin::import_if_absent(
            self, base_url, token, fence, records,
        ))
    }

    fn cleanup<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        fence: Fence,
    ) -> BoxFuture<'a, CallResult<()>> {
        Box::pin(ShardAdmin::cleanup(self, base_url, token, fence))
    }

    fn key_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<u64>> {
        Box::pin(ShardAdmin::key_count(self, base_url, token))
    }

    fn raft_status<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, CallResult<RaftStatus>> {
        Box::pin(ShardAdmin::raft_status(self, base_url, token))
    }

    fn raft_change<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        change: &'a RaftChange,
    ) -> BoxFuture<'a, CallResult<()>> {
        Box::pin(ShardAdmin::raft_change(
            self, base_url, token, group, change,
        ))
    }
}
