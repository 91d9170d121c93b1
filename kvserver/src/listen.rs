//! The accept loop both ports use, so that slow or stalled clients cost a bounded number of
//! connections for a bounded time:
//! - a cap on open connections (`--max-connections`): one beyond it is closed at once;
//! - hyper's header-read deadline (`--header-read-timeout`), which starts when the connection is
//!   ready for a request (opened, or its previous answer sent), so it is also the keep-alive idle
//!   timeout;
//! - a write-stall deadline on the socket (`--write-timeout`): a client that stops reading is cut
//!   however long the answer, while a reader that keeps up can stream for as long as it likes;
//! - graceful shutdown: once `stop` is cancelled the listener closes, idle connections and those
//!   that never sent a whole request close, and the others finish their request (the caller
//!   bounds that wait with `--shutdown-timeout`).
//!
//! - TLS when an acceptor is given (the data port under `--tls-cert-file`): the handshake runs in
//!   the connection's task, under the header-read deadline, and a connection whose first byte is
//!   not a TLS handshake (plain HTTP) gets a one-line 400 and is closed.
//!
//! Bodies have their own deadline, per route family (see `body` and `app`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Config;

/// Under a flood of connections, one warning this often is enough.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// What the accept loop enforces on every connection of one port.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub write_timeout: Duration,
}

impl ConnLimits {
    pub fn from_config(config: &Config) -> Self {
        ConnLimits {
            max_connections: config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            header_read_timeout: config.header_read_timeout,
            write_timeout: config.write_timeout,
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then stops accepting and waits for
/// the open connections to finish (idle ones are closed at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut last_warned: Option<Instant> = None;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed before anything is read: the client sees the connection end at once.
            drop(stream);
            if last_warned.is_none_or(|t| t.elapsed() >= CAP_WARNING_EVERY) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached; closing new connections until some end"
                );
                last_warned = Some(Instant::now());
            }
            continue;
        };
        let started = Arc::new(AtomicBool::new(false));
        let service = router.clone().map_request({
            let started = started.clone();
            move |req: Request<Incoming>| {
                started.store(true, Ordering::Release);
                req
            }
        });
        let (http, watcher, stop, tls) =
            (http.clone(), graceful.watcher(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let io = tokio::select! {
                io = secured(stream, tls.as_ref(), limits) => match io {
                    Some(io) => io,
                    None => return,
                },
                // Nothing was asked yet: nothing to finish.
                () = stop.cancelled() => return,
            };
            let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            let mut conn = std::pin::pin!(watcher.watch(conn));
            let ended = tokio::select! {
                ended = &mut conn => ended,
                () = stop.cancelled() => {
                    // hyper lets a connection that never sent a whole request hold a graceful
                    // shutdown until its header deadline: there is nothing to finish, so drop it.
                    if !started.load(Ordering::Acquire) {
                        return;
                    }
                    conn.await
                }
            };
            // Deadlines and clients that go away end connections with an error: not news.
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    // New connections are refused from here on; the open ones get to finish.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection's stream: plain, or TLS over the same deadline-guarded socket.
type Io = Either<Timed, TlsStream<Timed>>;
type Timed = std::pin::Pin<Box<TimeoutStream<TcpStream>>>;

fn timed(stream: TcpStream, write_timeout: Duration) -> Timed {
    // Small answers go out at once rather than after Nagle's delay.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(write_timeout));
    Box::pin(stream)
}

/// The connection's stream once it is ready for HTTP: at once without TLS; after the handshake
/// (within the header-read deadline) with it. `None`: closed (not TLS, failed, too slow).
async fn secured(stream: TcpStream, tls: Option<&TlsAcceptor>, limits: ConnLimits) -> Option<Io> {
    let Some(acceptor) = tls else {
        return Some(Either::Left(timed(stream, limits.write_timeout)));
    };
    let handshake = async {
        let mut first = [0u8; 1];
        // Peeked, not read: the handshake still sees it.
        if stream.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        let mut stream = timed(stream, limits.write_timeout);
        if first[0] != crate::tls::HANDSHAKE_RECORD {
            // Plain HTTP (or anything else): say why, then close.
            let _ = stream.write_all(crate::tls::PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return None;
        }
        match acceptor.accept(stream).await {
            Ok(tls) => Some(Either::Right(tls)),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
        }
    };
    tokio::time::timeout(limits.header_read_timeout, handshake)
        .await
        .ok()
        .flatten()
}

/// A failed accept: a connection that died in the backlog is skipped; anything else (out of
/// file descriptors, typically) is logged and retried after a pause, as axum's `serve` does.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
