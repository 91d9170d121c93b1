//! Admin calls from the operator to the shard servers, behind a trait so that the reconcile's
//! decisions are tested without servers. This file only declares and re-exports; the modules
//! sit in layers, each using only those above it in this list:
//!
//! - `raft`: [`RaftChange`], one membership change of a shard's group (route and body);
//! - `admin`: the [`ShardAdmin`] trait (implement it with `async fn`) and its answer types;
//! - `error`: [`ShardError`], a failed call naming its shard;
//! - `dyn_admin`: [`DynShardAdmin`], the same trait boxed in one place, held by the reconcile;
//! - `kvclient_admin`: [`KvClientAdmin`], the real implementation over kvclient's
//!   `ServerClient` (no second HTTP client lives here);
//! - `each`: [`peer`], [`on_each`] (the one way to call every shard of a map) and [`push`].
//!
//! The tests' one fake is `operator/tests/support/shards.rs`.

mod admin;
mod dyn_admin;
mod each;
mod error;
mod kvclient_admin;
mod raft;

pub use admin::{CallResult, RecordStream, ShardAdmin, store_domain, unsupported};
pub use dyn_admin::DynShardAdmin;
pub use each::{on_each, peer, push};
pub use error::ShardError;
pub use kvclient_admin::{ADMIN_TIMEOUT, KvClientAdmin, RAFT_TIMEOUT};
pub use raft::RaftChange;
