//! Command-line flags, each with an environment fallback (the StatefulSet sets env, humans set flags).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// When an acknowledged write is forced to stable storage. Every mode writes the record to the
/// OS (the engine's journal) before the answer, so a process crash never loses an acknowledged
/// write; the mode only decides what survives a power loss or kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SyncMode {
    /// fsync before every answer; concurrent writers share one fsync (group commit).
    Always,
    /// fsync in the background every `--sync-interval`; a power loss may lose that window.
    #[default]
    Batch,
    /// Never fsync explicitly; the OS writes back when it likes (typically within 30 s).
    Never,
}

/// The server's configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kvserver",
    version,
    about = "The book's key/value server, made durable"
)]
pub struct Config {
    /// Data port: book routes, /v1 API, admin routes.
    #[arg(long, env = "KV_PORT", default_value_t = 80)]
    pub port: u16,

    /// Ops port: /healthz, /readyz and /metrics (draining starts on SIGTERM, not over HTTP).
    #[arg(long, env = "KV_OPS_PORT", default_value_t = kvproto::wire::DEFAULT_OPS_PORT)]
    pub ops_port: u16,

    /// Address both listeners bind to.
    #[arg(long, env = "KV_BIND", default_value = "0.0.0.0")]
    pub bind: String,

    /// Directory holding the storage engine and the persisted topology (the pod's PVC).
    #[arg(long, env = "KV_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,

    /// File holding the admin bearer token. Without it, admin routes refuse every request.
    #[arg(long, env = "KV_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Largest value accepted, in bytes.
    #[arg(long, env = "KV_MAX_VALUE_BYTES", default_value_t = 1024 * 1024)]
    pub max_value_bytes: usize,

    /// Largest bulk import body, in bytes (imports are validated whole before anything is applied).
    #[arg(long, env = "KV_MAX_IMPORT_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_import_bytes: usize,

    /// Bytes of import bodies held at once (being read or waiting to be applied); more imports
    /// wait. Default: twice `--max-import-bytes`.
    #[arg(long, env = "KV_IMPORT_BUDGET_BYTES")]
    pub import_budget_bytes: Option<usize>,

    /// What an acknowledged write survives: always | batch | never (see README.md).
    #[arg(long, env = "KV_SYNC", value_enum, default_value_t = SyncMode::Batch)]
    pub sync: SyncMode,

    /// fsync period of `--sync batch`.
    #[arg(long, env = "KV_SYNC_INTERVAL", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub sync_interval: Duration,

    /// Size of the read cache in front of the storage engine, in bytes (0 disables it).
    #[arg(long, env = "KV_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_bytes: u64,

    /// This server's shard ordinal. Defaults to the ordinal at the end of POD_NAME (`server-2` → 2), else 0.
    #[arg(long, env = "KV_SHARD")]
    pub shard: Option<u32>,

    /// The pod's name, as set by the downward API; its trailing `-N` is the shard ordinal.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Put the data routes (book and /v1 keys) behind a token: the data token
    /// (`--data-token-file`, else the admin token), or the admin or peer token.
    #[arg(long, env = "KV_REQUIRE_TOKEN_FOR_DATA", default_value_t = false)]
    pub require_token_for_data: bool,

    /// How long draining answers 503 before the listeners close (lets Services drop the pod).
    #[arg(long, env = "KV_DRAIN_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// After the drain delay, how long in-flight requests get to finish before the process exits.
    /// With the default drain delay, 2 s + 5 s + the final sync stays inside the pod's 10 s grace
    /// period, so SIGKILL never lands before the final sync; half-open connections don't stretch it.
    #[arg(long, env = "KV_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Longest time a data request may take before it is answered 503 `timeout`.
    #[arg(long, env = "KV_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Requests served at once; more are shed with 503 `overloaded`.
    #[arg(long, env = "KV_MAX_CONCURRENCY", default_value_t = 1024)]
    pub max_concurrency: usize,

    /// Serve no data and report not ready until a topology has been pushed and persisted (the
    /// operator sets it: a new or replaced pod must not take writes for keys it may not own).
    /// Without it, a server with no topology serves every key, as the book's server did.
    #[arg(long, env = "KV_REQUIRE_TOPOLOGY", default_value_t = false)]
    pub require_topology: bool,

    // Connection and body limits (slow and stalled clients; see docs/api.md, "Limits").
    /// Open connections per port (data and ops each); a connection beyond it is closed at once.
    #[arg(long, env = "KV_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Time a connection gets to send a request's complete head, counted from when it opened or
    /// its previous answer was sent: so also how long an idle keep-alive connection stays open.
    #[arg(long, env = "KV_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Time a data request's or topology push's whole body gets to arrive (answered 408 beyond).
    #[arg(long, env = "KV_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// Bytes of data request bodies held at once, read before a concurrency slot is taken;
    /// more are shed with 503 `overloaded` (never less than `--max-value-bytes`).
    #[arg(long, env = "KV_MAX_BODY_BUFFER_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub max_body_buffer_bytes: usize,

    /// A write to a client that makes no progress for this long closes the connection (a
    /// streamed export lasts as long as its reader keeps reading).
    #[arg(long, env = "KV_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Longest time an admin request (topology push, import with its body, cleanup, export
    /// count, the head of an export) may take before it is answered `timeout`.
    #[arg(long, env = "KV_ADMIN_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub admin_timeout: Duration,

    // TLS and credentials (docs/api.md, "TLS and credentials").
    /// PEM certificate chain served on the data port (with `--tls-key-file`): the data port then
    /// speaks HTTPS only. Re-read every 2 s, so a renewed Secret is served without a restart.
    /// The ops port stays plain HTTP (kubelet probes, metrics scrapes).
    #[arg(long, env = "KV_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "KV_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificates the peer client trusts for https:// peer URLs (re-read every 2 s).
    #[arg(long, env = "KV_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Token file for peer traffic (forwarded requests, read-through): sent to peers, and the only
    /// tokens accepted on forwarding headers and /v1/internal. Defaults to `--admin-token-file`.
    #[arg(long, env = "KV_PEER_TOKEN_FILE")]
    pub peer_token_file: Option<PathBuf>,

    /// Token file checked on data routes under `--require-token-for-data` (the admin token is
    /// accepted there too). Defaults to `--admin-token-file`.
    #[arg(long, env = "KV_DATA_TOKEN_FILE")]
    pub data_token_file: Option<PathBuf>,
}

impl Config {
    /// The shard ordinal: the flag, else POD_NAME's trailing number, else 0.
    pub fn shard_ordinal(&self) -> u32 {
        self.shard
            .or_else(|| self.pod_name.as_deref().and_then(ordinal_of))
            .unwrap_or(0)
    }

    /// `--import-budget-bytes`, or twice `--max-import-bytes`.
    pub fn import_budget(&self) -> usize {
        self.import_budget_bytes
            .unwrap_or(self.max_import_bytes.saturating_mul(2))
    }

    /// A configuration for tests: the data dir given, everything else at its default.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["kvserver"]);
        config.data_dir = data_dir.into();
        config.drain_delay = Duration::ZERO;
        config
    }
}

/// `server-2` → 2; `web-db-10` → 10; `server` → None.
pub fn ordinal_of(pod_name: &str) -> Option<u32> {
    pod_name.rsplit_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_comes_from_the_pod_name_unless_a_flag_says_otherwise() {
        assert_eq!(ordinal_of("server-2"), Some(2));
        assert_eq!(ordinal_of("kv-store-server-10"), Some(10));
        assert_eq!(ordinal_of("server"), None);
        assert_eq!(ordinal_of("server-x"), None);
        let mut c = Config::parse_from(["kvserver", "--pod-name", "server-3"]);
        assert_eq!(c.shard_ordinal(), 3);
        c.shard = Some(1);
        assert_eq!(c.shard_ordinal(), 1);
    }

    #[test]
    fn defaults_follow_the_book() {
        let c = Config::parse_from(["kvserver"]);
        assert_eq!(c.port, 80);
        assert_eq!(c.ops_port, 8081);
        assert_eq!(c.max_value_bytes, 1 << 20);
        assert_eq!(c.sync, SyncMode::Batch);
        assert!(!c.require_token_for_data);
    }
}
