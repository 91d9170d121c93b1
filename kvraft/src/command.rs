//! What a replicated shard's log carries and what applying an entry answers: the commands,
//! their preconditions and routing stamp, and the outcomes (docs/replication.md section 4).
//!
//! Everything here is decided at apply, on every copy alike: versions, precondition checks,
//! tombstones and the misdirection fence depend only on the entry and the applied state.

use bytes::Bytes;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};
use kvproto::{Fence, Key, MigrationPhase, Topology};
use serde::{Deserialize, Serialize};

/// What a conditional write expects of the key's current state (evaluated at apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Precondition {
    #[default]
    None,
    /// `If-None-Match: *`: only if no live value exists.
    IfAbsent,
    /// `If-Match: "<v>"`: only if the live value has this version.
    IfVersion(u64),
}

/// How a delete is recorded; decided at apply from the applied topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Remove the key outright (stable topology).
    Remove,
    /// Keep a tombstone (a migration is in flight), so read-through and if-absent imports do not
    /// resurrect the key.
    Tombstone,
}

/// What the apply interface answers for one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written (or deleted) with this version.
    Written(u64),
    /// A delete of a key with no live value.
    NotFound,
    /// The precondition did not hold; the key's live version, if any.
    PreconditionFailed(Option<u64>),
}

/// The topology a leader routed a write under: `(epoch, phase)`, `None` = stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Routed {
    pub epoch: u64,
    pub phase: Option<MigrationPhase>,
}

impl Routed {
    /// The stamp of `topology`.
    pub fn of(topology: &Topology) -> Self {
        Routed {
            epoch: topology.epoch,
            phase: topology.migration.map(|m| m.phase),
        }
    }
}

/// How an import or a cleanup is fenced at apply (`kvproto::Fence`: the move step the
/// operator sent it for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceCheck {
    /// Judged on every copy against the applied topology (`Fence::admits`); `None`: the
    /// request carried no fence, which only a copy with no topology takes.
    AtApply(Option<Fence>),
    /// An entry written by a build that judged the fence on its leader only (before the
    /// command carried it): applied as that build applied it, so a replay decides alike.
    OnLeaderOnly,
}

/// One entry of a shard's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Put {
        key: Key,
        value: Bytes,
        precondition: Precondition,
        /// The proposer's wall clock: the version is `max(version_floor + 1, at_micros)`.
        at_micros: u64,
        routed: Routed,
        /// During a migration, the live version the key's previous owner holds (read through
        /// by the proposer, which found nothing stored here). Where this copy holds nothing
        /// for the key, the precondition is judged against it and the version passes it.
        remote: Option<u64>,
    },
    Delete {
        key: Key,
        precondition: Precondition,
        at_micros: u64,
        routed: Routed,
        /// As for a put: a key only the previous owner holds is deleted (a tombstone here).
        remote: Option<u64>,
    },
    /// A topology push; apply checks `Topology::check_transition` against the applied one.
    SetTopology(Topology),
    /// A bulk import batch (at most 1000 records, 8 MiB).
    Import {
        mode: ImportMode,
        records: Vec<BulkRecord>,
        fence: FenceCheck,
    },
    /// Drop the keys this shard does not own under the applied topology.
    Cleanup { fence: FenceCheck },
}

/// What applying an entry answered; a leader returns it to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Written {
        version: u64,
    },
    Deleted {
        version: u64,
    },
    PreconditionFailed {
        current: Option<u64>,
    },
    NotFound,
    /// The write was routed under another topology and the applied one does not serve the key
    /// here: nothing changed (503 `misdirected`).
    Misdirected,
    /// The topology was refused (409 `topology_conflict`); the message says why.
    TopologyConflict {
        message: String,
    },
    /// An import or cleanup fenced at another move step than the applied topology's
    /// (409 `fenced`); the message says why. Nothing changed.
    Fenced {
        message: String,
    },
    /// The topology was accepted (or was already the applied one).
    TopologySet,
    Imported(ImportReport),
    Cleaned(CleanupReport),
    /// A blank or membership entry.
    Noop,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Put { key, value, .. } => {
                write!(f, "put {} ({} bytes)", key.as_str(), value.len())
            }
            Command::Delete { key, .. } => write!(f, "delete {}", key.as_str()),
            Command::SetTopology(t) => {
                write!(f, "set topology epoch {} ({})", t.epoch, t.phase_name())
            }
            Command::Import { records, .. } => write!(f, "import {} records", records.len()),
            Command::Cleanup { .. } => write!(f, "cleanup"),
        }
    }
}
