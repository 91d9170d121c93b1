//! Admin calls from the operator to the shard servers, behind a trait so that the reconcile's
//! decisions are tested without servers. The real implementation, [`KvClientAdmin`], is the
//! kvclient crate's `ServerClient`; no second HTTP client lives here.

use futures::future::{BoxFuture, join_all};
use kvclient::{ClientConfig, ServerClient};
use kvproto::Topology;

use crate::error::{Error, Result};

/// The admin API of one kvserver, as the operator uses it.
pub trait ShardAdmin: Send + Sync {
    /// `PUT /v1/admin/topology` on the server at `base_url`, with the admin `token`.
    fn put_topology<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        topology: &'a Topology,
    ) -> BoxFuture<'a, std::result::Result<(), String>>;
}

/// Pushes `topology` to every server it lists, concurrently; fails with the first shard that
/// refused it. Servers accept the same map twice, so a partial push is simply repeated.
pub async fn push_all(admin: &dyn ShardAdmin, token: &str, topology: &Topology) -> Result<()> {
    let calls = topology
        .peers
        .iter()
        .map(|peer| admin.put_topology(peer, token, topology));
    for (shard, result) in (0u32..).zip(join_all(calls).await) {
        result.map_err(|message| Error::Shard { shard, message })?;
    }
    Ok(())
}

/// The real admin client: kvclient's `ServerClient`, one per call, with the store's token.
#[derive(Debug, Clone, Default)]
pub struct KvClientAdmin {
    /// Timeouts and retries of the admin calls (the token is set per store).
    pub config: ClientConfig,
}

impl ShardAdmin for KvClientAdmin {
    fn put_topology<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        topology: &'a Topology,
    ) -> BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(async move {
            let config = ClientConfig {
                token: Some(token.to_owned()),
                ..self.config.clone()
            };
            let client = ServerClient::new(base_url, config).map_err(|e| e.to_string())?;
            client
                .put_topology(topology)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
