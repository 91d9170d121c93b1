//! Fences on a move's writes: an import or a cleanup names the epoch and phase of the move step
//! it belongs to, and a server applies it only while its own topology is at that step. A request
//! from a deposed operator that arrives after the move went on (a late copy batch after Commit,
//! a cleanup during another move) changes nothing.
//!
//! On the wire: the query parameters `epoch=E&phase=copy|stable` (see docs/api.md).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::topology::{Migration, MigrationPhase, Topology};

/// The step of a move a fenced request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FencedPhase {
    /// The copy of epoch `E`: imports.
    Copy,
    /// Epoch `E` committed, no move running: cleanups.
    Stable,
}

impl FencedPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            FencedPhase::Copy => "copy",
            FencedPhase::Stable => "stable",
        }
    }
}

/// The epoch and phase a fenced request was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub epoch: u64,
    pub phase: FencedPhase,
}

/// Why a server refused a fenced request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FenceError {
    #[error("fenced request for epoch {epoch} ({phase}) refused: this server has no topology")]
    NoTopology { epoch: u64, phase: &'static str },
    #[error(
        "fenced request for epoch {epoch} ({phase}) refused: this server is at epoch {current} ({current_phase}); the move it belongs to is over or has not begun"
    )]
    Moved {
        epoch: u64,
        phase: &'static str,
        current: u64,
        current_phase: &'static str,
    },
    #[error("this server has a topology: the request must carry its move's epoch and phase")]
    Missing,
}

impl Fence {
    /// The fence of epoch `epoch`'s copy.
    pub fn copy(epoch: u64) -> Fence {
        Fence {
            epoch,
            phase: FencedPhase::Copy,
        }
    }

    /// The fence of epoch `epoch` once committed.
    pub fn stable(epoch: u64) -> Fence {
        Fence {
            epoch,
            phase: FencedPhase::Stable,
        }
    }

    /// The query string that carries the fence: `epoch=E&phase=P`.
    pub fn query(&self) -> String {
        format!("epoch={}&phase={}", self.epoch, self.phase.as_str())
    }

    /// Whether a server at `topology` may apply a request fenced by `fence`. A server without a
    /// topology (standalone, the book's mode) takes unfenced requests; one with a topology takes
    /// only requests fenced at its own epoch and phase.
    pub fn admits(fence: Option<&Fence>, topology: Option<&Topology>) -> Result<(), FenceError> {
        match (fence, topology) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(FenceError::Missing),
            (Some(f), None) => Err(FenceError::NoTopology {
                epoch: f.epoch,
                phase: f.phase.as_str(),
            }),
            (Some(f), Some(t)) if t.epoch == f.epoch && phase_of(t) == Some(f.phase) => Ok(()),
            (Some(f), Some(t)) => Err(FenceError::Moved {
                epoch: f.epoch,
                phase: f.phase.as_str(),
                current: t.epoch,
                current_phase: t.phase_name(),
            }),
        }
    }
}

/// The fenced phase a topology is in (Handoff takes no fenced request).
fn phase_of(topology: &Topology) -> Option<FencedPhase> {
    match topology.migration {
        None => Some(FencedPhase::Stable),
        Some(Migration {
            phase: MigrationPhase::Copy,
            ..
        }) => Some(FencedPhase::Copy),
        Some(Migration {
            phase: MigrationPhase::Handoff,
            ..
        }) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sharding;

    fn at(epoch: u64, phase: Option<MigrationPhase>) -> Topology {
        let mut t = Topology::stable(epoch, Sharding::Modulo, vec!["http://a".into(); 3]);
        t.migration = phase.map(|phase| Migration {
            from_shards: 2,
            phase,
        });
        t
    }

    #[test]
    fn a_fence_admits_only_its_own_epoch_and_phase() {
        let copy = at(4, Some(MigrationPhase::Copy));
        let stable = at(4, None);
        let handoff = at(4, Some(MigrationPhase::Handoff));
        assert_eq!(Fence::admits(Some(&Fence::copy(4)), Some(&copy)), Ok(()));
        assert_eq!(
            Fence::admits(Some(&Fence::stable(4)), Some(&stable)),
            Ok(())
        );
        // A late copy batch after Commit, or one from an older move.
        assert!(Fence::admits(Some(&Fence::copy(4)), Some(&stable)).is_err());
        assert!(
            Fence::admits(
                Some(&Fence::copy(3)),
                Some(&at(4, Some(MigrationPhase::Copy)))
            )
            .is_err()
        );
        // A cleanup while a move runs.
        assert!(Fence::admits(Some(&Fence::stable(4)), Some(&copy)).is_err());
        assert!(Fence::admits(Some(&Fence::stable(4)), Some(&handoff)).is_err());
        assert!(Fence::admits(Some(&Fence::copy(4)), Some(&handoff)).is_err());
    }

    #[test]
    fn only_a_server_without_a_topology_takes_unfenced_requests() {
        assert_eq!(Fence::admits(None, None), Ok(()));
        assert_eq!(
            Fence::admits(None, Some(&at(1, None))),
            Err(FenceError::Missing)
        );
        assert!(Fence::admits(Some(&Fence::stable(1)), None).is_err());
    }

    #[test]
    fn the_query_names_epoch_and_phase() {
        assert_eq!(Fence::copy(7).query(), "epoch=7&phase=copy");
        assert_eq!(Fence::stable(2).query(), "epoch=2&phase=stable");
    }
}
