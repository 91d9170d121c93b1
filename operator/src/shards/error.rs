//! A shard that did not cooperate, named by its ordinal: the one error of every call to the
//! shards, from a topology push to the copy, and what the status says about it.

use thiserror::Error;

use crate::labels;

/// Why a call to a store's shards did not complete; it is made again later.
#[derive(Debug, Error)]
pub enum ShardError {
    /// A shard did not answer or refused a call.
    #[error("shard {shard} unreachable: {source}")]
    Unreachable {
        shard: u32,
        #[source]
        source: kvclient::Error,
    },
    /// A shard about to be removed still holds keys.
    #[error("shard {shard} still holds {keys} keys")]
    NotDrained { shard: u32, keys: u64 },
}

impl ShardError {
    /// The shard the error is about.
    pub fn shard(&self) -> u32 {
        match self {
            ShardError::Unreachable { shard, .. } | ShardError::NotDrained { shard, .. } => *shard,
        }
    }

    /// What went wrong, without the shard.
    pub fn detail(&self) -> String {
        match self {
            ShardError::Unreachable { source, .. } => source.to_string(),
            ShardError::NotDrained { keys, .. } => format!("still holds {keys} keys"),
        }
    }

    /// The Degraded condition's reason and message, naming the shard's pod of `store`.
    pub fn condition(&self, store: &str) -> (&'static str, String) {
        let pod = labels::pod(store, i32::try_from(self.shard()).unwrap_or(i32::MAX));
        match self {
            ShardError::Unreachable { source, .. } => (
                "ShardUnreachable",
                format!("shard {pod} unreachable: {source}"),
            ),
            ShardError::NotDrained { keys, .. } => (
                "ShardNotDrained",
                format!("shard {pod} still holds {keys} keys: it is not removed until empty"),
            ),
        }
    }
}
