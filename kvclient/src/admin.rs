//! The admin routes of [`ServerClient`] (bearer token from [`crate::ClientConfig::token`]):
//! topology push, bulk export and import, cleanup, and the local-only read.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use kvproto::bulk::{self, BulkCodec, BulkFrame, BulkRecord};
use kvproto::wire::{CleanupReport, ExportCount, ImportMode, ImportReport, path};
use kvproto::{Fence, Key, Topology};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tokio_util::codec::FramedRead;
use tokio_util::io::StreamReader;

use crate::error::{Error, Result};
use crate::retry::Idempotency;
use crate::server::{ServerClient, Versioned};

/// Which records `GET /v1/admin/export` streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportScope {
    /// Every local record, tombstones included.
    All,
    /// Only keys whose owner under the current topology is another shard.
    Moving,
}

impl ExportScope {
    fn as_str(self) -> &'static str {
        match self {
            ExportScope::All => "all",
            ExportScope::Moving => "moving",
        }
    }
}

/// What `GET /v1/internal/keys/{key}` found in the server's own store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRead {
    Value(Versioned),
    Absent,
    /// The key was deleted during a migration: read-through must stop here.
    Tombstone,
}

impl ServerClient {
    /// `PUT /v1/admin/topology`: the accepted topology, or [`Error::TopologyConflict`].
    /// Pushing the same topology twice is a no-op on the server, so this is retried.
    pub async fn put_topology(&self, topology: &Topology) -> Result<Topology> {
        let url = self.url("/v1/admin/topology");
        let resp = self
            .send(Idempotency::Idempotent, || {
                self.http.put(&url).json(topology)
            })
            .await?;
        self.json(resp).await
    }

    /// `GET /v1/admin/export?scope=`: the records as they arrive, decoded with
    /// [`BulkCodec`]. A stream cut short ends with [`Error::Bulk`] (`Truncated`), never silently.
    pub async fn export(
        &self,
        scope: ExportScope,
    ) -> Result<impl Stream<Item = Result<BulkRecord>> + Send + 'static> {
        let url = self.url(&format!("/v1/admin/export?scope={}", scope.as_str()));
        let resp = self
            .send_timed(Idempotency::Idempotent, self.config.bulk_timeout, || {
                self.http.get(&url)
            })
            .await?;
        let server = self.base().to_string();
        let body = StreamReader::new(resp.bytes_stream().map_err(std::io::Error::other));
        let frames = FramedRead::new(body, BulkCodec::new(self.config.max_value_bytes));
        Ok(frames.filter_map(move |frame| {
            let item = match frame {
                Ok(BulkFrame::Record(record)) => Some(Ok(record)),
                Ok(BulkFrame::End { .. }) => None,
                Err(source) => Some(Err(Error::Bulk {
                    server: server.clone(),
                    source,
                })),
            };
            futures::future::ready(item)
        }))
    }

    /// `POST /v1/admin/import?mode=`: sends `records` as one bulk stream. Records keep their
    /// versions, so sending a batch again changes nothing; it is retried. A server with a
    /// topology takes only imports fenced at its own move's copy (`fence`). A body over the
    /// server's import limits is [`Error::TooLarge`].
    pub async fn import(
        &self,
        records: &[BulkRecord],
        mode: ImportMode,
        fence: Option<Fence>,
    ) -> Result<ImportReport> {
        let mode = match mode {
            ImportMode::Overwrite => "overwrite",
            ImportMode::IfAbsent => "if-absent",
        };
        let url = self.url(&format!(
            "/v1/admin/import?mode={mode}{}",
            fence_query(fence)
        ));
        let body: Bytes = BulkCodec::encode_all(records);
        let resp = self
            .send_timed(Idempotency::Idempotent, self.config.bulk_timeout, || {
                self.http
                    .post(&url)
                    .header(CONTENT_TYPE, bulk::CONTENT_TYPE)
                    .body(body.clone())
            })
            .await
            .map_err(|e| too_large(e, body.len()))?;
        self.json(resp).await
    }

    /// `GET /v1/admin/export/count?scope=`: how many records an export of `scope` would send.
    pub async fn export_count(&self, scope: ExportScope) -> Result<u64> {
        let url = self.url(&format!("/v1/admin/export/count?scope={}", scope.as_str()));
        let resp = self
            .send_timed(Idempotency::Idempotent, self.config.bulk_timeout, || {
                self.http.get(&url)
            })
            .await?;
        let count: ExportCount = self.json(resp).await?;
        Ok(count.records)
    }

    /// `POST /v1/admin/cleanup`: drops keys this shard no longer owns, and tombstones. A server
    /// with a topology takes only a cleanup fenced at its own stable epoch (`fence`).
    pub async fn cleanup(&self, fence: Option<Fence>) -> Result<CleanupReport> {
        let url = match fence {
            Some(f) => self.url(&format!("/v1/admin/cleanup?{}", f.query())),
            None => self.url("/v1/admin/cleanup"),
        };
        let resp = self
            .send(Idempotency::Idempotent, || self.http.post(&url))
            .await?;
        self.json(resp).await
    }

    /// `GET /v1/internal/keys/{key}`: this server's own copy, without routing or read-through.
    pub async fn get_local(&self, key: &Key) -> Result<LocalRead> {
        match self.get_found(&self.url(&path::internal_key(key))).await {
            Ok(Some(resp)) => self.versioned(resp).await.map(LocalRead::Value),
            Ok(None) => Ok(LocalRead::Absent),
            Err(Error::Status { status, .. }) if status == StatusCode::GONE.as_u16() => {
                Ok(LocalRead::Tombstone)
            }
            Err(e) => Err(e),
        }
    }
}

/// A 413 answer to a body of `bytes` bytes, as [`Error::TooLarge`].
fn too_large(e: Error, bytes: usize) -> Error {
    match e {
        Error::Status {
            server,
            status: 413,
            message,
            ..
        } => Error::TooLarge {
            server,
            bytes,
            message,
        },
        other => other,
    }
}

/// `&epoch=E&phase=P`, or nothing.
fn fence_query(fence: Option<Fence>) -> String {
    fence.map_or_else(String::new, |f| format!("&{}", f.query()))
}
