//! Tests of the storage (openraft's storage suite, the codecs, apply determinism, snapshots,
//! crash points, the boot guard) and of whole groups over real sockets (`cluster/`). They
//! drive the openraft-facing types directly, so they live inside the crate.

mod boot;
mod cluster;
mod codec;
mod crash;
mod determinism;
mod fences;
mod log;
mod snapshot;
mod stream;
mod suite;
mod target;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use fjall::Database;
use kvproto::raft::GroupId;
use kvproto::{Key, Topology};
use openraft::EntryPayload;
use openraft::storage::RaftStateMachine;

use crate::command::{Command, Precondition, Routed};
use crate::log_store::Durability;
use crate::storage::{Storage, StorageConfig};
use crate::types::{Entry, LeaderId, LogId};
use target::TestTarget;

pub const BOOT: &str = "boot-a";

pub fn group() -> GroupId {
    GroupId {
        store_uid: "uid-1".to_owned(),
        shard: 0,
    }
}

/// The database as kvserver opens it (journal persisted by hand).
pub fn open_db(dir: &Path) -> Database {
    Database::builder(dir)
        .manual_journal_persist(true)
        .open()
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

pub fn config(durability: Durability, boot_id: &str) -> StorageConfig {
    StorageConfig {
        group: group(),
        durability,
        boot_id: boot_id.to_owned(),
    }
}

pub fn open_storage(db: &Database, target: Arc<TestTarget>) -> Storage<TestTarget> {
    Storage::open(db, &config(Durability::Batch, BOOT), target).expect("storage opens")
}

/// A store of its own: its storage, database and directory (dropped in that order).
pub struct Fresh {
    pub s: Storage<TestTarget>,
    pub db: Database,
    pub dir: tempfile::TempDir,
}

/// An empty store in a new temporary directory.
pub fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let s = open_storage(&db, Arc::new(TestTarget::default()));
    Fresh { s, db, dir }
}

/// `log` applied on an empty store through openraft's streaming `apply`, all at once (the
/// other copy of a determinism check applies it entry by entry).
pub async fn streamed(log: &[Entry]) -> Fresh {
    let mut f = fresh();
    let stream = futures::stream::iter(log.iter().cloned().map(|e| Ok((e, None))));
    f.s.sm.apply(stream).await.expect("applies");
    f
}

pub fn key(s: &str) -> Key {
    Key::new(s).expect("valid key")
}

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId {
        leader_id: LeaderId { term, node_id: 1 },
        index,
    }
}

pub fn entry(index: u64, cmd: Command) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(cmd),
    }
}

pub fn put(k: &str, v: &str, at_micros: u64) -> Command {
    Command::Put {
        key: key(k),
        value: Bytes::copy_from_slice(v.as_bytes()),
        precondition: Precondition::None,
        at_micros,
        routed: Routed::default(),
        remote: None,
    }
}

pub fn routed(t: &Topology) -> Routed {
    Routed::of(t)
}

/// Raw (key, stored bytes) pairs.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Every record of the serving generation, raw.
pub fn dump(s: &Storage<TestTarget>) -> Records {
    s.state_machine()
        .records()
        .iter()
        .map(|g| {
            let (k, v) = g.into_inner().expect("readable");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}
