//! The bulk stream: a framed binary format for export and import of key/value pairs.
//!
//! ```text
//! stream  = MAGIC record* trailer
//! MAGIC   = "KVB1"
//! record  = kind:u8 (1 = value, 2 = tombstone) key_len:u16 key version:u64 [value_len:u32 value]
//! trailer = kind:u8 (0) count:u64          -- the number of records, so truncation is detected
//! ```
//! All integers are big-endian. Values are raw bytes. A decoder that reaches the end of input
//! without a matching trailer reports the stream as truncated; receivers apply nothing of a
//! stream that fails to decode.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

use crate::key::{Key, KeyError};

pub const MAGIC: &[u8; 4] = b"KVB1";
/// The media type of a bulk stream.
pub const CONTENT_TYPE: &str = "application/x-kvstore-bulk";

/// Highest version a stream may carry. Versions are hybrid-clock microseconds (about 2^51 today);
/// the headroom above this bound keeps a receiver's clock from ever saturating, which would make
/// two different writes share one version (and one ETag).
pub const MAX_VERSION: u64 = 1 << 62;

/// Bytes a stream takes beyond its records: the magic and the trailer.
pub const STREAM_OVERHEAD: usize = MAGIC.len() + 1 + 8;

const KIND_END: u8 = 0;
const KIND_VALUE: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;

/// One key with its version, and its value or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRecord {
    pub key: Key,
    pub version: u64,
    /// `None` marks a tombstone: the key was deleted.
    pub value: Option<Bytes>,
}

impl BulkRecord {
    /// Bytes this record takes in a bulk stream: what a batch of it weighs on the wire.
    pub fn encoded_len(&self) -> usize {
        1 + 2 + self.key.as_bytes().len() + 8 + self.value.as_ref().map_or(0, |v| 4 + v.len())
    }
}

/// A decoded stream element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkFrame {
    Record(BulkRecord),
    /// The trailer: the stream is complete and held this many records.
    End {
        count: u64,
    },
}

#[derive(Debug, Error)]
pub enum BulkError {
    #[error("bulk stream does not start with the KVB1 magic")]
    BadMagic,
    #[error("record {index}: unknown record kind {kind}")]
    UnknownKind { index: u64, kind: u8 },
    #[error("record {index}: invalid key: {source}")]
    InvalidKey { index: u64, source: KeyError },
    #[error("record {index}: value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        index: u64,
        len: usize,
        limit: usize,
    },
    #[error("record {index}: version {version} exceeds the maximum {MAX_VERSION}")]
    VersionTooLarge { index: u64, version: u64 },
    #[error("trailer says {declared} records but the stream held {seen}")]
    CountMismatch { declared: u64, seen: u64 },
    #[error("bulk stream truncated after {seen} records (no trailer)")]
    Truncated { seen: u64 },
    #[error("data after the trailer")]
    TrailingData,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes records; call [`BulkCodec::encode_end`] to finish a stream.
/// Decodes with a value-size limit so a hostile stream cannot make the receiver allocate wildly.
#[derive(Debug)]
pub struct BulkCodec {
    max_value_bytes: usize,
    magic_seen: bool,
    records: u64,
    ended: bool,
}

impl BulkCodec {
    pub fn new(max_value_bytes: usize) -> Self {
        BulkCodec {
            max_value_bytes,
            magic_seen: false,
            records: 0,
            ended: false,
        }
    }

    /// Records decoded (or encoded) so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the magic; call once before the first record.
    pub fn encode_start(dst: &mut BytesMut) {
        dst.put_slice(MAGIC);
    }

    /// Writes the trailer for `count` records.
    pub fn encode_end(count: u64, dst: &mut BytesMut) {
        dst.put_u8(KIND_END);
        dst.put_u64(count);
    }

    /// Encodes a whole stream into one buffer (for small batches and tests).
    pub fn encode_all<'a>(records: impl IntoIterator<Item = &'a BulkRecord> + Clone) -> Bytes {
        let len = records
            .clone()
            .into_iter()
            .map(BulkRecord::encoded_len)
            .sum::<usize>();
        let mut buf = BytesMut::with_capacity(STREAM_OVERHEAD + len);
        Self::encode_start(&mut buf);
        let mut codec = BulkCodec::new(usize::MAX);
        for record in records {
            codec.encode_record(record, &mut buf);
        }
        Self::encode_end(codec.records, &mut buf);
        buf.freeze()
    }

    fn encode_record(&mut self, record: &BulkRecord, dst: &mut BytesMut) {
        let key = record.key.as_bytes();
        dst.reserve(record.encoded_len());
        dst.put_u8(if record.value.is_some() {
            KIND_VALUE
        } else {
            KIND_TOMBSTONE
        });
        // Keys are at most 250 bytes, values are bounded by the server's limit.
        dst.put_u16(key.len() as u16);
        dst.put_slice(key);
        dst.put_u64(record.version);
        if let Some(value) = &record.value {
            dst.put_u32(value.len() as u32);
            dst.put_slice(value);
        }
        self.records += 1;
    }

    /// Decodes everything in `bytes`, which must be a complete stream.
    pub fn decode_all(bytes: &[u8], max_value_bytes: usize) -> Result<Vec<BulkRecord>, BulkError> {
        Self::decode_bytes(&Bytes::copy_from_slice(bytes), max_value_bytes)
    }

    /// Decodes the complete stream `bytes` without copying it: every value is a view into
    /// `bytes`, so the records together hold exactly the body's memory (an import body is held
    /// once, not twice). Copy a value before keeping it past the records (the read cache does).
    pub fn decode_bytes(
        bytes: &Bytes,
        max_value_bytes: usize,
    ) -> Result<Vec<BulkRecord>, BulkError> {
        let mut codec = BulkCodec::new(max_value_bytes);
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            match codec.parse(&bytes[at..])? {
                Parsed::Incomplete { .. } if codec.ended => return Ok(out),
                Parsed::Incomplete { .. } if !codec.magic_seen && at == bytes.len() => {
                    return Err(BulkError::BadMagic);
                }
                Parsed::Incomplete { .. } => {
                    return Err(BulkError::Truncated {
                        seen: codec.records,
                    });
                }
                Parsed::Magic { len } | Parsed::End { len, .. } => at += len,
                Parsed::Record {
                    key,
                    version,
                    value,
                    len,
                } => {
                    let value = value.map(|r| bytes.slice(at + r.start..at + r.end));
                    out.push(BulkRecord {
                        key,
                        version,
                        value,
                    });
                    at += len;
                }
            }
        }
    }
}

impl Encoder<&BulkRecord> for BulkCodec {
    type Error = BulkError;
    fn encode(&mut self, record: &BulkRecord, dst: &mut BytesMut) -> Result<(), BulkError> {
        self.encode_record(record, dst);
        Ok(())
    }
}

/// What [`BulkCodec::parse`] found at the start of its input.
enum Parsed {
    /// The frame is incomplete: it takes this many bytes in all (when known).
    Incomplete { needed: Option<usize> },
    /// The magic, `len` bytes.
    Magic { len: usize },
    /// A record of `len` bytes; its value (if any) is at `value` in the input.
    Record {
        key: Key,
        version: u64,
        value: Option<Range<usize>>,
        len: usize,
    },
    /// The trailer, `len` bytes.
    End { count: u64, len: usize },
}

impl BulkCodec {
    /// Reads the frame at the start of `src` without consuming it: the one parser behind the
    /// streaming decoder and [`BulkCodec::decode_bytes`], so both refuse the same streams with
    /// the same errors. Counts the record or trailer it returns as seen.
    fn parse(&mut self, src: &[u8]) -> Result<Parsed, BulkError> {
        let incomplete = Ok(Parsed::Incomplete { needed: None });
        if self.ended {
            return if src.is_empty() {
                incomplete
            } else {
                Err(BulkError::TrailingData)
            };
        }
        if !self.magic_seen {
            if src.len() < MAGIC.len() {
                return incomplete;
            }
            if &src[..MAGIC.len()] != MAGIC {
                return Err(BulkError::BadMagic);
            }
            self.magic_seen = true;
            return Ok(Parsed::Magic { len: MAGIC.len() });
        }
        let Some(&kind) = src.first() else {
            return incomplete;
        };
        let index = self.records;
        match kind {
            KIND_END => {
                if src.len() < 9 {
                    return incomplete;
                }
                let declared = u64::from_be_bytes(
                    src[1..9]
                        .try_into()
                        .map_err(|_| BulkError::Truncated { seen: index })?,
                );
                if declared != self.records {
                    return Err(BulkError::CountMismatch {
                        declared,
                        seen: self.records,
                    });
                }
                self.ended = true;
                Ok(Parsed::End {
                    count: declared,
                    len: 9,
                })
            }
            KIND_VALUE | KIND_TOMBSTONE => {
                if src.len() < 3 {
                    return incomplete;
                }
                let key_len = usize::from(u16::from_be_bytes([src[1], src[2]]));
                let fixed = 3 + key_len + 8;
                let value_len = if kind == KIND_VALUE {
                    if src.len() < fixed + 4 {
                        return incomplete;
                    }
                    let at = fixed;
                    let len = u32::from_be_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]])
                        as usize;
                    if len > self.max_value_bytes {
                        return Err(BulkError::ValueTooLarge {
                            index,
                            len,
                            limit: self.max_value_bytes,
                        });
                    }
                    Some(len)
                } else {
                    None
                };
                let total = fixed + value_len.map_or(0, |len| 4 + len);
                if src.len() < total {
                    return Ok(Parsed::Incomplete {
                        needed: Some(total),
                    });
                }
                let key = Key::from_bytes(&src[3..3 + key_len])
                    .map_err(|source| BulkError::InvalidKey { index, source })?;
                let version = u64::from_be_bytes(
                    src[3 + key_len..fixed]
                        .try_into()
                        .map_err(|_| BulkError::Truncated { seen: index })?,
                );
                if version > MAX_VERSION {
                    return Err(BulkError::VersionTooLarge { index, version });
                }
                self.records += 1;
                Ok(Parsed::Record {
                    key,
                    version,
                    value: value_len.map(|len| fixed + 4..fixed + 4 + len),
                    len: total,
                })
            }
            other => Err(BulkError::UnknownKind { index, kind: other }),
        }
    }
}

/// Streaming decoding (an export read from the network). Each value is copied out of the read
/// buffer into its own allocation: a record kept (in a batch, a cache) then weighs what it
/// holds and never pins the buffer it arrived in, which the decoder reuses.
impl Decoder for BulkCodec {
    type Item = BulkFrame;
    type Error = BulkError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BulkFrame>, BulkError> {
        loop {
            match self.parse(src)? {
                Parsed::Incomplete { needed } => {
                    if let Some(total) = needed {
                        src.reserve(total.saturating_sub(src.len()));
                    }
                    return Ok(None);
                }
                Parsed::Magic { len } => src.advance(len),
                Parsed::End { count, len } => {
                    src.advance(len);
                    return Ok(Some(BulkFrame::End { count }));
                }
                Parsed::Record {
                    key,
                    version,
                    value,
                    len,
                } => {
                    let value = value.map(|at| Bytes::copy_from_slice(&src[at]));
                    src.advance(len);
                    return Ok(Some(BulkFrame::Record(BulkRecord {
                        key,
                        version,
                        value,
                    })));
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BulkFrame>, BulkError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if self.ended => Ok(None),
            None if !self.magic_seen && src.is_empty() => Err(BulkError::BadMagic),
            None => Err(BulkError::Truncated { seen: self.records }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(key: &str, version: u64, value: Option<&[u8]>) -> BulkRecord {
        BulkRecord {
            key: Key::new(key).expect("valid test key"),
            version,
            value: value.map(Bytes::copy_from_slice),
        }
    }

    #[test]
    fn round_trips_values_and_tombstones() {
        let records = vec![
            rec("a", 1, Some(b"A")),
            rec("b", 7, None),
            rec("c", 9, Some(b"")),
        ];
        let bytes = BulkCodec::encode_all(&records);
        assert_eq!(
            BulkCodec::decode_all(&bytes, 1024).expect("decodes"),
            records
        );
    }

    #[test]
    fn truncation_is_reported_with_the_count() {
        let records = vec![rec("a", 1, Some(b"A")), rec("b", 2, Some(b"B"))];
        let bytes = BulkCodec::encode_all(&records);
        let cut = &bytes[..bytes.len() - 9];
        assert!(matches!(
            BulkCodec::decode_all(cut, 1024),
            Err(BulkError::Truncated { seen: 2 })
        ));
        let mid = &bytes[..10];
        assert!(matches!(
            BulkCodec::decode_all(mid, 1024),
            Err(BulkError::Truncated { seen: 0 })
        ));
    }

    #[test]
    fn bad_keys_sizes_and_kinds_are_refused() {
        let mut buf = BytesMut::new();
        BulkCodec::encode_start(&mut buf);
        buf.put_u8(KIND_VALUE);
        buf.put_u16(2);
        buf.put_slice(b"..");
        buf.put_u64(1);
        buf.put_u32(0);
        assert!(matches!(
            BulkCodec::decode_all(&buf, 10),
            Err(BulkError::InvalidKey { index: 0, .. })
        ));

        let big = BulkCodec::encode_all(&[rec("a", 1, Some(&[0u8; 11]))]);
        assert!(matches!(
            BulkCodec::decode_all(&big, 10),
            Err(BulkError::ValueTooLarge { len: 11, .. })
        ));

        assert!(matches!(
            BulkCodec::decode_all(b"KVB1\x09", 10),
            Err(BulkError::UnknownKind { kind: 9, .. })
        ));
        assert!(matches!(
            BulkCodec::decode_all(b"nope", 10),
            Err(BulkError::BadMagic)
        ));
        assert!(matches!(
            BulkCodec::decode_all(b"", 10),
            Err(BulkError::BadMagic)
        ));
    }

    #[test]
    fn a_lying_trailer_and_trailing_bytes_are_refused() {
        let mut buf = BytesMut::new();
        BulkCodec::encode_start(&mut buf);
        BulkCodec::encode_end(3, &mut buf);
        assert!(matches!(
            BulkCodec::decode_all(&buf, 10),
            Err(BulkError::CountMismatch {
                declared: 3,
                seen: 0
            })
        ));
        let mut ok = BytesMut::from(&BulkCodec::encode_all(&[])[..]);
        ok.put_u8(1);
        assert!(matches!(
            BulkCodec::decode_all(&ok, 10),
            Err(BulkError::TrailingData)
        ));
    }

    #[test]
    fn versions_that_would_saturate_a_clock_are_refused() {
        let ok = BulkCodec::encode_all(&[rec("a", MAX_VERSION, Some(b"A"))]);
        assert!(BulkCodec::decode_all(&ok, 10).is_ok());
        let bad = BulkCodec::encode_all(&[rec("a", u64::MAX - 1, Some(b"A"))]);
        assert!(matches!(
            BulkCodec::decode_all(&bad, 10),
            Err(BulkError::VersionTooLarge { index: 0, .. })
        ));
    }

    /// True when `inner` lies inside `outer`'s memory.
    fn within(inner: &[u8], outer: &[u8]) -> bool {
        let (start, end) = (
            outer.as_ptr() as usize,
            outer.as_ptr() as usize + outer.len(),
        );
        let at = inner.as_ptr() as usize;
        start <= at && at + inner.len() <= end
    }

    #[test]
    fn a_whole_body_decodes_into_views_and_a_stream_into_owned_values() {
        let records = vec![
            rec("a", 1, Some(&[7u8; 300])),
            rec("b", 2, Some(&[8u8; 500])),
        ];
        let body = BulkCodec::encode_all(&records);
        assert_eq!(
            body.len(),
            STREAM_OVERHEAD + records.iter().map(BulkRecord::encoded_len).sum::<usize>()
        );
        let views = BulkCodec::decode_bytes(&body, 1024).expect("decodes");
        assert_eq!(views, records);
        for r in &views {
            assert!(
                within(r.value.as_deref().unwrap_or_default(), &body),
                "not copied"
            );
        }
        let mut codec = BulkCodec::new(1024);
        let mut buf = BytesMut::from(&body[..]);
        let read_buffer = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
        let mut owned = Vec::new();
        while let Some(frame) = codec.decode_eof(&mut buf).expect("decodes") {
            if let BulkFrame::Record(r) = frame {
                owned.push(r);
            }
        }
        assert_eq!(owned, records);
        for r in &owned {
            let at = r.value.as_deref().unwrap_or_default().as_ptr() as usize;
            assert!(
                !read_buffer.contains(&at),
                "a kept value pins the read buffer"
            );
        }
    }

    proptest! {
        #[test]
        fn whole_and_streamed_decoding_agree(magic in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Mostly past the magic, so that the record parser is reached.
            let bytes: Vec<u8> = if magic { MAGIC.iter().copied().chain(tail).collect() } else { tail };
            let whole = BulkCodec::decode_all(&bytes, 64).map_err(|e| e.to_string());
            let mut codec = BulkCodec::new(64);
            let mut buf = BytesMut::new();
            let mut streamed = Vec::new();
            let mut outcome = Ok(());
            for byte in &bytes {
                buf.extend_from_slice(&[*byte]);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(BulkFrame::Record(r))) => streamed.push(r),
                        Ok(Some(BulkFrame::End { .. })) => {}
                        Ok(None) => break,
                        Err(e) => { outcome = Err(e.to_string()); break; }
                    }
                }
                if outcome.is_err() { break; }
            }
            if outcome.is_ok() {
                loop {
                    match codec.decode_eof(&mut buf) {
                        Ok(Some(BulkFrame::Record(r))) => streamed.push(r),
                        Ok(Some(BulkFrame::End { .. })) => {}
                        Ok(None) => break,
                        Err(e) => { outcome = Err(e.to_string()); break; }
                    }
                }
            }
            prop_assert_eq!(whole, outcome.map(|()| streamed));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = BulkCodec::decode_all(&bytes, 64);
        }

        #[test]
        fn any_split_point_decodes_the_same(n in 0usize..20, split in 0usize..400) {
            let records: Vec<BulkRecord> = (0..n).map(|i| rec(&format!("k{i}"), i as u64, Some(format!("v{i}").as_bytes()))).collect();
            let bytes = BulkCodec::encode_all(&records);
            let split = split.min(bytes.len());
            let mut codec = BulkCodec::new(64);
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut out = Vec::new();
            while let Some(BulkFrame::Record(r)) = codec.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? { out.push(r); }
            buf.extend_from_slice(&bytes[split..]);
            while let Some(frame) = codec.decode_eof(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                if let BulkFrame::Record(r) = frame { out.push(r); }
            }
            prop_assert_eq!(out, records);
        }
    }
}
