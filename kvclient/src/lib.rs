//! Client library for kvserver: one server, a sharded set of servers, and the book's screen.
//!
//! # Layout
//! - [`config`]: timeouts, retries, admin token, the shared connection pool.
//! - [`error`]: the crate's one [`Error`] type.
//! - [`retry`]: which requests may be resent, and the backoff between attempts.
//! - [`addr`]: `host[:port]` server addresses and comma-separated lists.
//! - [`server`]: [`ServerClient`], the typed `/v1` data routes and the request loop;
//!   `admin` and `book` add the admin routes and the book's routes to it.
//! - [`hints`]: topology hints carried by every response.
//! - [`sharded`]: [`ShardedClient`], routing keys over servers and following the topology;
//!   `copies`: a replicated store's copies of each shard and the one tried first.
//! - [`stats`]: what a client counts about its requests (retries).
//! - [`status`]: outcomes and the book's status letters.
//! - [`probe`]: the book client's check of one key (read, write if missing, compare).
//! - [`screen`]: pure rendering of the book's screen.
//! - [`history`]: a recorded operation history (call, return, outcome) in the checker's format.
//! - [`load_report`]: the load generator's report (its `--json` shape).
//! - [`shutdown`]: waiting for SIGINT or SIGTERM.
//!
//! The `kvclient` binary (src/main.rs, src/cli/) builds the CLI on these.
#![forbid(unsafe_code)]

pub mod addr;
mod admin;
mod book;
pub mod config;
mod copies;
pub mod error;
pub mod hints;
pub mod history;
pub mod load_report;
pub mod probe;
mod raft_admin;
pub mod retry;
pub mod screen;
pub mod server;
pub mod sharded;
pub mod shutdown;
pub mod stats;
pub mod status;

pub use admin::{ExportScope, LocalRead};
pub use config::ClientConfig;
pub use error::{Error, Result};
pub use retry::RetryPolicy;
pub use server::{Condition, ListQuery, ServerClient, Versioned};
pub use sharded::{Routing, ShardedClient};
pub use status::Outcome;
