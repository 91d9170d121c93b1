//! What the peer client sends with, asked again at every RPC: the HTTP client (one trusting the
//! CA certificates in force) and the peer token. A server that re-reads its token file or its
//! CA file while running (kvserver's reload) thus reaches its peers with the current ones, not
//! those it started with.

use std::sync::Arc;

/// The source of the client and token the group's RPCs are sent with.
pub trait PeerCredentials: Send + Sync + std::fmt::Debug + 'static {
    /// The client to send with now (clones share its connection pool).
    fn http(&self) -> reqwest::Client;
    /// The bearer token to send now, if any.
    fn token(&self) -> Option<Arc<str>>;
}

/// A client and token that never change (tests, and servers without rotation).
#[derive(Debug, Clone)]
pub struct FixedCredentials {
    http: reqwest::Client,
    token: Option<Arc<str>>,
}

impl FixedCredentials {
    pub fn new(http: reqwest::Client, token: Option<&str>) -> FixedCredentials {
        FixedCredentials {
            http,
            token: token.map(Arc::from),
        }
    }
}

impl PeerCredentials for FixedCredentials {
    fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    fn token(&self) -> Option<Arc<str>> {
        self.token.clone()
    }
}
