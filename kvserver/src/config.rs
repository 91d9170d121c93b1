//! Command-line flags, each with an environment fallback (the StatefulSet sets env, humans set flags).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kvproto::raft::GroupId;
use thiserror::Error;

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

/// How a replicated shard's leader makes sure it still leads before a read (docs/replication.md
/// section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RaftReadPolicy {
    /// The leader's lease (no round trip while it holds); a stale lease falls back to read-index.
    #[default]
    Lease,
    /// One quorum heartbeat per read batch: for clocks that may stop (suspended VMs).
    ReadIndex,
}

/// A combination of flags the server refuses to start with (exit code 2, like clap's own).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsageError {
    #[error(
        "--sync never cannot be used with --raft-store-uid: a replicated copy acknowledges \
         appends its log may lose (use --sync batch or --sync always)"
    )]
    SyncNeverWithRaft,
    #[error("--raft-store-uid {uid:?} is not a store uid: {reason}")]
    StoreUid { uid: String, reason: String },
    #[error("--raft-advertise-url {url:?} {reason} (expected http(s)://HOST:PORT)")]
    AdvertiseUrl { url: String, reason: &'static str },
    #[error("{flag} must be at least 1ms (got {value:?})")]
    TooShort { flag: &'static str, value: Duration },
    #[error(
        "--raft-election-timeout-min ({election:?}) must be at least twice --raft-heartbeat \
         ({heartbeat:?}): a follower must not start an election over one late heartbeat"
    )]
    ElectionTimeout {
        election: Duration,
        heartbeat: Duration,
    },
    #[error(
        "--raft-write-timeout ({write:?}) must be shorter than --request-timeout ({request:?}), \
         so a write that cannot commit answers outcome_unknown before the request deadline"
    )]
    WriteTimeout { write: Duration, request: Duration },
    #[error(
        "--max-value-bytes {value} is over {limit}, the largest value a replicated shard's log \
         holds (kvraft)"
    )]
    ValueTooLargeForRaft { value: usize, limit: usize },
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

    // Replication (docs/replication.md; the operator sets these on copies 1.. of a shard).
    /// The KVStore's `metadata.uid`: this server is a copy of shard `--shard` of that store's
    /// group `<uid>/<shard>`. Copy 0 has no flag: it learns its group when the group is formed.
    #[arg(long, env = "KV_RAFT_STORE_UID", requires = "raft_advertise_url")]
    pub raft_store_uid: Option<String>,

    /// This copy's base URL as its group reaches it, `http(s)://POD.NAME.NS.svc:PORT`.
    #[arg(long, env = "KV_RAFT_ADVERTISE_URL", requires = "raft_store_uid")]
    pub raft_advertise_url: Option<String>,

    /// How often a replicated shard's leader sends heartbeats.
    #[arg(long, env = "KV_RAFT_HEARTBEAT", default_value = "150ms", value_parser = humantime::parse_duration)]
    pub raft_heartbeat: Duration,

    /// The shortest silence after which a follower starts an election (the longest is twice it).
    #[arg(long, env = "KV_RAFT_ELECTION_TIMEOUT_MIN", default_value = "600ms", value_parser = humantime::parse_duration)]
    pub raft_election_timeout_min: Duration,

    /// How a leader confirms it leads before a read: lease | read-index.
    #[arg(long, env = "KV_RAFT_READ_POLICY", value_enum, default_value_t = RaftReadPolicy::Lease)]
    pub raft_read_policy: RaftReadPolicy,

    /// How long a replicated write waits to be committed before it answers 504 `outcome_unknown`.
    #[arg(long, env = "KV_RAFT_WRITE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub raft_write_timeout: Duration,

    /// Deliberately broken replication, for tests (src/unsafe_modes.rs).
    #[cfg(feature = "unsafe-fault-modes")]
    #[command(flatten)]
    pub unsafe_modes: crate::unsafe_modes::UnsafeFlags,
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

    /// The group this copy belongs to by its flags (copies 1..); `None` on copy 0.
    pub fn raft_group(&self) -> Option<GroupId> {
        self.raft_store_uid.as_ref().map(|uid| GroupId {
            store_uid: uid.clone(),
            shard: self.shard_ordinal(),
        })
    }

    /// The broken replication mode the flags chose (`--unsafe-ack`, `--unsafe-read`).
    #[cfg(feature = "unsafe-fault-modes")]
    pub fn unsafe_mode(&self) -> kvraft::UnsafeMode {
        self.unsafe_modes.mode()
    }

    /// Always `None`: a build without the `unsafe-fault-modes` feature has no broken mode.
    #[cfg(not(feature = "unsafe-fault-modes"))]
    pub fn unsafe_mode(&self) -> kvraft::UnsafeMode {
        kvraft::UnsafeMode::None
    }

    /// Refuses combinations clap cannot express (run before anything is opened).
    pub fn validate(&self) -> Result<(), UsageError> {
        if let Some(uid) = &self.raft_store_uid {
            if self.sync == SyncMode::Never {
                return Err(UsageError::SyncNeverWithRaft);
            }
            if self.max_value_bytes > kvraft::codec::MAX_VALUE_BYTES {
                return Err(UsageError::ValueTooLargeForRaft {
                    value: self.max_value_bytes,
                    limit: kvraft::codec::MAX_VALUE_BYTES,
                });
            }
            // The group's wire form must parse back, so every copy names it alike.
            let group = format!("{uid}/{}", self.shard_ordinal());
            if let Err(e) = group.parse::<GroupId>() {
                return Err(UsageError::StoreUid {
                    uid: uid.clone(),
                    reason: if uid.is_empty() {
                        "it is empty".to_owned()
                    } else {
                        e.to_string()
                    },
                });
            }
        }
        if let Some(url) = &self.raft_advertise_url {
            check_advertise_url(url)?;
        }
        for (flag, value) in [
            ("--raft-heartbeat", self.raft_heartbeat),
            ("--raft-write-timeout", self.raft_write_timeout),
        ] {
            if value < Duration::from_millis(1) {
                return Err(UsageError::TooShort { flag, value });
            }
        }
        if self.raft_election_timeout_min < self.raft_heartbeat.saturating_mul(2) {
            return Err(UsageError::ElectionTimeout {
                election: self.raft_election_timeout_min,
                heartbeat: self.raft_heartbeat,
            });
        }
        if self.raft_write_timeout >= self.request_timeout {
            return Err(UsageError::WriteTimeout {
                write: self.raft_write_timeout,
                request: self.request_timeout,
            });
        }
        Ok(())
    }

    /// A configuration for tests: the data dir given, everything else at its default.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["kvserver"]);
        config.data_dir = data_dir.into();
        config.drain_delay = Duration::ZERO;
        config
    }
}

/// An advertised base URL: http or https, a host, nothing after the authority but `/`.
fn check_advertise_url(url: &str) -> Result<(), UsageError> {
    let refuse = |reason| UsageError::AdvertiseUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| refuse("is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("is not http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refuse("has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("carries credentials"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse("has a path, query or fragment"));
    }
    Ok(())
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

    fn copy(extra: &[&str]) -> Result<Config, clap::Error> {
        let mut args = vec![
            "kvserver",
            "--pod-name",
            "kv-r1-3",
            "--raft-store-uid",
            "0b9c-11",
            "--raft-advertise-url",
            "http://kv-r1-3.kv.ns.svc:8080",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    }

    #[test]
    fn a_copy_names_its_group_and_the_defaults_are_the_designs() {
        let c = copy(&[]).unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.raft_group().map(|g| g.to_string()).as_deref(),
            Some("0b9c-11/3")
        );
        assert_eq!(c.raft_heartbeat, Duration::from_millis(150));
        assert_eq!(c.raft_election_timeout_min, Duration::from_millis(600));
        assert_eq!(c.raft_read_policy, RaftReadPolicy::Lease);
        assert_eq!(c.raft_write_timeout, Duration::from_secs(3));
        let c = copy(&["--raft-read-policy", "read-index", "--sync", "always"]).unwrap();
        assert_eq!(
            (c.raft_read_policy, c.validate()),
            (RaftReadPolicy::ReadIndex, Ok(()))
        );
        // Copy 0 has no flag, and no group.
        let c0 = Config::parse_from(["kvserver", "--sync", "never"]);
        assert_eq!((c0.raft_group(), c0.validate()), (None, Ok(())));
    }

    #[cfg(not(feature = "unsafe-fault-modes"))]
    #[test]
    fn a_normal_build_has_no_broken_mode_flag() {
        for flag in ["--unsafe-ack=local", "--unsafe-read=local"] {
            let e = Config::try_parse_from(["kvserver", flag]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{flag}");
        }
        assert_eq!(
            Config::parse_from(["kvserver"]).unsafe_mode(),
            kvraft::UnsafeMode::None
        );
    }

    #[test]
    fn the_uid_and_the_advertised_url_come_together() {
        for alone in [
            &["kvserver", "--raft-store-uid", "u"][..],
            &["kvserver", "--raft-advertise-url", "http://a:1"][..],
        ] {
            let e = Config::try_parse_from(alone).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        }
    }

    #[test]
    fn sync_never_with_a_group_is_refused() {
        let c = copy(&["--sync", "never"]).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e, UsageError::SyncNeverWithRaft);
        assert!(e.to_string().contains("--sync never"), "{e}");
    }

    #[test]
    fn values_a_raft_log_cannot_hold_are_refused_with_a_group() {
        let limit = kvraft::codec::MAX_VALUE_BYTES;
        let at = copy(&["--max-value-bytes", &limit.to_string()]).unwrap();
        assert_eq!(at.validate(), Ok(()));
        let over = copy(&["--max-value-bytes", &(limit + 1).to_string()]).unwrap();
        let e = over.validate().unwrap_err();
        assert!(matches!(e, UsageError::ValueTooLargeForRaft { .. }), "{e}");
        assert!(e.to_string().contains("--max-value-bytes"), "{e}");
    }

    #[test]
    fn a_store_uid_must_make_a_group_id() {
        for bad in ["", "a/b"] {
            let mut c = copy(&[]).unwrap();
            c.raft_store_uid = Some(bad.to_owned());
            let e = c.validate().unwrap_err();
            assert!(matches!(e, UsageError::StoreUid { .. }), "{bad:?}: {e}");
        }
        let mut c = copy(&[]).unwrap();
        c.raft_store_uid = Some(String::new());
        assert!(c.validate().unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn the_advertised_url_must_be_an_http_base_url() {
        for good in [
            "http://kv-r1-3.kv.ns.svc:8080",
            "https://10.0.0.7:443/",
            "http://h",
        ] {
            assert_eq!(check_advertise_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("kv-r1-3:8080", "not http"),
            ("not a url", "not a URL"),
            ("ftp://h:21", "not http"),
            ("http://h:1/v1", "path"),
            ("http://h:1/?x=1", "query"),
            ("http://u:p@h:1", "credentials"),
            ("http://:1", "not a URL"),
        ] {
            let e = check_advertise_url(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn raft_timeouts_must_be_sane() {
        let refused = |extra: &[&str]| copy(extra).unwrap().validate().unwrap_err();
        assert!(matches!(
            refused(&["--raft-heartbeat", "0s"]),
            UsageError::TooShort {
                flag: "--raft-heartbeat",
                ..
            }
        ));
        assert!(matches!(
            refused(&["--raft-write-timeout", "0s"]),
            UsageError::TooShort {
                flag: "--raft-write-timeout",
                ..
            }
        ));
        assert!(matches!(
            refused(&["--raft-heartbeat", "400ms"]),
            UsageError::ElectionTimeout { .. }
        ));
        assert!(matches!(
            refused(&["--raft-write-timeout", "10s"]),
            UsageError::WriteTimeout { .. }
        ));
        let ok = copy(&[
            "--raft-heartbeat",
            "300ms",
            "--raft-election-timeout-min",
            "600ms",
        ]);
        assert_eq!(ok.unwrap().validate(), Ok(()));
        assert!(copy(&["--raft-heartbeat", "fast"]).is_err());
    }
}
