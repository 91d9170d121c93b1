//! The HTTP client to other shards: forwarding a request to the key's owner, and reading a key
//! through from its previous owner during a migration. Both send the peer token this server sends
//! now (the peer token file's first line, re-read on change); a peer that refuses it answers 401,
//! which becomes 502 `peer_unauthorized` here rather than a 401 the client could not act on.
//!
//! Peers are reached over HTTPS when the topology's peer URLs say `https://`; the client then
//! trusts the CA certificates of `--tls-ca-file` (and no built-in roots: peers carry the
//! cluster's own certificates), re-read while running like the server's own certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header as h};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use kvproto::Key;
use kvproto::topology::ForwardedBy;
use kvproto::wire::{header, path};
use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::auth::AdminToken;
use crate::error::Error;
use crate::etag_header;
use crate::storage::Record;

/// The owner's (or leader's) answer, relayed: status, the passed-back headers, the body.
async fn relay(
    resp: reqwest::Response,
    shard: u32,
    lost: impl Fn() -> Error,
) -> Result<Response, Error> {
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        return Err(Error::PeerUnauthorized { shard });
    }
    let mut out = Response::builder().status(status.as_u16());
    for name in PASSED_BACK {
        if let Some(v) = resp.headers().get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let body = resp.bytes().await.map_err(|e| {
        tracing::warn!(shard, error = %e, "forward: reading the answer failed");
        lost()
    })?;
    out.body(Body::from(body)).map_err(|_| lost())
}

/// The leader's streamed answer, relayed as it comes: a chunk that does not come within `idle`
/// (counted only while this side waits for it) ends the body with an error, which a bulk
/// decoder reports as a truncated stream.
fn relay_streamed(resp: reqwest::Response, shard: u32, idle: Duration) -> Result<Response, Error> {
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        return Err(Error::PeerUnauthorized { shard });
    }
    let mut out = Response::builder().status(status.as_u16());
    for name in PASSED_BACK {
        if let Some(v) = resp.headers().get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let chunks = Some(resp.bytes_stream());
    let body = futures::stream::unfold(chunks, move |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                tracing::warn!(shard, error = %e, "forward: the leader's stream broke");
                Some((Err(std::io::Error::other(e)), None))
            }
            Err(_) => {
                tracing::warn!(shard, ?idle, "forward: the leader's stream stalled");
                let stalled = std::io::Error::new(std::io::ErrorKind::TimedOut, "stalled");
                Some((Err(stalled), None))
            }
        }
    });
    out.body(Body::from_stream(body))
        .map_err(|_| Error::PeerUnavailable { shard })
}

/// The total deadline given to a streamed forward: never reached in practice, as a stream is
/// bounded by its progress instead (the client's default would cut a long export).
const STREAM_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Request headers passed on when forwarding (`x-kv-read`: a follower read stays one at the
/// owner's copy).
const PASSED_ON: [h::HeaderName; 4] = [
    h::CONTENT_TYPE,
    h::IF_MATCH,
    h::IF_NONE_MATCH,
    h::HeaderName::from_static(header::READ),
];
/// Response headers passed back from the owner.
const PASSED_BACK: [&str; 4] = [
    "content-type",
    "etag",
    header::SERVED_BY,
    header::APPLIED_INDEX,
];

#[derive(Debug, Clone)]
pub struct PeerClient {
    /// The client without a CA file (no https peer is trusted then).
    plain: reqwest::Client,
    /// `--tls-ca-file`, re-read while running.
    ca: Option<Arc<CaFile>>,
    token: AdminToken,
}

/// The CA file, the bytes it was last loaded from, and a client trusting them.
#[derive(Debug)]
struct CaFile {
    path: PathBuf,
    pem: Mutex<Vec<u8>>,
    http: RwLock<reqwest::Client>,
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
}

/// A client trusting the CA certificates in `pem` (the content of the CA file at `path`).
fn client_trusting(path: &Path, pem: &[u8]) -> anyhow::Result<reqwest::Client> {
    let mut builder = client_builder();
    for der in crate::tls::ca_certificates_in(path, pem)? {
        let cert = reqwest::Certificate::from_der(&der).map_err(|e| {
            anyhow::anyhow!(
                "the CA file {} holds a bad certificate: {e}",
                path.display()
            )
        })?;
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder.build()?)
}

/// A request sent on to this shard's leader ([`PeerClient::forward_to_leader`]).
pub struct ToLeader<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The forwarding headers of a data request; `None` for an admin request.
    pub by: Option<ForwardedBy>,
    /// The sending copy's node ID, in the marker: the leader never sends it back here.
    pub from: u64,
    /// Whether the request changes the shard (a lost answer is then `outcome_unknown`).
    pub writes: bool,
    /// Relay the answer's body as it comes (an export): `deadline` then bounds the head and
    /// each wait for the next chunk, not the whole body.
    pub streamed: bool,
    /// The whole request's deadline (the route's own).
    pub deadline: Duration,
}

/// The group's RPCs (kvraft's client) send with what this client sends now: the client trusting
/// the CA file's current certificates and the peer token file's current first line, both
/// re-read while running.
impl kvraft::PeerCredentials for PeerClient {
    fn http(&self) -> reqwest::Client {
        PeerClient::http(self)
    }

    fn token(&self) -> Option<Arc<str>> {
        self.token.sending()
    }
}

/// What the previous owner holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Value(Record),
    /// Nothing, or a tombstone: either way there is nothing to read through to.
    Absent,
}

impl PeerClient {
    pub fn new(token: AdminToken, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let ca = match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the CA file {}: {e}", path.display())
                })?;
                let http = client_trusting(path, &pem)?;
                Some(Arc::new(CaFile {
                    path: path.to_owned(),
                    pem: Mutex::new(pem),
                    http: RwLock::new(http),
                }))
            }
            None => None,
        };
        let plain = match &ca {
            Some(ca) => ca.http.read().clone(),
            None => client_builder().build()?,
        };
        Ok(PeerClient { plain, ca, token })
    }

    /// The client in force (the one trusting the CA file's current certificates).
    pub fn http(&self) -> reqwest::Client {
        match &self.ca {
            Some(ca) => ca.http.read().clone(),
            None => self.plain.clone(),
        }
    }

    /// Re-reads the CA file once; returns whether a new set of CA certificates is now trusted.
    pub fn reload_ca(&self) -> anyhow::Result<bool> {
        let Some(ca) = &self.ca else {
            return Ok(false);
        };
        let pem = std::fs::read(&ca.path)
            .map_err(|e| anyhow::anyhow!("cannot read the CA file {}: {e}", ca.path.display()))?;
        if *ca.pem.lock() == pem {
            return Ok(false);
        }
        let http = client_trusting(&ca.path, &pem)?;
        *ca.http.write() = http;
        *ca.pem.lock() = pem;
        Ok(true)
    }

    /// Re-reads the CA file every [`crate::reload::RELOAD_EVERY`] until `stop` (a CA rotated in
    /// the Secret is trusted without a restart); returns at once without a CA file.
    pub async fn reload_ca_until(self, stop: CancellationToken) {
        if self.ca.is_none() {
            return;
        }
        let reread = move || self.reload_ca().map_err(|e| format!("{e:#}"));
        crate::reload::every_tick_blocking_until("peer CA file", stop, reread).await;
    }

    /// Sends the request on to `peer` (its base URL and shard) and relays the owner's answer.
    pub async fn forward(
        &self,
        (base_url, shard): (&str, u32),
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        by: ForwardedBy,
    ) -> Result<Response, Error> {
        let req = self.forwarded(base_url, method, path_and_query, headers, body, Some(by));
        let resp = self.with_peer_token(req).send().await.map_err(|e| {
            tracing::warn!(shard, error = %e, "forward failed");
            Error::PeerUnavailable { shard }
        })?;
        relay(resp, shard, || Error::PeerUnavailable { shard }).await
    }

    /// Sends a request on to this shard's leader (`replica.rs`) and relays its answer, marked
    /// [`crate::header_names::TO_LEADER`] with this copy as its sender (`to_leader.rs`), so it
    /// is never sent back here. A data request (`by`) carries
    /// the forwarding headers and the peer token; an admin request (`by` = `None`) the caller's
    /// own `Authorization`. A leader that cannot be reached is [`Error::NoLeader`] (nothing was
    /// sent); one lost after the request went out is [`Error::OutcomeUnknown`] for a write.
    pub async fn forward_to_leader(
        &self,
        (leader_url, shard): (&str, u32),
        hop: ToLeader<'_>,
    ) -> Result<Response, Error> {
        let ToLeader {
            method,
            path_and_query,
            headers,
            body,
            by,
            from,
            writes,
            streamed,
            deadline,
        } = hop;
        let data = by.is_some();
        let mut req = self
            .forwarded(leader_url, method, path_and_query, headers, body, by)
            .header(
                crate::header_names::TO_LEADER.clone(),
                crate::to_leader::Marker::value(from),
            )
            // A stream lasts as long as it makes progress (checked chunk by chunk below).
            .timeout(if streamed { STREAM_LIFETIME } else { deadline });
        if data {
            req = self.with_peer_token(req);
        } else if let Some(auth) = headers.get(h::AUTHORIZATION) {
            req = req.header(h::AUTHORIZATION, auth);
        }
        let lost = move || {
            if writes {
                Error::OutcomeUnknown
            } else {
                Error::NoLeader
            }
        };
        let sent = match tokio::time::timeout(deadline, req.send()).await {
            Ok(sent) => sent,
            Err(_) => return Err(lost()),
        };
        let resp = sent.map_err(|e| {
            tracing::warn!(shard, error = %e, "forward to the leader failed");
            if e.is_connect() {
                Error::NoLeader
            } else {
                lost()
            }
        })?;
        if streamed {
            relay_streamed(resp, shard, deadline)
        } else {
            relay(resp, shard, lost).await
        }
    }

    /// The request to `base_url`, with the passed-on headers and, for a data request, the
    /// forwarding headers of `by`.
    fn forwarded(
        &self,
        base_url: &str,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        by: Option<ForwardedBy>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{}", base_url.trim_end_matches('/'), path_and_query);
        let mut req = self.http().request(method, url).body(body);
        for name in PASSED_ON {
            if let Some(v) = headers.get(&name) {
                req = req.header(name, v);
            }
        }
        if let Some(by) = by {
            req = req
                .header(header::FORWARDED_EPOCH, by.epoch)
                .header(header::HOPS, by.hops);
            if let Some(rt) = by.read_through {
                req = req.header(header::READ_THROUGH, rt);
            }
        }
        req
    }

    /// `req` with the peer token sent now, if one is configured.
    fn with_peer_token(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token.sending() {
            Some(token) => req.bearer_auth(&*token),
            None => req,
        }
    }

    /// The previous owner's record for `key`, read with the local-only internal route.
    pub async fn read_through(
        &self,
        base_url: &str,
        shard: u32,
        key: &Key,
    ) -> Result<Remote, Error> {
        let Some(token) = self.token.sending() else {
            tracing::warn!("read-through needs the peer token; treating as a miss");
            return Ok(Remote::Absent);
        };
        let url = format!(
            "{}{}",
            base_url.trim_end_matches('/'),
            path::internal_key(key)
        );
        let resp = self
            .http()
            .get(url)
            .bearer_auth(&*token)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(shard, error = %e, "read-through failed");
                Error::PeerUnavailable { shard }
            })?;
        match resp.status() {
            StatusCode::OK => {
                let version = resp
                    .headers()
                    .get(h::ETAG)
                    .and_then(etag_header::version)
                    .unwrap_or(0);
                let value = resp
                    .bytes()
                    .await
                    .map_err(|_| Error::PeerUnavailable { shard })?;
                Ok(Remote::Value(Record {
                    version,
                    value: Some(value),
                }))
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Remote::Absent),
            StatusCode::UNAUTHORIZED => Err(Error::PeerUnauthorized { shard }),
            other => {
                tracing::warn!(shard, status = %other, "read-through: unexpected answer");
                Err(Error::PeerUnavailable { shard })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_group_sends_the_peer_token_in_force_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("peer-token");
        std::fs::write(&file, "old\n").unwrap();
        let token = AdminToken::from_named_file(Some(&file), "peer token file").unwrap();
        let group: Arc<dyn kvraft::PeerCredentials> =
            Arc::new(PeerClient::new(token.clone(), None).unwrap());
        assert_eq!(group.token().as_deref(), Some("old"));
        // The rollout's order: both accepted, then the new one sent, then the old one gone.
        std::fs::write(&file, "new\nold\n").unwrap();
        token.reload().await;
        assert_eq!(group.token().as_deref(), Some("new"));
    }
}
