//! The body of an append (docs/replication.md section 5): serde_json would write a 1 MiB value
//! as a 3 to 4 MiB array of numbers, so the request travels as one JSON frame without the
//! entries, then one binary frame per entry in the log's own entry codec (`entry_codec`, the
//! bytes `raft_log` stores):
//!
//! ```text
//! body  = u32 json_len, json {vote, prev_log_id, leader_commit, entries: count}, entry*
//! entry = u64 index, u32 len, entry_codec bytes
//! ```
//! Integers are big-endian.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry_codec;
use crate::types::{Entry, LogId, ShardRaft, Vote};

type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<ShardRaft>;

/// The most entries one body may declare (openraft sends `max_payload_entries`, 64).
const MAX_ENTRIES: u32 = 4096;

/// Why bytes are not an append body.
#[derive(Debug, Error)]
pub(crate) enum AppendCodecError {
    #[error("append body is truncated")]
    Truncated,
    #[error("append frame is not valid: {0}")]
    Frame(String),
    #[error("append declares {0} entries, more than {MAX_ENTRIES}")]
    TooManyEntries(u32),
    #[error("entry {index}: {detail}")]
    Entry { index: u64, detail: String },
    #[error("{0} bytes after the last entry")]
    Trailing(usize),
}

#[derive(Serialize, Deserialize)]
struct Frame {
    vote: Vote,
    prev_log_id: Option<LogId>,
    leader_commit: Option<LogId>,
    entries: u32,
}

pub(crate) fn encode(req: &AppendEntriesRequest) -> Result<Bytes, AppendCodecError> {
    let frame = Frame {
        vote: req.vote,
        prev_log_id: req.prev_log_id,
        leader_commit: req.leader_commit,
        entries: u32::try_from(req.entries.len())
            .map_err(|_| AppendCodecError::TooManyEntries(u32::MAX))?,
    };
    let json = serde_json::to_vec(&frame).map_err(|e| AppendCodecError::Frame(e.to_string()))?;
    let mut out = BytesMut::with_capacity(4 + json.len());
    put_len(&mut out, json.len())?;
    out.put_slice(&json);
    for entry in &req.entries {
        let raw = entry_codec::encode(entry).map_err(|e| AppendCodecError::Entry {
            index: entry.log_id.index,
            detail: e.to_string(),
        })?;
        out.reserve(8 + 4 + raw.len());
        out.put_u64(entry.log_id.index);
        put_len(&mut out, raw.len())?;
        out.put_slice(&raw);
    }
    Ok(out.freeze())
}

pub(crate) fn decode(mut body: Bytes) -> Result<AppendEntriesRequest, AppendCodecError> {
    let json = take_frame(&mut body)?;
    let frame: Frame =
        serde_json::from_slice(&json).map_err(|e| AppendCodecError::Frame(e.to_string()))?;
    if frame.entries > MAX_ENTRIES {
        return Err(AppendCodecError::TooManyEntries(frame.entries));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(frame.entries as usize);
    for _ in 0..frame.entries {
        if body.remaining() < 8 {
            return Err(AppendCodecError::Truncated);
        }
        let index = body.get_u64();
        let raw = take_frame(&mut body)?;
        let entry = entry_codec::decode(index, &raw).map_err(|e| AppendCodecError::Entry {
            index,
            detail: e.to_string(),
        })?;
        entries.push(entry);
    }
    if body.has_remaining() {
        return Err(AppendCodecError::Trailing(body.remaining()));
    }
    Ok(AppendEntriesRequest {
        vote: frame.vote,
        prev_log_id: frame.prev_log_id,
        entries,
        leader_commit: frame.leader_commit,
    })
}

fn put_len(out: &mut BytesMut, len: usize) -> Result<(), AppendCodecError> {
    let len = u32::try_from(len)
        .map_err(|_| AppendCodecError::Frame(format!("a frame of {len} bytes")))?;
    out.put_u32(len);
    Ok(())
}

/// A `u32`-length-prefixed frame off the front of `body` (a view, no copy).
fn take_frame(body: &mut Bytes) -> Result<Bytes, AppendCodecError> {
    if body.remaining() < 4 {
        return Err(AppendCodecError::Truncated);
    }
    let len = body.get_u32() as usize;
    if body.remaining() < len {
        return Err(AppendCodecError::Truncated);
    }
    Ok(body.split_to(len))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::EntryPayload;

    use super::*;
    use crate::command::{Command, Precondition, Routed};
    use crate::types::{LeaderId, Membership};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId {
            leader_id: LeaderId { term, node_id: 7 },
            index,
        }
    }

    fn request() -> AppendEntriesRequest {
        let big = Bytes::from(vec![0xA5; 1 << 20]);
        let membership = Membership::new(
            vec![[7u64].into_iter().collect()],
            std::collections::BTreeMap::from([(7u64, kvproto::raft::Member::default())]),
        )
        .expect("a valid membership");
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 7),
            prev_log_id: Some(log_id(2, 9)),
            leader_commit: Some(log_id(2, 8)),
            entries: vec![
                Entry {
                    log_id: log_id(3, 10),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: log_id(3, 11),
                    payload: EntryPayload::Normal(Command::Put {
                        key: kvproto::Key::new("k").expect("key"),
                        value: big,
                        precondition: Precondition::IfVersion(4),
                        at_micros: 99,
                        routed: Routed::default(),
                        remote: None,
                    }),
                },
                Entry {
                    log_id: log_id(3, 12),
                    payload: EntryPayload::Membership(membership),
                },
            ],
        }
    }

    #[test]
    fn a_request_round_trips_and_a_value_travels_as_its_bytes() {
        let req = request();
        let body = encode(&req).expect("encodes");
        // One 1 MiB value costs 1 MiB and some framing, not the 3-4 MiB of a JSON array.
        assert!(body.len() < (1 << 20) + 4096, "{} bytes", body.len());
        let back = decode(body).expect("decodes");
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.leader_commit, req.leader_commit);
        assert_eq!(back.entries, req.entries);
    }

    #[test]
    fn a_heartbeat_has_no_entries() {
        let mut req = request();
        req.entries.clear();
        let back = decode(encode(&req).expect("encodes")).expect("decodes");
        assert!(back.entries.is_empty());
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let body = encode(&request()).expect("encodes");
        for cut in [0, 3, 4, 20, body.len() - 1] {
            assert!(decode(body.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(matches!(
            decode(Bytes::from(longer)),
            Err(AppendCodecError::Trailing(1))
        ));
    }
}
