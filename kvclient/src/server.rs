//! [`ServerClient`]: typed async access to one kvserver, and the request loop (retries, error
//! decoding, topology hints) that the admin and book routes share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvproto::Key;
use kvproto::Topology;
use kvproto::wire::{ErrorBody, ErrorCode, Info, KeyPage, etag};
use reqwest::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{RequestBuilder, Response};

use crate::addr::parse_server;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::hints::RoutingHints;
use crate::retry::{FirstUnknown, Idempotency, should_retry};
use crate::stats::ClientStats;

/// A value with the version the server stored it under (from `ETag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Bytes,
    /// Absent when the server sent no parsable `ETag`.
    pub version: Option<u64>,
}

/// The precondition of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: only when the key is absent.
    IfAbsent,
    /// `If-Match: "<v>"`: only when the stored version is `v`.
    IfVersion(u64),
}

/// Query of one page of `GET /v1/keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: Option<String>,
    /// Start after this key (the previous page's `next_after`).
    pub after: Option<String>,
    /// Page size; the server defaults to 1000 and caps at 10000.
    pub limit: Option<u32>,
}

/// A client for one kvserver. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct ServerClient {
    pub(crate) http: reqwest::Client,
    base: Arc<str>,
    pub(crate) config: Arc<ClientConfig>,
    hints: Arc<RoutingHints>,
    stats: Arc<ClientStats>,
}

impl ServerClient {
    /// A client for `addr` (`host`, `host:port` or `http://host:port`) with its own pool.
    pub fn new(addr: &str, config: ClientConfig) -> Result<Self> {
        let base = parse_server(addr)?;
        let http = config.http_client()?;
        Ok(Self::from_parts(
            http,
            base,
            Arc::new(config),
            Arc::new(RoutingHints::default()),
            Arc::new(ClientStats::default()),
        ))
    }

    /// A client on a shared pool; `base` must already be a parsed base URL.
    pub(crate) fn from_parts(
        http: reqwest::Client,
        base: String,
        config: Arc<ClientConfig>,
        hints: Arc<RoutingHints>,
        stats: Arc<ClientStats>,
    ) -> Self {
        ServerClient {
            http,
            base: base.into(),
            config,
            hints,
            stats,
        }
    }

    /// The server's base URL, e.g. `http://server-0.server:80`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The topology hints gathered from this server's answers.
    pub fn hints(&self) -> &RoutingHints {
        &self.hints
    }

    /// The counters this client shares with its sharded client.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// `GET /v1/keys/{key}`: the value and its version, or `None` when absent.
    pub async fn get(&self, key: &Key) -> Result<Option<Versioned>> {
        match self.get_found(&self.key_url(key)).await? {
            Some(resp) => self.versioned(resp).await.map(Some),
            None => Ok(None),
        }
    }

    /// `PUT /v1/keys/{key}`, overwriting: returns the new version. Idempotent, so retried.
    pub async fn put(&self, key: &Key, value: impl Into<Bytes>) -> Result<Option<u64>> {
        let value = value.into();
        let url = self.key_url(key);
        let resp = self
            .send(Idempotency::Idempotent, || {
                self.http.put(&url).body(value.clone())
            })
            .await?;
        Ok(etag_version(&resp))
    }

    /// A conditional `PUT`: [`Error::PreconditionFailed`] when the condition does not hold.
    /// Retried only when the server said it applied nothing.
    pub async fn put_if(
        &self,
        key: &Key,
        value: impl Into<Bytes>,
        condition: Condition,
    ) -> Result<Option<u64>> {
        let value = value.into();
        let url = self.key_url(key);
        let resp = self
            .send(Idempotency::Conditional, || {
                with_condition(self.http.put(&url), condition).body(value.clone())
            })
            .await?;
        Ok(etag_version(&resp))
    }

    /// `DELETE /v1/keys/{key}`: true if it was there, false if it was absent.
    pub async fn delete(&self, key: &Key) -> Result<bool> {
        let url = self.key_url(key);
        self.delete_with(Idempotency::Idempotent, || self.http.delete(&url))
            .await
    }

    /// `DELETE` with `If-Match: "<version>"`; [`Error::PreconditionFailed`] if it moved.
    pub async fn delete_if_version(&self, key: &Key, version: u64) -> Result<bool> {
        let url = self.key_url(key);
        self.delete_with(Idempotency::Conditional, || {
            with_condition(self.http.delete(&url), Condition::IfVersion(version))
        })
        .await
    }

    async fn delete_with(
        &self,
        idempotency: Idempotency,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<bool> {
        match self.send(idempotency, build).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One page of `GET /v1/keys`: keys held on this server, sorted.
    pub async fn list(&self, query: &ListQuery) -> Result<KeyPage> {
        let url = self.url("/v1/keys");
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(p) = &query.prefix {
            params.push(("prefix", p.clone()));
        }
        if let Some(a) = &query.after {
            params.push(("after", a.clone()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        let resp = self
            .send(Idempotency::Idempotent, || {
                self.http.get(&url).query(&params)
            })
            .await?;
        self.json(resp).await
    }

    /// Every key on this server with `prefix`, following pages to the end.
    pub async fn list_all(&self, prefix: Option<&str>) -> Result<Vec<String>> {
        let mut query = ListQuery {
            prefix: prefix.map(str::to_string),
            after: None,
            limit: Some(10_000),
        };
        let mut keys = Vec::new();
        loop {
            let page = self.list(&query).await?;
            keys.extend(page.keys);
            match page.next_after {
                Some(after) if query.after.as_ref() != Some(&after) => query.after = Some(after),
                _ => return Ok(keys),
            }
        }
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info> {
        let url = self.url("/v1/info");
        let resp = self
            .send(Idempotency::Idempotent, || self.http.get(&url))
            .await?;
        self.json(resp).await
    }

    /// `GET /v1/topology`, or `None` before the operator set one.
    pub async fn topology(&self) -> Result<Option<Topology>> {
        match self.get_found(&self.url("/v1/topology")).await? {
            Some(resp) => self.json(resp).await.map(Some),
            None => Ok(None),
        }
    }

    /// `GET url`, or `None` when the server answers 404 `not_found`.
    pub(crate) async fn get_found(&self, url: &str) -> Result<Option<Response>> {
        match self
            .send(Idempotency::Idempotent, || self.http.get(url))
            .await
        {
            Ok(resp) => Ok(Some(resp)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    fn key_url(&self, key: &Key) -> String {
        self.url(&format!("/v1/keys/{}", key.to_path_segment()))
    }

    /// Sends the request `build` makes, retrying per [`crate::retry`]; non-2xx answers become
    /// errors with the server's code and message.
    pub(crate) async fn send(
        &self,
        idempotency: Idempotency,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        self.send_timed(idempotency, self.config.timeout, build)
            .await
    }

    /// [`Self::send`] with its own whole-request deadline (bulk transfers).
    pub(crate) async fn send_timed(
        &self,
        idempotency: Idempotency,
        timeout: Duration,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let policy = self.config.retry;
        let started = Instant::now();
        let mut retry = 0;
        let mut unknown = FirstUnknown::default();
        loop {
            let mut request = build();
            if let Some(token) = &self.config.token {
                request = request.bearer_auth(token);
            }
            match self.send_once(request, timeout).await {
                Err(e) if should_retry(&e, idempotency) => {
                    let Some(delay) = policy.next_delay(retry, started) else {
                        return Err(unknown.settle(e));
                    };
                    tracing::debug!(server = %self.base, error = %e, retry, "retrying");
                    self.stats.retried();
                    unknown.note(e);
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                other => return other.map_err(|e| unknown.settle(e)),
            }
        }
    }

    async fn send_once(&self, request: RequestBuilder, timeout: Duration) -> Result<Response> {
        let resp = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        self.hints.observe(&self.base, resp.headers());
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.status_error(resp).await)
        }
    }

    async fn status_error(&self, resp: Response) -> Error {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => (Some(b.error), b.message),
            Err(_) => (None, snippet(&body)),
        };
        let server = self.base.to_string();
        match (status, code) {
            (412, _) => Error::PreconditionFailed { server, message },
            (409, Some(ErrorCode::TopologyConflict)) => Error::TopologyConflict { server, message },
            _ => Error::Status {
                server,
                status,
                code,
                message,
            },
        }
    }

    pub(crate) fn transport_error(&self, e: reqwest::Error) -> Error {
        let server = self.base.to_string();
        if let Some(reason) = tls_failure(&e) {
            Error::Tls { server, reason }
        } else if e.is_connect() {
            Error::Unreachable { server, source: e }
        } else if e.is_timeout() {
            Error::Timeout { server }
        } else {
            Error::Transport { server, source: e }
        }
    }

    /// The value of a key's answer, with the version its `ETag` names.
    pub(crate) async fn versioned(&self, resp: Response) -> Result<Versioned> {
        let version = etag_version(&resp);
        let value = self.body(resp).await?;
        Ok(Versioned { value, version })
    }

    pub(crate) async fn body(&self, resp: Response) -> Result<Bytes> {
        resp.bytes().await.map_err(|e| self.transport_error(e))
    }

    pub(crate) async fn text(&self, resp: Response) -> Result<String> {
        let bytes = self.body(resp).await?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.bad("body is not UTF-8"))
    }

    pub(crate) async fn json<T: serde::de::DeserializeOwned>(&self, resp: Response) -> Result<T> {
        let bytes = self.body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.bad(&format!("invalid JSON: {e}")))
    }

    pub(crate) fn bad(&self, reason: &str) -> Error {
        Error::BadResponse {
            server: self.base.to_string(),
            reason: reason.to_string(),
        }
    }
}

fn with_condition(request: RequestBuilder, condition: Condition) -> RequestBuilder {
    match condition {
        Condition::IfAbsent => request.header(IF_NONE_MATCH, "*"),
        Condition::IfVersion(v) => request.header(IF_MATCH, etag::format(v)),
    }
}

/// 404 `not_found` (a missing key), as opposed to 404 `route_not_found`.
pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::Status {
            status: 404,
            code: Some(ErrorCode::NotFound),
            ..
        }
    )
}

fn etag_version(resp: &Response) -> Option<u64> {
    etag::parse(resp.headers().get(ETAG)?.to_str().ok()?)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.trim().to_string()
}

/// The TLS error behind a failed request, if that is what it was (rustls' own words, e.g.
/// "invalid peer certificate: UnknownIssuer"). An `io::Error` hides its inner error from
/// `source()`, so each one in the chain is opened.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => err.source(),
        };
    }
    None
}
