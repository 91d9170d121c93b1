//! Command line: `kvstore-operator [run] [flags]` runs the operator, `kvstore-operator crd`
//! prints the CRD. Every flag has an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// Kubernetes operator for the sharded kvstore.
#[derive(Debug, Parser)]
#[command(
    name = "kvstore-operator",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run`, also accepted without the subcommand.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator (the default).
    Run(RunArgs),
    /// Print the KVStore CustomResourceDefinition as YAML.
    Crd,
}

/// Flags of the operator.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "KVSTORE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Only reconcile while holding a Lease, so several replicas can run safely.
    #[arg(long, env = "KVSTORE_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "KVSTORE_LEASE_NAME", default_value = "kvstore-operator")]
    pub lease_name: String,

    /// Namespace of the Lease; defaults to the client's namespace (the pod's own in a cluster).
    #[arg(long, env = "KVSTORE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "KVSTORE_NAMESPACE")]
    pub namespace: Option<String>,

    /// Log format.
    #[arg(long, env = "KVSTORE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Re-reconcile every store this often even without changes.
    #[arg(long, env = "KVSTORE_REQUEUE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub requeue: Duration,

    /// How long a shard may fail to answer during a move before the store is Degraded (until
    /// then the move retries every 2 s and says why in status.rebalance.message).
    #[arg(long, env = "KVSTORE_UNREACHABLE_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub unreachable_grace: Duration,

    /// How many replicated stores may roll their pods to a changed template at once (a roll
    /// under way always finishes, also after a restart).
    #[arg(long, env = "KVSTORE_MAX_CONCURRENT_ROLLS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_rolls: u32,

    /// This replica's name in Events and in the Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default_and_takes_flags_without_the_subcommand() {
        let cli = Cli::try_parse_from(["kvstore-operator", "--namespace", "demo"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.namespace.as_deref(), Some("demo"));
        let cli = Cli::try_parse_from(["kvstore-operator", "crd"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Crd)));
        let cli = Cli::try_parse_from(["kvstore-operator", "run", "--leader-election"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(a)) if a.leader_election));
    }

    #[test]
    fn one_store_rolls_at_a_time_unless_told_otherwise() {
        let cli = Cli::try_parse_from(["kvstore-operator"]).unwrap();
        assert_eq!(cli.run.max_concurrent_rolls, 1);
        let cli = Cli::try_parse_from(["kvstore-operator", "--max-concurrent-rolls", "3"]).unwrap();
        assert_eq!(cli.run.max_concurrent_rolls, 3);
        assert!(Cli::try_parse_from(["kvstore-operator", "--max-concurrent-rolls", "0"]).is_err());
    }
}
