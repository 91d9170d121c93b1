//! Opening a group's storage on a database the records already live in: the boot guard, the
//! identity, the log and the state machine, in that order.

use std::sync::Arc;

use fjall::Database;
use kvproto::raft::GroupId;

use crate::apply::ApplyTarget;
use crate::boot::{self, BootVerdict};
use crate::error::StorageError;
use crate::identity::Identity;
use crate::log_store::{Durability, LogStore};
use crate::meta::Meta;
use crate::state_machine::StateMachine;

/// How to open a group's storage.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub group: GroupId,
    pub durability: Durability,
    /// The kernel boot id now ([`crate::read_boot_id`]).
    pub boot_id: String,
}

/// A group's storage, opened: what [`crate::ShardGroup::open`] hands to openraft.
pub struct Storage<T: ApplyTarget> {
    pub(crate) log: LogStore,
    pub(crate) sm: StateMachine<T>,
    meta: Meta,
    identity: Identity,
    boot: BootVerdict,
    boot_id: String,
}

impl<T: ApplyTarget> Storage<T> {
    /// Opens (or creates) the group's storage in `db`, with `target` holding the records.
    /// A volume whose log the boot guard does not trust gets a new identity: the caller must
    /// rejoin it as a new node (its old ID is retired by the operator).
    pub fn open(db: &Database, cfg: &StorageConfig, target: Arc<T>) -> Result<Self, StorageError> {
        Self::open_adopting(db, cfg, target, None)
    }

    /// [`Self::open`], a volume without an identity taking `node_id` as its own (the ID the
    /// copy reported before its group existed) instead of a random one. A stored identity is
    /// kept, and a log the boot guard does not trust still gets a fresh ID.
    pub fn open_adopting(
        db: &Database,
        cfg: &StorageConfig,
        target: Arc<T>,
        node_id: Option<u64>,
    ) -> Result<Self, StorageError> {
        let meta = Meta::open(db)?;
        let boot = boot::check_and_mark_running(&meta, &cfg.boot_id)?;
        let trusted = boot.trusts_log(cfg.durability);
        let identity = if trusted {
            Identity::load_or_create(&meta, &cfg.group, node_id)?
        } else {
            tracing::warn!(
                ?boot,
                "unclean reboot in batch mode: the log is not trusted, rejoining as a new node"
            );
            Identity::create(&meta, &cfg.group)?
        };
        let log = LogStore::open(db, cfg.durability)?;
        let sm = StateMachine::open(db, cfg.group.shard, target)?;
        if !trusted {
            log.forget(sm.applied_log_id())?;
        }
        Ok(Storage {
            log,
            sm,
            meta,
            identity,
            boot,
            boot_id: cfg.boot_id.clone(),
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// What the boot guard found at open.
    pub fn boot(&self) -> &BootVerdict {
        &self.boot
    }

    pub fn state_machine(&self) -> &StateMachine<T> {
        &self.sm
    }

    /// A clean shutdown: everything synced, then the marker that says so.
    pub fn close_clean(self) -> Result<(), StorageError> {
        boot::mark_clean(&self.meta, &self.boot_id)
    }

    /// The log and the state machine for openraft, and what marks a clean shutdown later.
    pub(crate) fn into_parts(self) -> (LogStore, StateMachine<T>, CleanShutdown) {
        let closer = CleanShutdown {
            meta: self.meta,
            boot_id: self.boot_id,
        };
        (self.log, self.sm, closer)
    }
}

/// Marks the volume cleanly shut down once openraft has stopped using the storage.
pub(crate) struct CleanShutdown {
    meta: Meta,
    boot_id: String,
}

impl CleanShutdown {
    pub fn database(&self) -> &Database {
        &self.meta.db
    }

    pub fn mark(&self) -> Result<(), StorageError> {
        boot::mark_clean(&self.meta, &self.boot_id)
    }
}
