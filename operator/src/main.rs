//! `kvstore-operator`: runs the operator, or prints its CRD.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use operator::cli::{Cli, Command};
use operator::{crdgen, runtime, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => match crdgen::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("cannot render the CRD: {err}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(args)) => run(args).await,
        None => run(cli.run).await,
    }
}

async fn run(args: operator::cli::RunArgs) -> ExitCode {
    telemetry::init(args.log_format);
    match runtime::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "operator stopped");
            ExitCode::FAILURE
        }
    }
}
