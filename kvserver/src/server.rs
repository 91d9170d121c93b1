//! Running the server: a replicated copy's group (started before the listeners), both
//! listeners (each with the accept loop of `listen`), the background fsync of `--sync batch`,
//! and the shutdown sequence (drain, finish in-flight requests, flush storage, stop the group
//! cleanly, exit). Draining starts with the `shutdown` future (SIGTERM), never over HTTP; a
//! group's leader first hands leadership to another voter, then forwards while it drains.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{app, ops_app};
use crate::config::{Config, SyncMode};
use crate::group_start;
use crate::listen::{self, ConnLimits};
use crate::state::AppState;
use crate::tls::ReloadingCert;

/// Serves until `shutdown` resolves, then drains: data routes answer 503 for `--drain-delay`,
/// the listeners close, in-flight requests get `--shutdown-timeout` to finish, and storage is
/// flushed before returning.
pub async fn run(
    config: Config,
    listener: TcpListener,
    ops_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let open_config = config.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(&open_config)).await??;
    tracing::info!(
        shard = state.shard,
        sync = ?config.sync,
        keys = state.store.key_count(),
        epoch = state.epoch(),
        data = %listener.local_addr()?,
        ops = %ops_listener.local_addr()?,
        "kvserver serving"
    );
    serve(state, &config, listener, ops_listener, shutdown).await
}

/// Like [`run`], with an already opened state (tests reach into it).
pub async fn serve(
    state: AppState,
    config: &Config,
    listener: TcpListener,
    ops_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    // A copy of a replicated shard rejoins its group before it listens.
    group_start::at_boot(&state, &state.group_tasks).await?;
    if config.sync == SyncMode::Batch {
        tokio::spawn(batch_fsync(
            state.clone(),
            config.sync_interval,
            stop.clone(),
        ));
    }
    // Rotated tokens and a renewed certificate take effect without a restart (auth.rs, tls.rs).
    tokio::spawn(state.credentials.clone().reload_until(stop.clone()));
    tokio::spawn(state.peers.clone().reload_ca_until(stop.clone()));
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => {
            let cert = ReloadingCert::load(cert, key)?;
            let acceptor = cert.acceptor()?;
            tokio::spawn(cert.reload_until(stop.clone()));
            Some(acceptor)
        }
        _ => None,
    };
    {
        let (state, stop, delay) = (state.clone(), stop.clone(), config.drain_delay);
        tokio::spawn(async move {
            shutdown.await;
            let began = std::time::Instant::now();
            if !state.start_draining() {
                // A leader hands its group over first and keeps it away while it forwards to
                // the new one, giving Services time to stop sending traffic here.
                state.raft.drain_leadership(delay).await;
            }
            tracing::info!(
                after_ms = began.elapsed().as_millis(),
                "draining: closing the listeners"
            );
            stop.cancel();
        });
    }
    let limits = ConnLimits::from_config(config);
    let data = listen::serve(listener, app(state.clone()), limits, tls, stop.clone());
    // The ops port stays plain HTTP: the kubelet's probes and metrics scrapes.
    let ops = listen::serve(
        ops_listener,
        ops_app(state.clone()),
        limits,
        None,
        stop.clone(),
    );
    let both = async { tokio::try_join!(data, ops) };
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(config.shutdown_timeout).await;
    };
    tokio::select! {
        result = both => { result?; }
        () = deadline => tracing::warn!("in-flight requests did not finish in time; exiting anyway"),
    }
    stop.cancel();
    state.store.flush().await?;
    // The group after the listeners: forwarded requests were answered by then.
    state.raft.shutdown().await;
    state.group_tasks.cancel();
    let raft = state.raft.clone();
    tokio::task::spawn_blocking(move || raft.close()).await??;
    tracing::info!("storage flushed; bye");
    Ok(())
}

/// `--sync batch`: fsync what was written since the last tick.
async fn batch_fsync(state: AppState, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = state.store.sync_if_dirty().await {
            tracing::warn!(error = %e, "background fsync failed");
        }
    }
}
