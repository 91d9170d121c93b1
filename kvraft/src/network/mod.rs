//! The group's network (docs/replication.md section 5): Raft RPCs as axum routes on the data
//! port, and the client that sends them to the other copies over one shared `reqwest::Client`.
//!
//! - [`routes`]: the receiving side, `POST /v1/raft/*` (`routes.rs`), behind the group and
//!   protocol header check (`guard.rs`).
//! - `client`: openraft's `RaftNetworkFactory` / `RaftNetworkV2` over reqwest, sending with
//!   what [`PeerCredentials`] gives at each RPC (`credentials.rs`); `failure`: how a failed RPC
//!   is reported to openraft (unreachable peers back off).
//! - `append_codec`: the binary framing of append bodies; `snapshot_stream`: a snapshot as a
//!   stream of `kvproto::bulk` records between a header and a trailer.

mod append_codec;
pub(crate) mod client;
mod credentials;
mod failure;
mod guard;
pub(crate) mod routes;
pub(crate) mod snapshot_stream;

pub use credentials::{FixedCredentials, PeerCredentials};

/// Appends (and heartbeats) from the leader: [`APPEND_CONTENT_TYPE`] bodies.
pub const APPEND_PATH: &str = "/v1/raft/append";
/// Vote requests of a candidate (JSON).
pub const VOTE_PATH: &str = "/v1/raft/vote";
/// Pre-vote requests (JSON): would the peer vote, without changing its term.
pub const PRE_VOTE_PATH: &str = "/v1/raft/pre-vote";
/// A full snapshot, streamed ([`SNAPSHOT_CONTENT_TYPE`]).
pub const SNAPSHOT_PATH: &str = "/v1/raft/snapshot";
/// The leader asks the peers to let the named one take over (JSON).
pub const TRANSFER_LEADER_PATH: &str = "/v1/raft/transfer-leader";

/// An append body: a JSON frame without the entries, then one binary frame per entry.
pub const APPEND_CONTENT_TYPE: &str = "application/x-kvstore-raft";
/// A snapshot body: header frame, `kvproto::bulk` stream, trailer frame.
pub const SNAPSHOT_CONTENT_TYPE: &str = "application/x-kvstore-raft-snapshot";

/// The largest append body accepted. A leader reads at most `APPEND_ENTRY_BYTES` (16 MiB) of
/// entries for one append (`log_store.rs`), plus one entry of any size the codec takes, so
/// every body stays under this whatever the values' sizes.
pub const MAX_APPEND_BODY: usize = 96 << 20;
/// The largest vote, pre-vote or transfer body accepted.
pub const MAX_SMALL_BODY: usize = 64 << 10;
