//! The copy's Raft identity: a random non-zero node ID born with the volume, stored (synced)
//! with the group it belongs to. A new or wiped volume gets a new ID, so an ID is never reused
//! after its log is lost; a volume of another group is refused (docs/replication.md section 3).
//! A copy that reported an ID before its group existed (kvserver's copy 0) hands it in to be
//! adopted, so the ID the operator learned stays the copy's.

use kvproto::raft::GroupId;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::meta::{Meta, name};

/// Who this copy is in which group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    pub group: GroupId,
}

/// The stored form (the group as its wire string).
#[derive(Serialize, Deserialize)]
struct Stored {
    node_id: u64,
    group: String,
}

impl Identity {
    /// The volume's identity, created on first use for `group` with the node ID `adopt` when
    /// given (else a random one). A stored identity wins over `adopt`.
    pub(crate) fn load_or_create(
        meta: &Meta,
        group: &GroupId,
        adopt: Option<u64>,
    ) -> Result<Identity, StorageError> {
        if let Some(stored) = meta.get::<Stored>(name::IDENTITY)? {
            if stored.group != group.to_string() {
                return Err(StorageError::GroupMismatch {
                    found: stored.group,
                    expected: group.to_string(),
                });
            }
            if adopt.is_some_and(|id| id != stored.node_id) {
                tracing::warn!(
                    stored = stored.node_id,
                    ?adopt,
                    "the volume already has a raft identity; keeping it"
                );
            }
            return Ok(Identity {
                node_id: stored.node_id,
                group: group.clone(),
            });
        }
        match adopt {
            Some(node_id) if node_id != 0 => Self::store(meta, group, node_id),
            _ => Self::create(meta, group),
        }
    }

    /// A fresh identity for `group`, replacing any stored one (a copy that no longer trusts its
    /// log rejoins as a new node).
    pub(crate) fn create(meta: &Meta, group: &GroupId) -> Result<Identity, StorageError> {
        Self::store(meta, group, random_node_id()?)
    }

    fn store(meta: &Meta, group: &GroupId, node_id: u64) -> Result<Identity, StorageError> {
        meta.put_synced(
            name::IDENTITY,
            &Stored {
                node_id,
                group: group.to_string(),
            },
        )?;
        tracing::info!(node_id, group = %group, "created a raft identity");
        Ok(Identity {
            node_id,
            group: group.clone(),
        })
    }
}

fn random_node_id() -> Result<u64, StorageError> {
    loop {
        let id = OsRng
            .try_next_u64()
            .map_err(|e| StorageError::Random(e.to_string()))?;
        if id != 0 {
            return Ok(id);
        }
    }
}
