//! What a single write expects of its key and what it did: preconditions, outcomes, delete
//! modes, and the precondition check itself.

use super::record::Record;

/// What a conditional write expects of the key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    None,
    /// `If-None-Match: *`: only if no live value exists.
    IfAbsent,
    /// `If-Match: "<v>"`: only if the live value has this version.
    IfVersion(u64),
}

/// The result of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written with this version.
    Written(u64),
    /// A delete of a key with no live value.
    NotFound,
    /// The precondition did not hold; the key's live version, if any.
    PreconditionFailed(Option<u64>),
}

/// How a delete is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Remove the key outright (stable topology).
    Remove,
    /// Keep a tombstone, so read-through and if-absent imports do not resurrect the key.
    Tombstone,
}

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
