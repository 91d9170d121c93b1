//! Shared vocabulary of the kvstore: everything that server, client and operator must agree on
//! byte for byte lives here, so they can never disagree.
//!
//! # Layout
//! - [`shard`]: the shard functions (`modulo`, as in the book, and `jump`).
//! - [`key`]: what a valid key is, and how it travels in a URL path.
//! - [`topology`]: the shard map a server serves under, including an in-flight migration.
//! - [`wire`]: JSON bodies and HTTP header names of the `/v1` API.
//! - [`bulk`]: the framed binary stream used by bulk export and import.
//! - [`fence`]: the epoch and phase a move's imports and cleanups carry, and who admits them.
//! - [`raft`]: what a replicated shard's copy reports about its Raft group (read by the operator).
//! - [`raft_admin`]: the operator's management routes for a replicated shard's group.
#![forbid(unsafe_code)]

pub mod bulk;
pub mod fence;
pub mod key;
pub mod raft;
pub mod raft_admin;
pub mod shard;
pub mod topology;
pub mod wire;

pub use fence::{Fence, FenceError, FencedPhase};
pub use key::{Key, KeyError};
pub use shard::Sharding;
pub use topology::{
    MigrationPhase, ReplicatedTopology, Topology, TopologyError, copy_pod, copy_url_tls, peer_url,
    peer_url_tls,
};
