//! kvserver: the book's key/value server (one per shard pod), made durable, safe and fast.
//!
//! # Layout
//! - [`config`]: clap flags with env fallbacks.
//! - [`server`]: `run(config, listener, ops_listener, shutdown)`: listeners, batch fsync, drain.
//! - [`listen`]: the accept loop of both ports: connection cap, header and write deadlines.
//! - [`app`]: the data and ops routers, built from route families, and their middleware.
//! - [`access`]: the layers that guard route families (admin token, draining, data token).
//! - [`body`]: request bodies read whole, under a limit and a deadline, before the handler.
//! - [`book`]: the chapter's `/save`, `/load`, `/allKeys`, byte for byte.
//! - [`v1`]: the `/v1` key API, listing, info, topology.
//! - [`admin`]: topology pushes, bulk export/import, cleanup, the internal local read.
//! - [`import_budget`]: the bytes of import bodies a server holds at once.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`keys`]: serving one key: raw-path key parsing, lookup with read-through, forwarding.
//! - [`routing`]: `Topology::route` applied to a request, forwarded headers.
//! - [`peer`]: the HTTP client to other shards.
//! - [`write_path`]: the one seam data writes, imports, cleanups and topology pushes go
//!   through (the store directly; a replicated shard's group next).
//! - [`raft_node`]: this copy's raft identity, group storage and running group;
//!   [`group_start`]: starting the group in the server, the served topology following the
//!   applied one; [`raft_admin`]: the management routes; [`raft_rpc`]: the Raft RPC routes;
//!   [`replica`]: serving a request here or at the shard's leader (forwarding, read barriers);
//!   [`to_leader`]: the marker on a request sent on to the leader, naming its sender.
//! - `unsafe_modes` (feature `unsafe-fault-modes` only): the deliberately broken replication
//!   flags of the checker's negative test.
//! - [`storage`]: versioned records and tombstones on fjall, group commit, disk-full recovery.
//! - [`topology_file`]: the topology persisted atomically on the data dir.
//! - [`auth`]: the admin, peer and data bearer tokens (read, reloaded and compared).
//! - [`tls`]: the data port's certificate (rustls), reloaded when its files change.
//! - [`reload`]: the tick that re-reads changing files (tokens, certificate, peer CA).
//! - [`metrics`]: Prometheus metrics.
//! - [`state`]: what handlers share.
//! - [`error`]: the one error type and its HTTP rendering.
//! - [`etag_header`]: versions as `ETag` header values (format from `kvproto::wire::etag`).
//!
//! The HTTP contract is `docs/api.md` at the repository root.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod book;
pub mod config;
pub mod error;
pub mod etag_header;
pub mod group_start;
pub mod header_names;
pub mod import_budget;
pub mod keys;
pub mod listen;
pub mod metrics;
pub mod ops;
pub mod peer;
pub mod raft_admin;
pub mod raft_node;
pub mod raft_rpc;
pub mod reload;
pub mod replica;
pub mod routing;
pub mod server;
pub mod state;
pub mod storage;
pub mod tls;
pub mod to_leader;
pub mod topology_file;
#[cfg(feature = "unsafe-fault-modes")]
pub mod unsafe_modes;
pub mod v1;
pub mod write_path;

pub use app::{app, ops_app};
pub use config::{Config, RaftReadPolicy, SyncMode, UsageError};
pub use error::Error;
pub use server::{run, serve};
pub use state::AppState;
