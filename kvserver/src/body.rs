//! Request bodies read in full, under a size limit and a deadline, before the handler runs: on the
//! data routes this happens before the request takes a concurrency slot, so a client that sends
//! its body slowly holds only its own connection, never a slot, and is cut at the deadline
//! (408). Bodies read ahead of the slots can share a byte budget, so that many large bodies
//! arriving at once are shed (503 `overloaded`) instead of growing memory.
//!
//! The handler then reads the body it gets (already in memory) as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::future::Either;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use crate::error::{Dialect, Error};

/// Reads each request body whole (at most `limit` bytes, within `deadline`) before the inner
/// service; refusals are worded in `dialect`.
#[derive(Debug, Clone)]
pub struct ReadBodyLayer {
    limit: usize,
    deadline: Duration,
    dialect: Dialect,
    budget: Option<Arc<Semaphore>>,
}

impl ReadBodyLayer {
    pub fn new(limit: usize, deadline: Duration, dialect: Dialect) -> Self {
        ReadBodyLayer {
            limit,
            deadline,
            dialect,
            budget: None,
        }
    }

    /// Bytes held are taken from `budget` (one permit a byte) until the answer is ready.
    pub fn with_budget(mut self, budget: Arc<Semaphore>) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl<S> Layer<S> for ReadBodyLayer {
    type Service = ReadBody<S>;

    fn layer(&self, inner: S) -> ReadBody<S> {
        ReadBody {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReadBody<S> {
    inner: S,
    layer: ReadBodyLayer,
}

type Boxed<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> Service<Request> for ReadBody<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Oneshot<S, Request>, Boxed<S::Error>>;

    /// Always ready: the inner service (the concurrency limit) is asked only once the body is in.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was not made ready goes on serving; this one is moved into the call.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        if req.body().is_end_stream() {
            // No body (every GET): nothing to wait for, and no allocation on the hot path.
            return Either::Left(inner.oneshot(req));
        }
        let layer = self.layer.clone();
        Either::Right(Box::pin(async move {
            let (parts, body) = req.into_parts();
            let read = read_whole(body, &parts.headers, layer.limit, layer.budget.as_ref());
            match tokio::time::timeout(layer.deadline, read).await {
                Ok(Ok((bytes, _held))) => {
                    // `_held` keeps the bytes counted until the answer is ready.
                    inner
                        .oneshot(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Ok(Err(e)) => Ok(layer.dialect.render(e)),
                Err(_elapsed) => Ok(layer.dialect.render(Error::BodyTimeout(layer.deadline))),
            }
        }))
    }
}

/// The body length a request's `Content-Length` announces, if it is a number.
pub fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads `body` whole: 413 beyond `limit` (a declared `Content-Length` above it is refused before
/// reading), 503 `overloaded` when `budget` has no room for the bytes that arrived.
async fn read_whole(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
    budget: Option<&Arc<Semaphore>>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Error> {
    let declared = declared_length(headers);
    if let Some(len) = declared
        && len > limit
    {
        return Err(Error::ValueTooLarge { len, limit });
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::BadRequest(format!("cannot read the request body: {e}")))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers: nothing to keep
        };
        len = len.saturating_add(chunk.len());
        if len > limit {
            return Err(Error::ValueTooLarge {
                len: limit.saturating_add(1),
                limit,
            });
        }
        if let Some(budget) = budget {
            let permits = u32::try_from(chunk.len()).map_err(|_| Error::Overloaded)?;
            let permit = budget
                .clone()
                .try_acquire_many_owned(permits)
                .map_err(|_| Error::Overloaded)?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
        }
        chunks.push(chunk);
    }
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    };
    Ok((bytes, held))
}
