//! Snapshots of a persistent state machine: not a copy, a point-in-time view.
//!
//! Building one takes `Database::snapshot()` (an MVCC view over every keyspace) with the
//! applied id, membership, version floor and topology of that moment; the records are read
//! from the view only when sent (`network::snapshot_stream`). A received snapshot is written
//! into a fresh records generation as it arrives ([`Source::Staged`]), so installing it is a
//! flip. A held view pins old
//! versions against compaction, so views are not kept: `get_current_snapshot` takes a fresh one
//! at the applied state once any snapshot exists (never newer than `applied`, so openraft's
//! startup never re-installs over the persistent state).

use std::io;

use fjall::{Database, Keyspace, Readable};
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

/// A snapshot's data: where its records are, and the trailer.
pub struct SnapshotData {
    pub(crate) source: Source,
    pub(crate) trailer: Trailer,
}

/// Where a snapshot's records are.
pub(crate) enum Source {
    /// A point-in-time view of the serving records keyspace (built here, or to be sent).
    View {
        view: fjall::Snapshot,
        records: Keyspace,
    },
    /// Records received from a leader, already written into a fresh generation that the
    /// install flips to (docs/replication.md section 4): nothing is copied twice.
    Staged(Staged),
}

impl SnapshotData {
    /// A view of `records` as `view` sees it.
    pub(crate) fn view(view: fjall::Snapshot, records: Keyspace, trailer: Trailer) -> Self {
        SnapshotData {
            source: Source::View { view, records },
            trailer,
        }
    }

    /// Every record, raw (key, stored bytes), in key order.
    pub(crate) fn records(&self) -> Box<dyn Iterator<Item = RawRecord> + '_> {
        let iter = match &self.source {
            Source::View { view, records } => view.iter(records),
            Source::Staged(staged) => match &staged.keyspace {
                Some(ks) => ks.iter(),
                None => return Box::new(std::iter::empty()),
            },
        };
        Box::new(iter.map(|g| g.into_inner().map_err(StorageError::from)))
    }
}

/// One record as stored: key and the target's bytes.
pub(crate) type RawRecord = Result<(fjall::Slice, fjall::Slice), StorageError>;

/// A records generation written by a snapshot receiver and not installed yet. Dropped without
/// an install (openraft refused the snapshot, the stream broke), it deletes its keyspace.
pub(crate) struct Staged {
    pub db: Database,
    pub generation: u64,
    /// `None` once the install took it.
    pub keyspace: Option<Keyspace>,
}

impl Staged {
    /// The keyspace, handed to the install (the drop then leaves it alone).
    pub fn take(&mut self) -> Option<(u64, Keyspace)> {
        self.keyspace.take().map(|ks| (self.generation, ks))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(ks) = self.keyspace.take() {
            tracing::info!(
                generation = self.generation,
                "dropping a received snapshot that was not installed"
            );
            if let Err(e) = self.db.delete_keyspace(ks) {
                // Deleted at the next open (an orphan generation).
                tracing::warn!(error = %e, "could not drop an uninstalled snapshot's records");
            }
        }
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
