//! `kvserver`: parse flags, bind both ports, serve until SIGTERM or ctrl-c.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use kvserver::Config;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    if let Err(e) = config.validate() {
        // A usage error, worded and exited like clap's own (exit code 2).
        Config::command()
            .error(clap::error::ErrorKind::ArgumentConflict, e)
            .exit();
    }
    match start(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "kvserver failed");
            ExitCode::FAILURE
        }
    }
}

async fn start(config: Config) -> anyhow::Result<()> {
    raise_open_files_limit(config.max_connections);
    let listener = bind(&config.bind, config.port, "data port", "--port / KV_PORT").await?;
    let ops_listener = bind(
        &config.bind,
        config.ops_port,
        "ops port",
        "--ops-port / KV_OPS_PORT",
    )
    .await?;
    // One machine-readable line, so scripts and tests can use --port 0.
    println!(
        "listening data={} ops={}",
        listener.local_addr()?,
        ops_listener.local_addr()?
    );
    kvserver::run(config, listener, ops_listener, shutdown_signal()).await
}

/// Binds one listener; a failure names the address and the flag that changes it.
async fn bind(host: &str, port: u16, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} ({what}; change it with {flag})"))
}

/// Each connection is a file descriptor: the soft limit (often 1,024) is raised to the hard one,
/// so `--max-connections` on both ports fits, and a warning says when it still does not.
fn raise_open_files_limit(max_connections: usize) {
    // Both ports' caps, plus room for the storage engine's files and peer connections.
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(1024);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            max_connections,
            "the open-files limit is below what --max-connections on both ports needs; \
             connections beyond it fail to be accepted"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
}

/// SIGTERM (the kubelet) or ctrl-c (a terminal).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
