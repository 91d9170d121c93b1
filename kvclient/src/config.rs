//! Client settings: timeouts, retries, the token, the CA trusted for `https://` servers, and the
//! shared HTTP connection pool.
//!
//! HTTPS uses rustls (ring) and trusts only the CA certificates given ([`ClientConfig::ca_pem`],
//! the CLI's `--ca-file`), never built-in roots: kvservers carry the cluster's own certificates
//! (cert-manager's or the operator's CA), and trusting a public root for them would be wrong.

use std::path::Path;
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
    /// PEM CA certificates trusted for `https://` servers (e.g. a cert-manager Secret's
    /// `ca.crt`); without them no `https://` server is trusted.
    pub ca_pem: Option<Vec<u8>>,
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
            ca_pem: None,
        }
    }
}

impl ClientConfig {
    /// An HTTP client with a keep-alive connection pool; share it between servers.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        if let Some(pem) = &self.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(Error::HttpClient)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().map_err(Error::HttpClient)
    }

    /// Reads the CA certificates to trust from a PEM file; it must hold at least one.
    pub fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
        let bad = |reason: String| Error::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Ok(pem),
            Ok(_) => Err(bad("no PEM certificate in it".to_owned())),
            Err(e) => Err(bad(e.to_string())),
        }
    }
}
