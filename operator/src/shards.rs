//! Admin calls from the operator to the shard servers, behind a trait so that the reconcile's
//! decisions are tested without servers. The real implementation, [`KvClientAdmin`], is the
//! kvclient crate's `ServerClient`; no second HTTP client lives here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, join_all};
use futures::stream::{BoxStream, StreamExt};
use kvclient::{ClientConfig, ExportScope, ServerClient};
use kvproto::Topology;
use kvproto::bulk::BulkRecord;
use kvproto::wire::ImportMode;

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

    /// `GET /v1/admin/export?scope=moving`: the local records whose owner is another shard.
    fn export_moving<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<RecordStream, String>>;

    /// `GET /v1/admin/export/count?scope=moving`: how many records `export_moving` would send.
    fn moving_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<u64, String>>;

    /// `POST /v1/admin/import?mode=if-absent`: the number of records applied.
    fn import_if_absent<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        records: &'a [BulkRecord],
    ) -> BoxFuture<'a, std::result::Result<u64, String>>;

    /// `POST /v1/admin/cleanup`: drop keys the shard no longer owns, and tombstones.
    fn cleanup<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<(), String>>;

    /// `GET /v1/info`: how many keys the shard holds.
    fn key_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<u64, String>>;
}

/// Deadline of one admin call (other than bulk export and import).
pub const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Records as an export streams them; an error ends the stream.
pub type RecordStream = BoxStream<'static, std::result::Result<BulkRecord, String>>;

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

/// The real admin client: kvclient's `ServerClient` with the store's token, one per server and
/// token, kept so that the copy's many batches reuse their connections.
#[derive(Debug, Clone, Default)]
pub struct KvClientAdmin {
    /// Timeouts and retries of the admin calls (the token is set per store).
    pub config: ClientConfig,
    clients: Arc<Mutex<HashMap<(String, String), ServerClient>>>,
}

impl KvClientAdmin {
    /// An admin client with these timeouts and retries.
    pub fn new(config: ClientConfig) -> Self {
        KvClientAdmin {
            config,
            clients: Arc::default(),
        }
    }

    /// The operator's admin client: a cleanup or a topology push to a busy shard may take
    /// longer than a data request, so calls get [`ADMIN_TIMEOUT`] (bulk transfers keep theirs).
    pub fn for_operator() -> Self {
        KvClientAdmin::new(ClientConfig {
            timeout: ADMIN_TIMEOUT,
            ..ClientConfig::default()
        })
    }

    fn client(&self, base_url: &str, token: &str) -> std::result::Result<ServerClient, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (base_url.to_owned(), token.to_owned());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let config = ClientConfig {
            token: Some(token.to_owned()),
            ..self.config.clone()
        };
        let client = ServerClient::new(base_url, config).map_err(|e| e.to_string())?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

impl ShardAdmin for KvClientAdmin {
    fn put_topology<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        topology: &'a Topology,
    ) -> BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(async move {
            self.client(base_url, token)?
                .put_topology(topology)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn export_moving<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<RecordStream, String>> {
        Box::pin(async move {
            let stream = self
                .client(base_url, token)?
                .export(ExportScope::Moving)
                .await
                .map_err(|e| e.to_string())?;
            Ok(stream.map(|r| r.map_err(|e| e.to_string())).boxed())
        })
    }

    fn moving_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<u64, String>> {
        Box::pin(async move {
            self.client(base_url, token)?
                .export_count(ExportScope::Moving)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn import_if_absent<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        records: &'a [BulkRecord],
    ) -> BoxFuture<'a, std::result::Result<u64, String>> {
        Box::pin(async move {
            self.client(base_url, token)?
                .import(records, ImportMode::IfAbsent)
                .await
                .map(|report| report.applied)
                .map_err(|e| e.to_string())
        })
    }

    fn cleanup<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(async move {
            self.client(base_url, token)?
                .cleanup()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn key_count<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, std::result::Result<u64, String>> {
        Box::pin(async move {
            self.client(base_url, token)?
                .info()
                .await
                .map(|info| info.keys)
                .map_err(|e| e.to_string())
        })
    }
}
