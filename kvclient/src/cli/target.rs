//! Turns the target flags into a [`ShardedClient`]: a fixed list, or a KVStore's servers.

use std::time::Duration;

use kvclient::{ClientConfig, RetryPolicy, ShardedClient};

use super::args::{ConnArgs, Target};
use super::error::CliError;
use super::kvstore;

/// The client configuration from the connection flags.
pub fn config(conn: &ConnArgs, default_retries: u32) -> Result<ClientConfig, CliError> {
    let token = match &conn.token_file {
        // The first line: a server's token file may list the next token too (rotation).
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("--token-file {}: {e}", path.display())))?
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string(),
        ),
        None => None,
    };
    let ca_pem = match &conn.ca_file {
        Some(path) => Some(
            ClientConfig::read_ca_file(path)
                .map_err(|e| CliError::Usage(format!("--ca-file: {e}")))?,
        ),
        None => None,
    };
    let retries = conn.retries.unwrap_or(default_retries);
    Ok(ClientConfig {
        timeout: conn.timeout,
        connect_timeout: conn.timeout.min(Duration::from_secs(1)),
        retry: match conn.retry_within {
            Some(budget) => RetryPolicy::within(budget),
            None if retries == 0 => RetryPolicy::NONE,
            None => RetryPolicy {
                max_retries: retries,
                ..RetryPolicy::standard()
            },
        },
        token,
        ca_pem,
        ..ClientConfig::default()
    })
}

/// A sharded client for one-shot commands and the load generator.
pub async fn sharded(target: &Target) -> Result<ShardedClient, CliError> {
    let config = config(&target.conn, RetryPolicy::standard().max_retries)?;
    let client = if let Some(name) = &target.kvstore {
        let kube = kvstore::kube_client().await?;
        let view = kvstore::discover(&kube, name, target.namespace.as_deref()).await?;
        let config = kvstore::trusting_store_ca(&kube, &view, config).await?;
        let client = ShardedClient::new(&view.servers, config)?.with_sharding(view.sharding);
        client.set_fallback_shards(view.serving);
        client.set_copies(&view.copies)?;
        client
    } else {
        let servers = match &target.servers {
            Some(list) => list.0.clone(),
            None => target.server.clone(),
        };
        if servers.is_empty() {
            return Err(CliError::Usage(
                "give --server URL (repeatable), --servers a,b,c or --kvstore NAME".into(),
            ));
        }
        ShardedClient::new(&servers, config)?
    };
    // Route by the servers' topology from the first request; unreachable servers are fine here.
    if let Err(e) = client.refresh_topology().await {
        tracing::debug!(error = %e, "no server answered /v1/topology");
    }
    Ok(client)
}
