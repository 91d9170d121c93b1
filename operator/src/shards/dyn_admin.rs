//! [`ShardAdmin`] as a trait object: the reconcile's [`Context`](crate::context::Context) holds
//! whichever implementation it was given, so this is the one place that boxes the calls.

use futures::future::BoxFuture;
use kvproto::bulk::BulkRecord;
use kvproto::raft::{GroupId, Member, RaftStatus};
use kvproto::{Fence, Topology};

use super::admin::{CallResult, RecordStream, ShardAdmin};

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
    fn raft_init<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        voters: &'a [Member],
    ) -> BoxFuture<'a, CallResult<RaftStatus>>;
    fn raft_add_learner<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        member: &'a Member,
    ) -> BoxFuture<'a, CallResult<RaftStatus>>;
    fn raft_set_voters<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        voters: &'a [Member],
    ) -> BoxFuture<'a, CallResult<RaftStatus>>;
    fn raft_transfer_leader<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        to: Option<&'a Member>,
    ) -> BoxFuture<'a, CallResult<Member>>;
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

    fn raft_init<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        voters: &'a [Member],
    ) -> BoxFuture<'a, CallResult<RaftStatus>> {
        Box::pin(ShardAdmin::raft_init(self, base_url, token, group, voters))
    }

    fn raft_add_learner<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        member: &'a Member,
    ) -> BoxFuture<'a, CallResult<RaftStatus>> {
        Box::pin(ShardAdmin::raft_add_learner(
            self, base_url, token, group, member,
        ))
    }

    fn raft_set_voters<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        voters: &'a [Member],
    ) -> BoxFuture<'a, CallResult<RaftStatus>> {
        Box::pin(ShardAdmin::raft_set_voters(
            self, base_url, token, group, voters,
        ))
    }

    fn raft_transfer_leader<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        group: &'a GroupId,
        to: Option<&'a Member>,
    ) -> BoxFuture<'a, CallResult<Member>> {
        Box::pin(ShardAdmin::raft_transfer_leader(
            self, base_url, token, group, to,
        ))
    }
}
