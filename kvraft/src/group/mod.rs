//! `ShardGroup`: one shard's Raft group on this copy, the only door kvserver uses
//! (docs/replication.md sections 2 and 6). No openraft type appears in its API.
//!
//! - `shard_group`: the [`ShardGroup`] handle, open and shutdown; `config`: [`RaftConfig`],
//!   the read policy, the unsafe modes; `error`: what operations answer when they fail.
//! - `write`: proposing a command and answering its applied outcome; `read`: the read
//!   barrier; `membership`: initialize, learners, voters, leadership transfer; `status`: what
//!   `GET /v1/admin/raft/status` reports.

mod config;
mod error;
mod membership;
mod read;
mod shard_group;
mod status;
mod write;

pub use config::{RaftConfig, ReadPolicy, UnsafeMode};
pub use error::{GroupError, ReadError, WriteError};
pub use read::{ReadMode, ReadToken};
pub use shard_group::ShardGroup;
