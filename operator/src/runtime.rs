//! Runs the operator process: client, ops endpoint, leader election, controller, and a graceful
//! shutdown on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::cli::RunArgs;
use crate::context::{Config, Context};
use crate::controller;
use crate::leader;
use crate::metrics::Metrics;
use crate::ops_server::{self, OpsState};
use crate::shards::KvClientAdmin;

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[from] kube::Error),
    #[error("cannot serve metrics: {0}")]
    Listen(#[from] std::io::Error),
    #[error("leader election failed: {0}")]
    Election(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the leader lease; exiting so a fresh process rejoins the election")]
    LostLease,
}

/// Runs until a signal (Ok) or a lost lease (Err).
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let stop = stop_on_signal();
    let server = serve_ops(&args, metrics.clone(), ready.clone(), stop.clone()).await?;
    let ctx = context(&args, client.clone(), metrics);
    let result = if args.leader_election {
        run_elected(&args, client, ctx, &ready, stop).await
    } else {
        ready.store(true, Ordering::Relaxed);
        controller::run(ctx, args.namespace.as_deref(), stop.wait()).await;
        Ok(())
    };
    info!("controller stopped");
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => error!(error = %err, "metrics server failed"),
        Err(err) => error!(error = %err, "metrics server task failed"),
    }
    result
}

/// Resolves, for every clone, once SIGTERM or Ctrl-C has arrived.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    async fn wait(self) {
        let mut rx = self.0;
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

fn stop_on_signal() -> Stop {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        kvclient::shutdown::signal().await;
        info!("shutdown signal received");
        let _ = stop_tx.send(true);
    });
    Stop(stop_rx)
}

/// Serves /metrics, /healthz and /readyz until the stop signal.
async fn serve_ops(
    args: &RunArgs,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: Stop,
) -> Result<JoinHandle<std::io::Result<()>>, RunError> {
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    let app = ops_server::router(OpsState { metrics, ready });
    Ok(tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.wait())
            .into_future(),
    ))
}

fn context(args: &RunArgs, client: Client, metrics: Arc<Metrics>) -> Arc<Context> {
    let config = Config {
        requeue: args.requeue,
        unreachable_grace: args.unreachable_grace,
        max_concurrent_rolls: usize::try_from(args.max_concurrent_rolls).unwrap_or(usize::MAX),
        ..Config::default()
    };
    Arc::new(Context::new(
        client,
        args.identity.clone(),
        metrics,
        config,
        Arc::new(KvClientAdmin::for_operator()),
    ))
}

/// Waits for the lease, then runs the controller until the stop signal or the lease is lost.
///
/// A stop signal lets running reconciles finish. A lost lease does not: another replica leads
/// now, so this one returns at once, dropping every reconcile at its next await (a move's step,
/// a copy batch), and the process exits. Whatever it had already sent is fenced by the servers
/// (epoch and phase on imports and cleanups) and by the status writes' resourceVersion.
async fn run_elected(
    args: &RunArgs,
    client: Client,
    ctx: Arc<Context>,
    ready: &AtomicBool,
    stop: Stop,
) -> Result<(), RunError> {
    let lease_ns = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("{}-{}", crate::labels::MANAGER, std::process::id()));
    let mut election = leader::join(client, &lease_ns, &args.lease_name, &identity).await?;
    ready.store(true, Ordering::Relaxed);
    info!(lease = %args.lease_name, namespace = %lease_ns, %identity, "waiting for the lease");
    let leading = tokio::select! {
        leading = election.until_leading() => leading,
        () = stop.clone().wait() => false,
    };
    if !leading {
        election.release().await;
        return Ok(());
    }
    info!("leading: starting the controller");
    let controller = controller::run(ctx, args.namespace.as_deref(), stop.wait());
    tokio::select! {
        () = controller => {
            election.release().await;
            Ok(())
        }
        () = election.lost() => {
            error!("lost the leader lease: abandoning running reconciles");
            Err(RunError::LostLease)
        }
    }
}
