//! How a log entry is stored in `raft_log`: the key is its index (u64 big-endian, so the
//! keyspace's order is the log's), the value a format byte, the log id's term and leader node,
//! and the payload: blank, a [`Command`](crate::Command) in its binary codec, or a membership
//! as JSON (rare and small).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::EntryPayload;

use crate::command::Command;
use crate::error::StorageError;
use crate::types::{Entry, LeaderId, LogId, Membership};

const FORMAT: u8 = 1;
const BLANK: u8 = 0;
const NORMAL: u8 = 1;
const MEMBERSHIP: u8 = 2;

/// The `raft_log` key of `index`.
pub(crate) fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index a `raft_log` key names.
pub(crate) fn index_of(key: &[u8]) -> Result<u64, StorageError> {
    let raw: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::corrupt("log key", format!("{} bytes", key.len())))?;
    Ok(u64::from_be_bytes(raw))
}

pub(crate) fn encode(entry: &Entry) -> Result<Vec<u8>, StorageError> {
    let mut b = BytesMut::with_capacity(32);
    b.put_u8(FORMAT);
    b.put_u64(entry.log_id.leader_id.term);
    b.put_u64(entry.log_id.leader_id.node_id);
    match &entry.payload {
        EntryPayload::Blank => b.put_u8(BLANK),
        EntryPayload::Normal(cmd) => {
            b.put_u8(NORMAL);
            let cmd: &Command = cmd;
            b.put_slice(&cmd.encode());
        }
        EntryPayload::Membership(m) => {
            b.put_u8(MEMBERSHIP);
            let json =
                serde_json::to_vec(&m).map_err(|e| StorageError::corrupt("membership entry", e))?;
            b.put_slice(&json);
        }
    }
    Ok(b.to_vec())
}

pub(crate) fn decode(index: u64, raw: &[u8]) -> Result<Entry, StorageError> {
    let bad = |detail: &str| StorageError::corrupt("log entry", format!("index {index}: {detail}"));
    let mut r = Bytes::copy_from_slice(raw);
    if r.remaining() < 1 + 8 + 8 + 1 {
        return Err(bad("truncated"));
    }
    let format = r.get_u8();
    if format != FORMAT {
        return Err(bad(&format!("format {format}")));
    }
    let term = r.get_u64();
    let node_id = r.get_u64();
    let payload = match r.get_u8() {
        BLANK => EntryPayload::Blank,
        NORMAL => EntryPayload::Normal(Command::decode(&r).map_err(|e| bad(&e.to_string()))?),
        MEMBERSHIP => {
            let m: Membership = serde_json::from_slice(&r).map_err(|e| bad(&e.to_string()))?;
            EntryPayload::Membership(m)
        }
        kind => return Err(bad(&format!("payload kind {kind}"))),
    };
    Ok(Entry {
        log_id: LogId {
            leader_id: LeaderId { term, node_id },
            index,
        },
        payload,
    })
}
