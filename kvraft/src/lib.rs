//! One Raft group per shard, on openraft, with its log and state machine in the shard's fjall
//! database (issue 14, docs/replication.md). Only kvserver depends on this crate, and its
//! public API names no openraft type, so an openraft alpha bump touches this crate alone.
//!
//! # Layout
//! - [`command`]: what the log carries (`Command`) and what applying answers (`Outcome`);
//!   [`codec`]: the commands' binary codec.
//! - `types`: the openraft type configuration (crate-private).
//! - `entry_codec`: a log entry's bytes in `raft_log`; `meta`: the `raft_meta` keyspace.
//! - `log_store`: the log (openraft `RaftLogStorage`), with [`Durability`]; `flusher`: the
//!   thread that persists appends and reports them, several at a time (group commit).
//! - [`apply`]: the small apply interface ([`ApplyTarget`]) a records store implements.
//! - `state_machine`: applying entries through it (openraft `RaftStateMachine`);
//!   `snapshot`: snapshot views and their builder; `records`: generations of the records
//!   keyspace that a snapshot install flips between.
//! - `identity`: the node ID born with the volume; `boot`: the boot guard.
//! - [`storage`]: opening all of it on one database.
//! - [`network`]: the Raft RPCs between copies: axum routes (`network/routes.rs`, behind the
//!   group/protocol check of `guard.rs`), the reqwest client openraft sends with
//!   (`client.rs`, with the client and token a [`PeerCredentials`] gives at each RPC,
//!   `credentials.rs`; failures classified in `failure.rs`), the append body framing
//!   (`append_codec.rs`) and snapshot streaming (`snapshot_stream.rs`).
//! - `group`: [`ShardGroup`], the group on this copy: open, write, read barrier, membership,
//!   leadership, status (`group/{config,error,write,read,membership,status}.rs`).
#![forbid(unsafe_code)]

pub mod apply;
pub mod boot;
pub mod codec;
pub mod command;
mod entry_codec;
pub mod error;
mod flusher;
mod group;
pub mod identity;
mod log_store;
mod meta;
pub mod network;
mod records;
mod snapshot;
mod state_machine;
pub mod storage;
mod types;

#[cfg(test)]
mod tests;

pub use apply::{ApplyTarget, Tx};
pub use boot::{BOOT_ID_PATH, BootVerdict, read_boot_id};
pub use codec::CodecError;
pub use command::{Command, DeleteMode, FenceCheck, Outcome, Precondition, Routed, WriteOutcome};
pub use error::{ApplyError, StorageError};
pub use group::{
    GroupError, RaftConfig, ReadError, ReadMode, ReadPolicy, ReadToken, ShardGroup, UnsafeMode,
    WriteError,
};
pub use identity::Identity;
pub use log_store::Durability;
pub use network::{FixedCredentials, PeerCredentials};
pub use records::RECORDS_KEYSPACE;
pub use state_machine::StateMachine;
pub use storage::{Storage, StorageConfig};
