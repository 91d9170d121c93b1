//! Calling the shards of a map: [`peer`] finds one server, [`on_each`] is the one way to call
//! every shard, and [`push`] sends a map with it.

use std::future::Future;

use futures::future::join_all;
use kvproto::Topology;

use super::admin::CallResult;
use super::dyn_admin::DynShardAdmin;
use super::error::ShardError;

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
    shards: impl IntoIterator<Item = u32>,
    call: impl Fn(&'p str) -> Fut,
) -> Result<Vec<T>, ShardError>
where
    Fut: Future<Output = CallResult<T>>,
{
    let call = &call;
    let calls = shards.into_iter().map(|shard| async move {
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
    shards: impl IntoIterator<Item = u32>,
) -> Result<(), ShardError> {
    on_each(peers, shards, |url| {
        admin.put_topology(url, token, topology)
    })
    .await
    .map(|_| ())
}
