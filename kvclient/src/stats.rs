//! What a client counts about its own requests, for reports (`kvclient load`): shared by every
//! [`crate::ServerClient`] of one [`crate::ShardedClient`].

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ClientStats {
    retries: AtomicU64,
}

impl ClientStats {
    /// One request is being sent again (to the same server or another copy of its shard).
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent again so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}
