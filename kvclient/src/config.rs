//! Client settings: timeouts, retries, the admin token, and the shared HTTP connection pool.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Settings shared by every server a client talks to.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Whole-request deadline for data, info and topology routes: a dead server never makes a
    /// call hang longer than this (times the retries).
    pub timeout: Duration,
    /// Deadline for opening a connection.
    pub connect_timeout: Duration,
    /// Whole-request deadline for bulk export and import, which move many records.
    pub bulk_timeout: Duration,
    pub retry: RetryPolicy,
    /// Sent as `Authorization: Bearer` on every request when set (admin routes need it, data
    /// routes need it behind `--require-token-for-data`).
    pub token: Option<String>,
    /// Largest value accepted when decoding an export stream.
    pub max_value_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            bulk_timeout: Duration::from_secs(600),
            retry: RetryPolicy::standard(),
            token: None,
            max_value_bytes: 64 << 20,
        }
    }
}

impl ClientConfig {
    /// An HTTP client with a keep-alive connection pool; share it between servers.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(Error::HttpClient)
    }
}
