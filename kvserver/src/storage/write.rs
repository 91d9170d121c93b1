//! What a single write does to its key, decided from the key's current record: the
//! precondition check and the record (or removal) that results. Pure functions, so the direct
//! write path (`mod.rs`) and the replicated one (`raft_target.rs`) apply the same rules.
//!
//! The types are kvraft's (`Precondition`, `WriteOutcome`, `DeleteMode`): a replicated write
//! carries them in its log entry, and the direct path answers with them too.

use bytes::Bytes;
pub use kvraft::{DeleteMode, Precondition, WriteOutcome};

use super::record::Record;

/// `Some(failure)` if `pre` does not hold for a key whose live version is `live`.
pub fn check(pre: Precondition, live: Option<u64>) -> Option<WriteOutcome> {
    let holds = match pre {
        Precondition::None => true,
        Precondition::IfAbsent => live.is_none(),
        Precondition::IfVersion(v) => live == Some(v),
    };
    (!holds).then_some(WriteOutcome::PreconditionFailed(live))
}

/// The version of the key's live value: local if anything is stored here (a tombstone means
/// none), else what the previous owner holds.
pub fn live_version(local: Option<&Record>, remote: Option<u64>) -> Option<u64> {
    match local {
        Some(r) if r.is_tombstone() => None,
        Some(r) => Some(r.version),
        None => remote,
    }
}

/// The record a put (`value`) or a tombstoning delete (`None`) stores, or the answer that
/// stores nothing. `version` is asked only when something is stored (the direct path's clock
/// moves only then).
pub fn record_to_store(
    current: Option<&Record>,
    value: Option<Bytes>,
    pre: Precondition,
    remote: Option<u64>,
    version: impl FnOnce() -> u64,
) -> Result<Record, WriteOutcome> {
    let live = live_version(current, remote);
    if let Some(fail) = check(pre, live) {
        return Err(fail);
    }
    if value.is_none() && live.is_none() {
        return Err(WriteOutcome::NotFound);
    }
    Ok(Record {
        version: version(),
        value,
    })
}

/// The version a removing delete takes away (the answer's ETag), or the answer that removes
/// nothing.
pub fn version_to_remove(current: Option<&Record>, pre: Precondition) -> Result<u64, WriteOutcome> {
    let live = live_version(current, None);
    if let Some(fail) = check(pre, live) {
        return Err(fail);
    }
    live.ok_or(WriteOutcome::NotFound)
}
