//! Admin calls from the operator to the shard servers, behind a trait so that the reconcile's
//! decisions are tested without servers.
//!
//! - this file: the [`ShardAdmin`] trait (implement it with `async fn`) and [`on_each`], the one
//!   way to call every shard of a map;
//! - `dyn_admin`: [`DynShardAdmin`], the same trait boxed in one place, held by the reconcile;
//! - `error`: [`ShardError`], a failed call naming its shard;
//! - `kvclient_admin`: [`KvClientAdmin`], the real implementation over kvclient's
//!   `ServerClient` (no second HTTP client lives here).
//!
//! The tests' one fake is `operator/tests/support/shards.rs`.

mod dyn_admin;
mod error;
mod kvclient_admin;

use std::future::Future;
use std::ops::Range;

use futures::future::join_all;
use futures::stream::BoxStream;
use kvproto::Topology;
use kvproto::bulk::BulkRecord;

pub use dyn_admin::DynShardAdmin;
pub use error::ShardError;
pub use kvclient_admin::{ADMIN_TIMEOUT, KvClientAdmin};

/// The answer of one admin call.
pub type CallResult<T> = Result<T, kvclient::Error>;

/// Records as an export streams them; an error ends the stream.
pub type RecordStream = BoxStream<'static, CallResult<BulkRecord>>;

/// The admin API of one kvserver, as the operator uses it.
pub trait ShardAdmin: Send + Sync {
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

    /// `POST /v1/admin/import?mode=if-absent`: the number of records applied.
    fn import_if_absent(
        &self,
        base_url: &str,
        token: &str,
        records: &[BulkRecord],
    ) -> impl Future<Output = CallResult<u64>> + Send;

    /// `POST /v1/admin/cleanup`: drop keys the shard no longer owns, and tombstones.
    fn cleanup(&self, base_url: &str, token: &str) -> impl Future<Output = CallResult<()>> + Send;

    /// `GET /v1/info`: how many keys the shard holds.
    fn key_count(
        &self,
        base_url: &str,
        token: &str,
    ) -> impl Future<Output = CallResult<u64>> + Send;
}

/// The base URL of `shard` in `peers` (`peers[i]` is ordinal `i`).
pub fn peer(peers: &[String], shard: u32) -> Result<&str, ShardError> {
    peers
        .get(shard as usize)
        .map(String::as_str)
        .ok_or(ShardError::Unreachable {
            shard,
            source: kvclient::Error::NoServerForShard(shard),
        })
}

/// Runs `call` on the server of every shard in `shards` (addressed by `peers`), concurrently;
/// every call must succeed, and a failed one names its shard. The answers come in shard order.
pub async fn on_each<'p, T, Fut>(
    peers: &'p [String],
    shards: Range<u32>,
    call: impl Fn(&'p str) -> Fut,
) -> Result<Vec<T>, ShardError>
where
    Fut: Future<Output = CallResult<T>>,
{
    let call = &call;
    let calls = shards.map(|shard| async move {
        let url = peer(peers, shard)?;
        call(url)
            .await
            .map_err(|source| ShardError::Unreachable { shard, source })
    });
    join_all(calls).await.into_iter().collect()
}

/// Pushes `topology` to servers `shards` of its own `peers`, concurrently; all must
/// acknowledge. Servers accept the same map twice, so a partial push is simply repeated.
pub async fn push(
    admin: &dyn DynShardAdmin,
    token: &str,
    topology: &Topology,
    peers: &[String],
    shards: Range<u32>,
) -> Result<(), ShardError> {
    on_each(peers, shards, |url| {
        admin.put_topology(url, token, topology)
    })
    .await
    .map(|_| ())
}
