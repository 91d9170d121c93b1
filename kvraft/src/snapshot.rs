//! Snapshots of a persistent state machine: not a copy, a point-in-time view.
//!
//! Building one takes `Database::snapshot()` (an MVCC view over every keyspace) with the
//! applied id, membership, version floor and topology of that moment; the records are read
//! from the view only when sent (phase 3 streams them as `kvproto::bulk`). A held view pins old
//! versions against compaction, so views are not kept: `get_current_snapshot` takes a fresh one
//! at the applied state once any snapshot exists (never newer than `applied`, so openraft's
//! startup never re-installs over the persistent state).

use std::io;

use fjall::{Keyspace, Readable};
use kvproto::Topology;
use openraft::RaftSnapshotBuilder;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::meta::{Meta, name};
use crate::types::{ShardRaft, Snapshot, SnapshotMeta};

/// What a snapshot carries besides the records (`raft_meta`'s share of the state machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Trailer {
    pub version_floor: u64,
    pub topology: Option<Topology>,
}

/// A snapshot's data: a view of the records keyspace and the trailer.
pub struct SnapshotData {
    pub(crate) view: fjall::Snapshot,
    pub(crate) records: Keyspace,
    pub(crate) trailer: Trailer,
}

impl SnapshotData {
    /// Every record in the view, raw (key, stored bytes), in key order.
    pub(crate) fn records(
        &self,
    ) -> impl Iterator<Item = Result<(fjall::Slice, fjall::Slice), StorageError>> + '_ {
        self.view
            .iter(&self.records)
            .map(|g| g.into_inner().map_err(StorageError::from))
    }
}

/// Hands out the view taken when openraft asked for a builder (in the state machine's task,
/// so it matches the meta exactly), and records that a snapshot now exists.
pub struct SnapshotBuilder {
    pub(crate) meta_store: Meta,
    pub(crate) snapshot: Option<(SnapshotMeta, SnapshotData)>,
}

impl RaftSnapshotBuilder<ShardRaft> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot<SnapshotData>, io::Error> {
        let Some((meta, data)) = self.snapshot.take() else {
            return Err(io::Error::other("snapshot builder used twice"));
        };
        let mut batch = self.meta_store.db.batch();
        self.meta_store.put(&mut batch, name::SNAPSHOT, &meta)?;
        batch.commit().map_err(StorageError::from)?;
        Ok(openraft::Snapshot {
            meta,
            snapshot: data,
        })
    }
}
