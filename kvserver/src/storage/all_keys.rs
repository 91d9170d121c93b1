//! The book's `/allKeys` as a stream: every live key, comma-separated, in chunks, so a shard of
//! millions of keys is never held in memory whole (issue 13 item 12).

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;

use super::error::StorageError;
use super::scan::Stored;

/// Chunk size of the stream.
const CHUNK: usize = 64 << 10;

/// Sends the live keys of `records` into `tx` as `k1,k2,...` (no trailing comma). Blocking. A
/// failure mid-way is sent as the last item, which aborts the response.
pub fn stream(
    records: impl Iterator<Item = Result<Stored, StorageError>>,
    tx: &mpsc::Sender<Result<Bytes, StorageError>>,
) {
    let mut buf = BytesMut::with_capacity(CHUNK * 2);
    let mut first = true;
    for stored in records {
        let stored = match stored.and_then(|s| s.record().map(|r| (s, r))) {
            Ok((s, r)) if !r.is_tombstone() => s,
            Ok(_) => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if !first {
            buf.put_u8(b',');
        }
        first = false;
        buf.put_slice(stored.key.as_bytes());
        if buf.len() >= CHUNK && tx.blocking_send(Ok(buf.split().freeze())).is_err() {
            return; // the client hung up
        }
    }
    if !buf.is_empty() {
        let _ = tx.blocking_send(Ok(buf.freeze()));
    }
}
