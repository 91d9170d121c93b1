//! Who may call a route family, as layers the router puts on the families it builds (no path
//! matching here):
//! - [`require_admin`]: `/v1/admin` needs the admin token.
//! - [`require_peer`]: `/v1/internal` needs the peer (or admin) token.
//! - [`DataGuardLayer`]: the book routes and `/v1/keys` answer 503 while draining (unless the
//!   server is a copy of a replicated shard, which forwards to the leader instead) or, under
//!   `--require-topology`, before a topology arrives, and want the token under
//!   `--require-token-for-data`. A plain tower service, so the data hot path pays no
//!   allocation for it.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use tower::{Layer, Service};

use crate::error::{Dialect, Error};
use crate::state::AppState;

/// The admin families' route layer: 401 without the right bearer token.
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.token.require(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The internal family's route layer: 401 without the peer or admin token.
pub async fn require_peer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.credentials.require_peer_or_admin(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Guards a data family; refusals are worded in the family's `dialect`.
#[derive(Debug, Clone)]
pub struct DataGuardLayer {
    state: AppState,
    dialect: Dialect,
}

impl DataGuardLayer {
    pub fn new(state: AppState, dialect: Dialect) -> Self {
        DataGuardLayer { state, dialect }
    }

    /// Why a data request is refused, if it is.
    fn refusal(&self, headers: &HeaderMap) -> Option<Error> {
        // A replicated copy keeps taking requests while it drains: it has handed leadership
        // over and sends them to the new leader until its listeners close.
        if self.state.is_draining() && self.state.raft.running().is_none() {
            Some(Error::Draining)
        } else if self.state.awaits_topology() {
            Some(Error::NoTopologyYet)
        } else if self.state.require_token_for_data
            && !self.state.credentials.authorizes_data(headers)
        {
            Some(Error::Unauthorized(
                "this server requires `Authorization: Bearer <token>` on data routes",
            ))
        } else {
            None
        }
    }
}

impl<S> Layer<S> for DataGuardLayer {
    type Service = DataGuard<S>;

    fn layer(&self, inner: S) -> DataGuard<S> {
        DataGuard {
            inner,
            guard: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DataGuard<S> {
    inner: S,
    guard: DataGuardLayer,
}

impl<S> Service<Request> for DataGuard<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.guard.refusal(req.headers()) {
            Some(error) => Either::Left(ready(Ok(self.guard.dialect.render(error)))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}
