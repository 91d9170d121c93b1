//! The real admin client: kvclient's `ServerClient` with the store's token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::StreamExt;
use kvclient::{ClientConfig, ExportScope, ServerClient};
use kvproto::bulk::BulkRecord;
use kvproto::wire::ImportMode;
use kvproto::{Fence, Topology};

use super::admin::{CallResult, RecordStream, ShardAdmin};

/// Deadline of one admin call (other than bulk export and import).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// kvclient's `ServerClient` with the store's token, one per server and token, kept so that
/// the copy's many batches reuse their connections.
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

    fn client(&self, base_url: &str, token: &str) -> CallResult<ServerClient> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (base_url.to_owned(), token.to_owned());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let config = ClientConfig {
            token: Some(token.to_owned()),
            ..self.config.clone()
        };
        let client = ServerClient::new(base_url, config)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

impl ShardAdmin for KvClientAdmin {
    async fn put_topology(
        &self,
        base_url: &str,
        token: &str,
        topology: &Topology,
    ) -> CallResult<()> {
        self.client(base_url, token)?.put_topology(topology).await?;
        Ok(())
    }

    async fn export_moving(&self, base_url: &str, token: &str) -> CallResult<RecordStream> {
        let stream = self
            .client(base_url, token)?
            .export(ExportScope::Moving)
            .await?;
        Ok(stream.boxed())
    }

    async fn moving_count(&self, base_url: &str, token: &str) -> CallResult<u64> {
        self.client(base_url, token)?
            .export_count(ExportScope::Moving)
            .await
    }

    async fn import_if_absent(
        &self,
        base_url: &str,
        token: &str,
        fence: Fence,
        records: &[BulkRecord],
    ) -> CallResult<u64> {
        let report = self
            .client(base_url, token)?
            .import(records, ImportMode::IfAbsent, Some(fence))
            .await?;
        Ok(report.applied)
    }

    async fn cleanup(&self, base_url: &str, token: &str, fence: Fence) -> CallResult<()> {
        self.client(base_url, token)?.cleanup(Some(fence)).await?;
        Ok(())
    }

    async fn key_count(&self, base_url: &str, token: &str) -> CallResult<u64> {
        Ok(self.client(base_url, token)?.info().await?.keys)
    }
}
