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
    /// A shard refused a copy batch as larger than its import limits (413): a configuration to
    /// fix, which sending the batch again does not.
    #[error(
        "shard {shard} refused a copy batch of {records} records ({bytes} bytes) as too large: {source}"
    )]
    ImportTooLarge {
        shard: u32,
        records: usize,
        bytes: usize,
        #[source]
        source: kvclient::Error,
    },
}

impl ShardError {
    /// A failed import of `records` records to `shard`: [`ShardError::ImportTooLarge`] when
    /// the shard refused the body as too large, else [`ShardError::Unreachable`].
    pub fn import(shard: u32, records: usize, source: kvclient::Error) -> Self {
        match source {
            kvclient::Error::TooLarge { bytes, .. } => ShardError::ImportTooLarge {
                shard,
                records,
                bytes,
                source,
            },
            source => ShardError::Unreachable { shard, source },
        }
    }

    /// The shard the error is about.
    pub fn shard(&self) -> u32 {
        match self {
            ShardError::Unreachable { shard, .. }
            | ShardError::NotDrained { shard, .. }
            | ShardError::ImportTooLarge { shard, .. } => *shard,
        }
    }

    /// True when only a change of configuration fixes it: the reconcile does not back off and
    /// retry, it waits like for an invalid spec.
    pub fn needs_configuration(&self) -> bool {
        matches!(self, ShardError::ImportTooLarge { .. })
    }

    /// True when the shard did not answer or refused (not a state of its data): often brief,
    /// e.g. a pod that has just started.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ShardError::Unreachable { .. })
    }

    /// What went wrong, without the shard.
    pub fn detail(&self) -> String {
        match self {
            ShardError::Unreachable { source, .. } => source.to_string(),
            ShardError::NotDrained { keys, .. } => format!("still holds {keys} keys"),
            ShardError::ImportTooLarge {
                records,
                bytes,
                source,
                ..
            } => format!(
                "refused a copy batch of {records} records ({bytes} bytes) as too large: {source}"
            ),
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
            ShardError::ImportTooLarge {
                records,
                bytes,
                source,
                ..
            } => (
                "ImportTooLarge",
                format!(
                    "shard {pod} refused a copy batch of {records} records ({bytes} bytes) as \
                     too large ({source}): raise the kvserver's --max-import-bytes \
                     (KV_MAX_IMPORT_BYTES) and --import-budget-bytes (KV_IMPORT_BUDGET_BYTES) \
                     to at least {bytes}, or copy in smaller batches (the operator's copy \
                     batch_bytes); the copy waits until then"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> kvclient::Error {
        kvclient::Error::Status {
            server: "http://s".into(),
            status,
            code: None,
            message: "no".into(),
        }
    }

    #[test]
    fn a_refused_body_is_a_configuration_error_that_names_the_limits() {
        let too_large = kvclient::Error::TooLarge {
            server: "http://s".into(),
            bytes: 4096,
            message: "import body of 4096 bytes exceeds --max-import-bytes (1024 bytes)".into(),
        };
        let err = ShardError::import(3, 10, too_large);
        assert!(err.needs_configuration());
        assert_eq!(err.shard(), 3);
        let (reason, message) = err.condition("kv");
        assert_eq!(reason, "ImportTooLarge");
        assert!(message.contains("shard kv-3 "), "{message}");
        assert!(message.contains("--max-import-bytes"), "{message}");
        assert!(message.contains("4096 bytes"), "{message}");

        let unavailable = ShardError::import(1, 10, status(503));
        assert!(matches!(
            unavailable,
            ShardError::Unreachable { shard: 1, .. }
        ));
        assert!(!unavailable.needs_configuration());
    }
}
