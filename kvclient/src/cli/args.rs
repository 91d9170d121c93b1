//! Command-line flags. Malformed input is refused by clap with a usage error (exit code 2).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// A parsed, non-empty server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList(pub Vec<String>);

fn server_list(text: &str) -> Result<ServerList, String> {
    kvclient::addr::parse_server_list(text)
        .map(ServerList)
        .map_err(|e| e.to_string())
}

fn one_server(text: &str) -> Result<String, String> {
    kvclient::addr::parse_server(text).map_err(|e| e.to_string())
}

/// Longest duration any flag accepts: far beyond any real use, far from overflowing a deadline.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Seconds (`2`, `0.5`) or a duration with a unit (`500ms`, `1m`), at most a year.
pub fn duration(text: &str) -> Result<Duration, String> {
    let parsed = match text.trim().parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))?,
        Err(_) => humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))?,
    };
    if parsed > MAX_DURATION {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(parsed)
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be greater than zero".to_string()),
        d => Ok(d),
    }
}

/// kvclient: the book's smart client for a sharded key/value store, and the tools around it.
///
/// Book mode:      kvclient SRV_1[:PORT],SRV_2[:PORT],... [readonly]
/// Following mode: kvclient --kvstore NAME [-n NAMESPACE]   (or --servers LIST)
/// One-shot:       kvclient get|put|del|ls ...
/// Load:           kvclient load --keys N --concurrency C --duration S ...
#[derive(Debug, Parser)]
#[command(
    name = "kvclient",
    version,
    override_usage = "kvclient SRV_1[:PORT],SRV_2[:PORT],... [readonly] [OPTIONS]\n       \
                      kvclient --kvstore NAME [-n NAMESPACE] [OPTIONS]\n       \
                      kvclient --servers LIST [OPTIONS]\n       \
                      kvclient <get|put|del|ls|load> ...",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// The screen modes (no subcommand).
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Book mode: comma-separated servers, `host[:port]` (port 80 by default) or `https://host:port`.
    #[arg(value_name = "SERVERS", value_parser = server_list,
          required_unless_present_any = ["kvstore", "servers"],
          conflicts_with_all = ["kvstore", "servers"])]
    pub book_servers: Option<ServerList>,
    /// Book mode: `readonly` never writes a missing key (shows `m`).
    #[arg(value_name = "readonly", value_parser = ["readonly"])]
    pub readonly_word: Option<String>,
    /// Following mode: read-only.
    #[arg(long, env = "KVCLIENT_READONLY")]
    pub readonly: bool,
    /// Following mode: the KVStore to follow.
    #[arg(long, env = "KVCLIENT_KVSTORE")]
    pub kvstore: Option<String>,
    /// Namespace of the KVStore (default: the kubeconfig's).
    #[arg(short = 'n', long, env = "KVCLIENT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Following mode over these servers instead of a KVStore's (no cluster needed).
    #[arg(long, value_name = "LIST", value_parser = server_list, env = "KVCLIENT_SERVERS")]
    pub servers: Option<ServerList>,
    /// Seconds between rounds.
    #[arg(long, env = "KVCLIENT_INTERVAL", default_value = "2", value_parser = positive_duration)]
    pub interval: Duration,
    /// Stop after this many rounds (default: run forever).
    #[arg(long, env = "KVCLIENT_ITERATIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
    /// Use N generated keys (`key-0` ...) and a one-line summary per round instead of a-z.
    #[arg(long, env = "KVCLIENT_KEYS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub keys: Option<u32>,
    /// Keys checked at the same time within a round.
    #[arg(long, env = "KVCLIENT_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// How to talk to servers.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Per-request deadline: a dead server never holds a request longer.
    #[arg(long, env = "KVCLIENT_TIMEOUT", default_value = "2", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Retries of safe requests (default: 0 in book mode, 4 otherwise).
    #[arg(long, env = "KVCLIENT_RETRIES", value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: Option<u32>,
    /// Retry safe requests (and refused ones) until this long after the first attempt, moving
    /// between a replicated shard's copies, e.g. `5s`: rides over a leader's failover.
    #[arg(long, env = "KVCLIENT_RETRY_WITHIN", value_parser = positive_duration,
          conflicts_with = "retries")]
    pub retry_within: Option<Duration>,
    /// File holding the bearer token, sent with every request (its first line): the data token
    /// of a server under `--require-token-for-data`, or the admin token.
    #[arg(long, env = "KVCLIENT_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// PEM CA certificates to trust for `https://` servers (e.g. the `ca.crt` of the store's
    /// TLS Secret). Without it, no https server is trusted.
    #[arg(long, env = "KVCLIENT_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// Where one-shot commands and the load generator send requests.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// A server (repeat for several; ordinal = position).
    #[arg(long = "server", value_name = "URL", value_parser = one_server,
          conflicts_with_all = ["server_list", "kvstore"])]
    pub server: Vec<String>,
    /// Comma-separated servers.
    #[arg(long = "servers", id = "server_list", value_name = "LIST", value_parser = server_list,
          env = "KVCLIENT_SERVERS", conflicts_with = "kvstore")]
    pub servers: Option<ServerList>,
    /// A KVStore to discover the servers from.
    #[arg(long, env = "KVCLIENT_KVSTORE")]
    pub kvstore: Option<String>,
    /// Namespace of the KVStore (default: the kubeconfig's).
    #[arg(short = 'n', long, env = "KVCLIENT_NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a key's value to stdout (exit 1 if absent).
    Get {
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Store a value (from the argument or --stdin).
    Put {
        key: String,
        #[arg(required_unless_present = "stdin", conflicts_with = "stdin")]
        value: Option<String>,
        /// Read the value from standard input (raw bytes).
        #[arg(long)]
        stdin: bool,
        /// Only if the key is absent (exit 1 otherwise).
        #[arg(long, conflicts_with = "if_version")]
        if_absent: bool,
        /// Only if the stored version is this one (exit 1 otherwise).
        #[arg(long)]
        if_version: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a key (exit 1 if absent).
    Del {
        key: String,
        /// Only if the stored version is this one.
        #[arg(long)]
        if_version: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// List keys across all servers, one per line.
    Ls {
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Load generator: mixed reads and writes, latency percentiles, then a read-back check
    /// that every acknowledged write holds its last value.
    Load(LoadArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Distinct keys.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// How long to send load (seconds or e.g. `30s`); SIGTERM or Ctrl-C ends it early, and the
    /// read-back check still runs.
    #[arg(long, default_value = "10", value_parser = positive_duration)]
    pub duration: Duration,
    /// Fraction of requests that are writes, 0 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = ratio)]
    pub write_ratio: f64,
    /// Key prefix, so runs do not collide with other data.
    #[arg(long, default_value = "load-")]
    pub prefix: String,
    /// Write every key once before the timed phase (so reads find values).
    #[arg(long)]
    pub prefill: bool,
    /// Pad every value to at least this many bytes (0: the bare `RUN:WORKER:SEQ` tag, a few
    /// bytes), e.g. 64 for the cost curves' 64-byte values.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1024 * 1024))]
    pub value_bytes: u32,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Record every operation of the timed phase in FILE (JSON lines), for the
    /// linearizability checker (tests/linearizability).
    #[arg(long, value_name = "FILE")]
    pub history: Option<std::path::PathBuf>,
    /// Workers share this many keys instead of writing their own (needs --history: the
    /// checker, not the read-back, verifies them).
    #[arg(long, default_value_t = 0, requires = "history", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub hot_keys: u32,
    /// Fraction of hot-key writes sent as compare-and-set (If-Match the version last read).
    #[arg(long, default_value_t = 0.25, value_parser = ratio)]
    pub cas_ratio: f64,
    #[command(flatten)]
    pub target: Target,
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a number between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
        assert!(positive_duration("0").is_err());
        assert!(duration("1e15").is_err());
        assert!(duration("1000000000000000s").is_err());
        assert!(duration("inf").is_err());
    }

    #[test]
    fn book_mode_and_subcommands_parse() {
        let cli = Cli::try_parse_from(["kvclient", "a.b,c.d:81", "readonly"]).unwrap();
        assert_eq!(
            cli.watch.book_servers,
            Some(ServerList(vec![
                "http://a.b:80".into(),
                "http://c.d:81".into()
            ]))
        );
        assert!(cli.watch.readonly_word.is_some());
        let cli = Cli::try_parse_from(["kvclient", "get", "k", "--servers", "x:1"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Get { .. })));
        for bad in [
            vec!["kvclient"],
            vec!["kvclient", "a,,b"],
            vec!["kvclient", "a", "readwrite"],
            vec!["kvclient", "a", "--interval", "x"],
            vec!["kvclient", "a", "--kvstore", "s"],
            vec!["kvclient", "put", "k", "--servers", "x"],
            vec!["kvclient", "load", "--write-ratio", "2", "--servers", "x"],
        ] {
            let err = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
