//! Bulk export: records as a `kvproto::bulk` stream, in chunks, and the count an export of the
//! same records would send (the operator's `keysTotal`), both from one record stream.

use bytes::{Bytes, BytesMut};
use kvproto::bulk::{BulkCodec, BulkRecord};
use tokio::sync::mpsc;

use super::error::StorageError;

/// Export chunk size.
const EXPORT_CHUNK: usize = 64 << 10;

/// Streams `records` as a bulk stream into `tx`. Blocking. A failure mid-way ends the stream
/// without a trailer, which every decoder reports as truncated.
pub fn stream(
    records: impl Iterator<Item = Result<BulkRecord, StorageError>>,
    tx: &mpsc::Sender<Result<Bytes, StorageError>>,
) -> Result<u64, StorageError> {
    let mut buf = BytesMut::with_capacity(EXPORT_CHUNK * 2);
    BulkCodec::encode_start(&mut buf);
    let mut count = 0u64;
    let mut codec = BulkCodec::new(usize::MAX);
    let mut hung_up = false;
    for bulk in records {
        tokio_util::codec::Encoder::encode(&mut codec, &bulk?, &mut buf)
            .map_err(|e| StorageError::Engine(e.to_string()))?;
        count += 1;
        if buf.len() >= EXPORT_CHUNK && tx.blocking_send(Ok(buf.split().freeze())).is_err() {
            // The receiver hung up; nothing more to do.
            hung_up = true;
            break;
        }
    }
    if !hung_up {
        BulkCodec::encode_end(count, &mut buf);
        let _ = tx.blocking_send(Ok(buf.freeze()));
    }
    Ok(count)
}

/// How many records [`stream`] would send of `records`. Blocking.
pub fn count(
    mut records: impl Iterator<Item = Result<BulkRecord, StorageError>>,
) -> Result<u64, StorageError> {
    records.try_fold(0u64, |n, record| record.map(|_| n + 1))
}
