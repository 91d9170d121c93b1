//! The `kvclient` command line: flags, the screen modes, one-shot commands, the load generator.

pub mod args;
pub mod error;
pub mod kvstore;
pub mod load;
pub mod oneshot;
pub mod target;
pub mod watch;

use kvclient::Condition;

use args::{Cli, Command};
use error::CliError;

/// Runs what the command line asks for.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => watch::run(cli.watch).await,
        Some(Command::Get { key, target }) => oneshot::get(&key, &target).await,
        Some(Command::Put {
            key,
            value,
            stdin,
            if_absent,
            if_version,
            target,
        }) => {
            let condition = match (if_absent, if_version) {
                (true, _) => Some(Condition::IfAbsent),
                (false, Some(v)) => Some(Condition::IfVersion(v)),
                (false, None) => None,
            };
            oneshot::put(&key, value.as_deref(), stdin, condition, &target).await
        }
        Some(Command::Del {
            key,
            if_version,
            target,
        }) => oneshot::del(&key, if_version, &target).await,
        Some(Command::Ls { prefix, target }) => oneshot::ls(prefix.as_deref(), &target).await,
        Some(Command::Load(args)) => load::run(&args).await,
    }
}
