//! How one key's state is stored in the engine: `tag:u8 version:u64be [value]`.
//! Tag 1 is a value, tag 2 a tombstone (a delete that must stop read-through and imports).

use bytes::{BufMut, Bytes, BytesMut};
use kvproto::Key;

use super::error::StorageError;

const TAG_VALUE: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;
const HEADER: usize = 1 + 8;

/// A key's stored state: its version and its value, or `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub version: u64,
    pub value: Option<Bytes>,
}

impl Record {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Bytes of value held (0 for a tombstone).
    pub fn value_len(&self) -> u64 {
        self.value.as_ref().map_or(0, |v| v.len() as u64)
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER + self.value.as_ref().map_or(0, Bytes::len));
        buf.put_u8(if self.value.is_some() {
            TAG_VALUE
        } else {
            TAG_TOMBSTONE
        });
        buf.put_u64(self.version);
        if let Some(value) = &self.value {
            buf.put_slice(value);
        }
        buf.freeze()
    }

    /// `None` for bytes no version of this server wrote (reported as corruption by the caller).
    pub fn decode(bytes: Bytes) -> Option<Record> {
        if bytes.len() < HEADER {
            return None;
        }
        let mut version = [0u8; 8];
        version.copy_from_slice(&bytes[1..HEADER]);
        let version = u64::from_be_bytes(version);
        match bytes[0] {
            TAG_VALUE => Some(Record {
                version,
                value: Some(bytes.slice(HEADER..)),
            }),
            TAG_TOMBSTONE if bytes.len() == HEADER => Some(Record {
                version,
                value: None,
            }),
            _ => None,
        }
    }
}

/// `key`'s record as the engine stores it; bytes no version of this server wrote are corruption.
pub fn decode_stored(key: &Key, raw: fjall::Slice) -> Result<Record, StorageError> {
    Record::decode(Bytes::from(raw)).ok_or_else(|| StorageError::Corrupt(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_tombstones_round_trip() {
        for r in [
            Record {
                version: 7,
                value: Some(Bytes::from_static(b"hello")),
            },
            Record {
                version: u64::MAX,
                value: Some(Bytes::new()),
            },
            Record {
                version: 1,
                value: None,
            },
        ] {
            assert_eq!(Record::decode(r.encode()), Some(r));
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Record::decode(Bytes::from_static(b"\x01abc")), None);
        assert_eq!(
            Record::decode(Bytes::from_static(b"\x09\0\0\0\0\0\0\0\x01")),
            None
        );
        assert_eq!(
            Record::decode(Bytes::from_static(b"\x02\0\0\0\0\0\0\0\x01x")),
            None
        );
    }
}
