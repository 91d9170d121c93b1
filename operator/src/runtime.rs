//! Runs the operator process: client, ops endpoint, leader election, controller, and a graceful
//! shutdown on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use kube::Client;
use tokio::sync::watch;
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    tokio::spawn(async move {
        kvclient::shutdown::signal().await;
        info!("shutdown signal received");
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    let app = ops_server::router(OpsState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop())
            .into_future(),
    );

    let config = Config {
        requeue: args.requeue,
        ..Config::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        args.identity.clone(),
        metrics,
        config,
        Arc::new(KvClientAdmin::for_operator()),
    ));
    let namespace = args.namespace.as_deref();
    let result = if args.leader_election {
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
            () = stop() => false,
        };
        if leading {
            info!("leading: starting the controller");
            let lost = election.lost().shared();
            let shutdown = futures::future::select(Box::pin(stop()), lost.clone()).map(|_| ());
            controller::run(ctx, namespace, shutdown).await;
            let lost_lease = lost.now_or_never().is_some();
            election.release().await;
            if lost_lease {
                Err(RunError::LostLease)
            } else {
                Ok(())
            }
        } else {
            election.release().await;
            Ok(())
        }
    } else {
        ready.store(true, Ordering::Relaxed);
        controller::run(ctx, namespace, stop()).await;
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
