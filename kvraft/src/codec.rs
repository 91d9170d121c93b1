//! The binary codec of [`Command`]: what a log entry's payload holds on disk and on the wire.
//!
//! JSON would write a 1 MiB value as a 3 to 4 MiB array of numbers, so commands are framed by
//! hand: a format byte, a tag, then fixed-width big-endian fields and length-prefixed bytes.
//! Import records reuse `kvproto::bulk`'s framing. serde sees a command as one byte string in
//! this codec (openraft's `serde` feature needs the impls).
//!
//! The codec only grows: a log written by an earlier build must still replay. A command that
//! gained a field gets a new tag for the layout with it, and the old tag keeps its meaning
//! (an import or cleanup under the old tags is [`FenceCheck::OnLeaderOnly`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kvproto::bulk::BulkCodec;
use kvproto::wire::ImportMode;
use kvproto::{Fence, FencedPhase, Key, MigrationPhase, Topology};
use thiserror::Error;

use crate::command::{Command, FenceCheck, Precondition, Routed};

/// The first byte of every encoded command; a new layout gets a new value.
const FORMAT: u8 = 1;
/// The largest value a decoded command may hold: a replicated server refuses larger values
/// (413) whatever its `--max-value-bytes`, so its log always decodes.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// The largest import batch one command may hold: room for one record at [`MAX_VALUE_BYTES`]
/// beside the batch's usual ≈ 1 MiB.
pub const MAX_IMPORT_ENTRY_BYTES: usize = 2 * MAX_VALUE_BYTES;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_SET_TOPOLOGY: u8 = 3;
const TAG_IMPORT: u8 = 4;
const TAG_CLEANUP: u8 = 5;
/// An import with its fence judged at apply.
const TAG_IMPORT_FENCED: u8 = 6;
/// A cleanup with its fence judged at apply.
const TAG_CLEANUP_FENCED: u8 = 7;
/// A put judged against the previous owner's version.
const TAG_PUT_REMOTE: u8 = 8;
/// A delete judged against the previous owner's version.
const TAG_DELETE_REMOTE: u8 = 9;

/// Why bytes are not a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("command format {0} is not known to this build")]
    Format(u8),
    #[error("unknown command tag {0}")]
    Tag(u8),
    #[error("command is truncated")]
    Truncated,
    #[error("{0} bytes left after the command")]
    Trailing(usize),
    #[error("bad key in command: {0}")]
    Key(String),
    #[error("value of {0} bytes is over the limit")]
    ValueTooLarge(usize),
    #[error("bad {what} byte {value}")]
    Enum { what: &'static str, value: u8 },
    #[error("bad topology in command: {0}")]
    Topology(String),
    #[error("bad import records in command: {0}")]
    Records(String),
}

impl Command {
    /// The command in the binary codec.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(FORMAT);
        match self {
            Command::Put {
                key,
                value,
                precondition,
                at_micros,
                routed,
                remote,
            } => {
                // Without a remote version, the layout of before (older copies read it).
                b.put_u8(if remote.is_some() {
                    TAG_PUT_REMOTE
                } else {
                    TAG_PUT
                });
                put_key(&mut b, key);
                put_precondition(&mut b, *precondition);
                b.put_u64(*at_micros);
                put_routed(&mut b, *routed);
                if let Some(v) = remote {
                    b.put_u64(*v);
                }
                put_bytes(&mut b, value);
            }
            Command::Delete {
                key,
                precondition,
                at_micros,
                routed,
                remote,
            } => {
                b.put_u8(if remote.is_some() {
                    TAG_DELETE_REMOTE
                } else {
                    TAG_DELETE
                });
                put_key(&mut b, key);
                put_precondition(&mut b, *precondition);
                b.put_u64(*at_micros);
                put_routed(&mut b, *routed);
                if let Some(v) = remote {
                    b.put_u64(*v);
                }
            }
            Command::SetTopology(t) => {
                b.put_u8(TAG_SET_TOPOLOGY);
                // A Topology always serializes (plain fields, string keys).
                let json = serde_json::to_vec(t).unwrap_or_default();
                put_bytes(&mut b, &json);
            }
            Command::Import {
                mode,
                records,
                fence,
            } => {
                match fence {
                    FenceCheck::OnLeaderOnly => b.put_u8(TAG_IMPORT),
                    FenceCheck::AtApply(fence) => {
                        b.put_u8(TAG_IMPORT_FENCED);
                        put_fence(&mut b, *fence);
                    }
                }
                b.put_u8(match mode {
                    ImportMode::Overwrite => 0,
                    ImportMode::IfAbsent => 1,
                });
                put_bytes(&mut b, &BulkCodec::encode_all(records));
            }
            Command::Cleanup {
                fence: FenceCheck::OnLeaderOnly,
            } => b.put_u8(TAG_CLEANUP),
            Command::Cleanup {
                fence: FenceCheck::AtApply(fence),
            } => {
                b.put_u8(TAG_CLEANUP_FENCED);
                put_fence(&mut b, *fence);
            }
        }
        b.freeze()
    }

    /// Decodes a whole command; values are views into `bytes` (no copy).
    pub fn decode(bytes: &Bytes) -> Result<Command, CodecError> {
        let mut r = bytes.clone();
        let format = get_u8(&mut r)?;
        if format != FORMAT {
            return Err(CodecError::Format(format));
        }
        let cmd = match get_u8(&mut r)? {
            tag @ (TAG_PUT | TAG_PUT_REMOTE) => {
                let key = get_key(&mut r)?;
                let precondition = get_precondition(&mut r)?;
                let at_micros = get_u64(&mut r)?;
                let routed = get_routed(&mut r)?;
                let remote = get_remote(&mut r, tag == TAG_PUT_REMOTE)?;
                let value = get_bytes(&mut r)?;
                Command::Put {
                    key,
                    value,
                    precondition,
                    at_micros,
                    routed,
                    remote,
                }
            }
            tag @ (TAG_DELETE | TAG_DELETE_REMOTE) => Command::Delete {
                key: get_key(&mut r)?,
                precondition: get_precondition(&mut r)?,
                at_micros: get_u64(&mut r)?,
                routed: get_routed(&mut r)?,
                remote: get_remote(&mut r, tag == TAG_DELETE_REMOTE)?,
            },
            TAG_SET_TOPOLOGY => {
                let json = get_bytes(&mut r)?;
                let t: Topology = serde_json::from_slice(&json)
                    .map_err(|e| CodecError::Topology(e.to_string()))?;
                Command::SetTopology(t)
            }
            TAG_IMPORT => get_import(&mut r, FenceCheck::OnLeaderOnly)?,
            TAG_IMPORT_FENCED => {
                let fence = FenceCheck::AtApply(get_fence(&mut r)?);
                get_import(&mut r, fence)?
            }
            TAG_CLEANUP => Command::Cleanup {
                fence: FenceCheck::OnLeaderOnly,
            },
            TAG_CLEANUP_FENCED => Command::Cleanup {
                fence: FenceCheck::AtApply(get_fence(&mut r)?),
            },
            tag => return Err(CodecError::Tag(tag)),
        };
        if r.has_remaining() {
            return Err(CodecError::Trailing(r.remaining()));
        }
        Ok(cmd)
    }
}

fn put_key(b: &mut BytesMut, key: &Key) {
    // Keys are at most 250 bytes (`kvproto::key::MAX_KEY_BYTES`).
    let k = key.as_bytes();
    b.put_u16(u16::try_from(k.len()).unwrap_or(u16::MAX));
    b.put_slice(k);
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    // Entries are bounded far below 4 GiB (8 MiB per import entry, 1 MiB values).
    b.put_u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
    b.put_slice(v);
}

fn put_precondition(b: &mut BytesMut, p: Precondition) {
    match p {
        Precondition::None => b.put_u8(0),
        Precondition::IfAbsent => b.put_u8(1),
        Precondition::IfVersion(v) => {
            b.put_u8(2);
            b.put_u64(v);
        }
    }
}

fn put_routed(b: &mut BytesMut, r: Routed) {
    b.put_u64(r.epoch);
    b.put_u8(match r.phase {
        None => 0,
        Some(MigrationPhase::Handoff) => 1,
        Some(MigrationPhase::Copy) => 2,
    });
}

fn put_fence(b: &mut BytesMut, fence: Option<Fence>) {
    match fence {
        None => b.put_u8(0),
        Some(f) => {
            b.put_u8(1);
            b.put_u64(f.epoch);
            b.put_u8(match f.phase {
                FencedPhase::Copy => 1,
                FencedPhase::Stable => 2,
            });
        }
    }
}

fn need(r: &Bytes, n: usize) -> Result<(), CodecError> {
    if r.remaining() < n {
        return Err(CodecError::Truncated);
    }
    Ok(())
}

fn get_u8(r: &mut Bytes) -> Result<u8, CodecError> {
    need(r, 1)?;
    Ok(r.get_u8())
}

fn get_u64(r: &mut Bytes) -> Result<u64, CodecError> {
    need(r, 8)?;
    Ok(r.get_u64())
}

fn get_key(r: &mut Bytes) -> Result<Key, CodecError> {
    need(r, 2)?;
    let len = usize::from(r.get_u16());
    need(r, len)?;
    let raw = r.split_to(len);
    Key::from_bytes(&raw).map_err(|e| CodecError::Key(e.to_string()))
}

fn get_bytes(r: &mut Bytes) -> Result<Bytes, CodecError> {
    get_bytes_within(r, MAX_VALUE_BYTES)
}

fn get_bytes_within(r: &mut Bytes, limit: usize) -> Result<Bytes, CodecError> {
    need(r, 4)?;
    let len = r.get_u32() as usize;
    if len > limit {
        return Err(CodecError::ValueTooLarge(len));
    }
    need(r, len)?;
    Ok(r.split_to(len))
}

fn get_precondition(r: &mut Bytes) -> Result<Precondition, CodecError> {
    match get_u8(r)? {
        0 => Ok(Precondition::None),
        1 => Ok(Precondition::IfAbsent),
        2 => Ok(Precondition::IfVersion(get_u64(r)?)),
        value => Err(CodecError::Enum {
            what: "precondition",
            value,
        }),
    }
}

/// The remote version, when the tag says the layout has one.
fn get_remote(r: &mut Bytes, present: bool) -> Result<Option<u64>, CodecError> {
    present.then(|| get_u64(r)).transpose()
}

fn get_fence(r: &mut Bytes) -> Result<Option<Fence>, CodecError> {
    match get_u8(r)? {
        0 => Ok(None),
        1 => {
            let epoch = get_u64(r)?;
            let phase = match get_u8(r)? {
                1 => FencedPhase::Copy,
                2 => FencedPhase::Stable,
                value => {
                    return Err(CodecError::Enum {
                        what: "fenced phase",
                        value,
                    });
                }
            };
            Ok(Some(Fence { epoch, phase }))
        }
        value => Err(CodecError::Enum {
            what: "fence",
            value,
        }),
    }
}

/// An import's mode and records, after its tag (and fence).
fn get_import(r: &mut Bytes, fence: FenceCheck) -> Result<Command, CodecError> {
    let mode = match get_u8(r)? {
        0 => ImportMode::Overwrite,
        1 => ImportMode::IfAbsent,
        value => {
            return Err(CodecError::Enum {
                what: "import mode",
                value,
            });
        }
    };
    let stream = get_bytes_within(r, MAX_IMPORT_ENTRY_BYTES)?;
    let records = BulkCodec::decode_bytes(&stream, MAX_VALUE_BYTES)
        .map_err(|e| CodecError::Records(e.to_string()))?;
    Ok(Command::Import {
        mode,
        records,
        fence,
    })
}

fn get_routed(r: &mut Bytes) -> Result<Routed, CodecError> {
    let epoch = get_u64(r)?;
    let phase = match get_u8(r)? {
        0 => None,
        1 => Some(MigrationPhase::Handoff),
        2 => Some(MigrationPhase::Copy),
        value => {
            return Err(CodecError::Enum {
                what: "phase",
                value,
            });
        }
    };
    Ok(Routed { epoch, phase })
}

impl serde::Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a command in the kvraft binary codec")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Command, E> {
                Command::decode(&Bytes::copy_from_slice(v)).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Command, A::Error> {
                // Self-describing formats without a byte type (JSON) write bytes as a sequence.
                let mut buf = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    buf.push(b);
                }
                Command::decode(&Bytes::from(buf)).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_bytes(V)
    }
}
