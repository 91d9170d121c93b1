//! A snapshot on the wire (docs/replication.md sections 4 and 5), streamed in both directions
//! so neither side holds it in memory:
//!
//! ```text
//! body    = header, bulk, trailer
//! header  = u32 len, json {vote, meta}         -- the leader's vote, the snapshot's meta
//! bulk    = a kvproto::bulk stream: MAGIC, record*, end(count)
//! trailer = u32 len, json {version_floor, topology}
//! ```
//! Each record carries a key and its stored bytes as the bulk value, opaque (version 0): the
//! record format is the apply target's, and a follower installs the bytes exactly as the leader
//! holds them. The receiver writes records into a fresh records generation as they arrive
//! (batches of [`STAGE_BATCH`]) and refuses a stream that stalls longer than the idle limit.

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjall::Database;
use futures::{Stream, StreamExt};
use kvproto::bulk::{BulkCodec, BulkError, BulkFrame, BulkRecord};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::MAX_VALUE_BYTES;
use crate::error::StorageError;
use crate::records;
use crate::snapshot::{SnapshotData, Source, Staged, Trailer};
use crate::types::{SnapshotMeta, Vote};

/// Records written per batch into the staged generation.
pub(crate) const STAGE_BATCH: usize = 1000;
/// Bytes gathered before a chunk is handed to the connection.
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks the reading thread may run ahead of the connection.
const CHUNKS_AHEAD: usize = 4;
/// A stored record is a value plus the target's small header.
const MAX_RECORD_BYTES: usize = MAX_VALUE_BYTES + 4096;
/// The header and trailer are small JSON (a membership, a topology).
const MAX_FRAME_BYTES: usize = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    vote: Vote,
    meta: SnapshotMeta,
}

/// Why a snapshot stream could not be sent or received.
#[derive(Debug, Error)]
pub(crate) enum SnapshotStreamError {
    #[error("snapshot stream is truncated")]
    Truncated,
    #[error("snapshot stream stalled for {0:?}")]
    Idle(Duration),
    #[error("bad snapshot frame: {0}")]
    Frame(String),
    #[error("bad snapshot records: {0}")]
    Bulk(#[from] BulkError),
    #[error("reading the snapshot body: {0}")]
    Body(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<fjall::Error> for SnapshotStreamError {
    fn from(e: fjall::Error) -> Self {
        SnapshotStreamError::Storage(StorageError::from(e))
    }
}

/// The body of `data`, produced by a blocking thread that reads the view while the connection
/// takes the chunks (at most [`CHUNKS_AHEAD`] waiting).
pub(crate) fn send(
    vote: Vote,
    meta: SnapshotMeta,
    data: SnapshotData,
) -> Result<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static, SnapshotStreamError> {
    let mut head = BytesMut::new();
    put_frame(&mut head, &Header { vote, meta })?;
    let mut tail = BytesMut::new();
    put_frame(&mut tail, &data.trailer)?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut buf = head;
        BulkCodec::encode_start(&mut buf);
        let mut codec = BulkCodec::new(usize::MAX);
        for record in data.records() {
            let item = record.and_then(|(k, v)| {
                let key = kvproto::Key::from_bytes(&k)
                    .map_err(|e| StorageError::corrupt("records key", e))?;
                Ok(BulkRecord {
                    key,
                    version: 0,
                    value: Some(Bytes::from(v)),
                })
            });
            let record = match item {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                    return;
                }
            };
            if let Err(e) = codec.encode(&record, &mut buf) {
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                return;
            }
            if buf.len() >= CHUNK_BYTES && tx.blocking_send(Ok(buf.split().freeze())).is_err() {
                return; // the connection is gone
            }
        }
        BulkCodec::encode_end(codec.records(), &mut buf);
        buf.put_slice(&tail);
        let _ = tx.blocking_send(Ok(buf.freeze()));
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A received snapshot, its records staged in `generation`, ready to install.
pub(crate) struct Received {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub data: SnapshotData,
}

/// Reads a snapshot body into the fresh records generation `generation` of `db`.
pub(crate) async fn receive<S, E>(
    db: &Database,
    generation: u64,
    mut body: S,
    idle: Duration,
) -> Result<Received, SnapshotStreamError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let keyspace = records::open_keyspace(db, generation)?;
    // From here on a failure drops the staged generation with `staged`.
    let staged = Staged {
        db: db.clone(),
        generation,
        keyspace: Some(keyspace.clone()),
    };
    let mut buf = BytesMut::new();

    let header: Header = loop {
        if let Some(h) = take_frame(&mut buf)? {
            break h;
        }
        if !more(&mut body, &mut buf, idle).await? {
            return Err(SnapshotStreamError::Truncated);
        }
    };

    let mut codec = BulkCodec::new(MAX_RECORD_BYTES);
    let mut batch = db.batch();
    let mut in_batch = 0;
    loop {
        match codec.decode(&mut buf)? {
            Some(BulkFrame::Record(r)) => {
                let value = r.value.unwrap_or_default();
                batch.insert(&keyspace, r.key.as_bytes(), value.as_ref());
                in_batch += 1;
                if in_batch == STAGE_BATCH {
                    std::mem::replace(&mut batch, db.batch()).commit()?;
                    in_batch = 0;
                }
            }
            Some(BulkFrame::End { .. }) => break,
            None => {
                if !more(&mut body, &mut buf, idle).await? {
                    return Err(SnapshotStreamError::Truncated);
                }
            }
        }
    }
    batch.commit()?;

    let trailer: Trailer = loop {
        if let Some(t) = take_frame(&mut buf)? {
            break t;
        }
        if !more(&mut body, &mut buf, idle).await? {
            return Err(SnapshotStreamError::Truncated);
        }
    };
    loop {
        if !buf.is_empty() {
            return Err(SnapshotStreamError::Frame(format!(
                "{} bytes after the trailer",
                buf.len()
            )));
        }
        if !more(&mut body, &mut buf, idle).await? {
            break;
        }
    }
    let source = Source::Staged(staged);
    Ok(Received {
        vote: header.vote,
        meta: header.meta,
        data: SnapshotData { source, trailer },
    })
}

/// Appends the body's next chunk to `buf`; `false` at the end of the body.
async fn more<S, E>(
    body: &mut S,
    buf: &mut BytesMut,
    idle: Duration,
) -> Result<bool, SnapshotStreamError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(idle, body.next()).await {
        Err(_) => Err(SnapshotStreamError::Idle(idle)),
        Ok(None) => Ok(false),
        Ok(Some(Err(e))) => Err(SnapshotStreamError::Body(e.to_string())),
        Ok(Some(Ok(chunk))) => {
            buf.extend_from_slice(&chunk);
            Ok(true)
        }
    }
}

fn put_frame<T: Serialize>(out: &mut BytesMut, value: &T) -> Result<(), SnapshotStreamError> {
    let json = serde_json::to_vec(value).map_err(|e| SnapshotStreamError::Frame(e.to_string()))?;
    let len = u32::try_from(json.len())
        .map_err(|_| SnapshotStreamError::Frame(format!("a frame of {} bytes", json.len())))?;
    out.put_u32(len);
    out.put_slice(&json);
    Ok(())
}

/// A whole length-prefixed JSON frame off the front of `buf`, or `None` until it has arrived.
fn take_frame<T: for<'de> Deserialize<'de>>(
    buf: &mut BytesMut,
) -> Result<Option<T>, SnapshotStreamError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(SnapshotStreamError::Frame(format!(
            "a frame of {len} bytes"
        )));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let json = buf.split_to(len);
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| SnapshotStreamError::Frame(e.to_string()))
}
