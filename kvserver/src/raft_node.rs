//! This server's place in its shard's Raft group (docs/replication.md section 3), before a
//! group runs: the group it belongs to by its flags, its node ID, and the group's storage
//! (`kvraft::Storage`) opened on the store's own database.
//!
//! Nothing is created on a volume that never asked: a server with no `--raft-store-uid` and
//! no `raft_meta` keyspace runs exactly as before. The storage is opened at start only when the
//! flags name a group and the volume already holds its raft state (so the boot guard judges
//! the previous run before anything else); otherwise at the first status call. Copy 0 has no
//! group until it is formed, so it reports the ID of `storage/node_id.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use kvproto::raft::{GroupId, RaftStatus, ServerState};
use kvraft::{Durability, Storage, StorageConfig};
use parking_lot::Mutex;
use thiserror::Error;

use crate::config::{Config, SyncMode};
use crate::storage::{StorageError, Store};

/// kvraft's keyspace of the group's small facts: it exists once a group's storage was opened.
const RAFT_META_KEYSPACE: &str = "raft_meta";

/// Why the group's storage or the node's identity is unavailable.
#[derive(Debug, Error)]
pub enum RaftNodeError {
    #[error("this volume belongs to another raft group: {0}")]
    GroupMismatch(String),
    #[error("raft storage: {0}")]
    Raft(kvraft::StorageError),
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error("--sync never cannot hold a raft log")]
    SyncNever,
    #[error("raft task: {0}")]
    Task(String),
}

impl From<kvraft::StorageError> for RaftNodeError {
    fn from(e: kvraft::StorageError) -> Self {
        match e {
            kvraft::StorageError::GroupMismatch { .. } => {
                RaftNodeError::GroupMismatch(e.to_string())
            }
            other => RaftNodeError::Raft(other),
        }
    }
}

/// The way a write takes (`write_path.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Straight into this server's store (no group runs here).
    Local,
    // Phase 4b: `Group(..)`, the running group, once this copy is in one.
}

/// The node, shared by the handlers.
pub struct RaftNode {
    store: Arc<Store>,
    /// From the flags (copies 1..); `None` on copy 0 until its group is formed.
    group: Option<GroupId>,
    /// `--raft-advertise-url`: where the group reaches this copy.
    advertise_url: Option<String>,
    /// `--sync` as the log's durability; `None` under `--sync never` (no log allowed).
    durability: Option<Durability>,
    /// Where the kernel's boot id is read (the boot guard).
    boot_id_path: PathBuf,
    /// The group's storage once opened; also serializes the first open and ID creation.
    storage: Mutex<Option<Storage<Store>>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("group", &self.group)
            .field("advertise_url", &self.advertise_url)
            .field("open", &self.storage.lock().is_some())
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// The node of `config`; opens the group's storage at once if the volume already holds
    /// it for the group the flags name. Blocking.
    pub fn new(config: &Config, store: Arc<Store>) -> Result<RaftNode, RaftNodeError> {
        let node = RaftNode {
            store,
            group: config.raft_group(),
            advertise_url: config.raft_advertise_url.clone(),
            durability: match config.sync {
                SyncMode::Always => Some(Durability::Always),
                SyncMode::Batch => Some(Durability::Batch),
                SyncMode::Never => None,
            },
            boot_id_path: PathBuf::from(kvraft::BOOT_ID_PATH),
            storage: Mutex::new(None),
        };
        if node.group.is_some() && node.store.database()?.keyspace_exists(RAFT_META_KEYSPACE) {
            node.with_storage(|_| ())?;
        }
        Ok(node)
    }

    /// The way a write takes now.
    #[inline]
    pub fn via(&self) -> Via {
        Via::Local
    }

    /// The group by the flags (copies 1..), if any.
    pub fn group(&self) -> Option<&GroupId> {
        self.group.as_ref()
    }

    pub fn advertise_url(&self) -> Option<&str> {
        self.advertise_url.as_deref()
    }

    /// Runs `f` on the group's storage, opening it first if needed. Blocking. Only with a
    /// group (the caller checks).
    fn with_storage<T>(&self, f: impl FnOnce(&Storage<Store>) -> T) -> Result<T, RaftNodeError> {
        let mut slot = self.storage.lock();
        if slot.is_none() {
            let group = self
                .group
                .clone()
                .ok_or_else(|| RaftNodeError::Task("no group to open the storage of".to_owned()))?;
            let durability = self.durability.ok_or(RaftNodeError::SyncNever)?;
            let cfg = StorageConfig {
                group,
                durability,
                boot_id: kvraft::read_boot_id(&self.boot_id_path)?,
            };
            let storage = Storage::open(&self.store.database()?, &cfg, self.store.clone())?;
            tracing::info!(
                node_id = storage.identity().node_id,
                group = %storage.identity().group,
                boot = ?storage.boot(),
                "raft storage opened"
            );
            *slot = Some(storage);
        }
        match slot.as_ref() {
            Some(storage) => Ok(f(storage)),
            None => Err(RaftNodeError::Task("raft storage vanished".to_owned())),
        }
    }

    /// What this copy says about its group (`GET /v1/admin/raft/status`). Not yet a member of
    /// a running group: state `learner`, no members. Creates the node ID on first call.
    /// Blocking.
    pub fn status(&self) -> Result<RaftStatus, RaftNodeError> {
        let (node_id, applied) = match &self.group {
            Some(_) => {
                self.with_storage(|s| (s.identity().node_id, s.state_machine().applied_index()))?
            }
            None => {
                // Serialized with every other first use of the volume's raft state.
                let _one = self.storage.lock();
                (self.store.node_id_before_group()?, None)
            }
        };
        Ok(RaftStatus {
            group: self.group.clone(),
            node_id,
            state: ServerState::Learner,
            term: 0,
            leader: None,
            last_log_index: None,
            committed: None,
            applied,
            members: Vec::new(),
        })
    }

    /// A clean shutdown of the group's storage, if it was opened: synced, then marked clean
    /// for the boot guard. Blocking.
    pub fn close(&self) -> Result<(), RaftNodeError> {
        match self.storage.lock().take() {
            Some(storage) => Ok(storage.close_clean()?),
            None => Ok(()),
        }
    }
}
