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
    pub fn encode_all<'a>(records: impl IntoIterator<Item = &'a BulkRecord>) -> Bytes {
        let mut buf = BytesMut::new();
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
        dst.reserve(1 + 2 + key.len() + 8 + 4 + record.value.as_ref().map_or(0, Bytes::len));
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
        let mut codec = BulkCodec::new(max_value_bytes);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode_eof(&mut buf)? {
            match frame {
                BulkFrame::Record(r) => out.push(r),
                BulkFrame::End { .. } => {}
            }
        }
        Ok(out)
    }
}

impl Encoder<&BulkRecord> for BulkCodec {
    type Error = BulkError;
    fn encode(&mut self, record: &BulkRecord, dst: &mut BytesMut) -> Result<(), BulkError> {
        self.encode_record(record, dst);
        Ok(())
    }
}

impl Decoder for BulkCodec {
    type Item = BulkFrame;
    type Error = BulkError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BulkFrame>, BulkError> {
        if self.ended {
            return if src.is_empty() {
                Ok(None)
            } else {
                Err(BulkError::TrailingData)
            };
        }
        if !self.magic_seen {
            if src.len() < MAGIC.len() {
                return Ok(None);
            }
            if &src[..MAGIC.len()] != MAGIC {
                return Err(BulkError::BadMagic);
            }
            src.advance(MAGIC.len());
            self.magic_seen = true;
        }
        let Some(&kind) = src.first() else {
            return Ok(None);
        };
        let index = self.records;
        match kind {
            KIND_END => {
                if src.len() < 9 {
                    return Ok(None);
                }
                src.advance(1);
                let declared = src.get_u64();
                if declared != self.records {
                    return Err(BulkError::CountMismatch {
                        declared,
                        seen: self.records,
                    });
                }
                self.ended = true;
                Ok(Some(BulkFrame::End { count: declared }))
            }
            KIND_VALUE | KIND_TOMBSTONE => {
                if src.len() < 3 {
                    return Ok(None);
                }
                let key_len = usize::from(u16::from_be_bytes([src[1], src[2]]));
                let fixed = 3 + key_len + 8;
                let value_len = if kind == KIND_VALUE {
                    if src.len() < fixed + 4 {
                        return Ok(None);
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
                    src.reserve(total - src.len());
                    return Ok(None);
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
                src.advance(fixed);
                let value = match value_len {
                    Some(len) => {
                        src.advance(4);
                        Some(src.split_to(len).freeze())
                    }
                    None => None,
                };
                self.records += 1;
                Ok(Some(BulkFrame::Record(BulkRecord {
                    key,
                    version,
                    value,
                })))
            }
            other => Err(BulkError::UnknownKind { index, kind: other }),
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

    proptest! {
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
