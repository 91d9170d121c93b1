//! The write gate: single writes hold it shared; imports, cleanups and engine reopens hold it
//! exclusively, so they apply atomically with respect to single writes.
//!
//! The exclusive side runs on a blocking thread (or, for a reopen, parks the one writer doing
//! it). A writer that finds the gate taken waits on a [`Notify`] that the exclusive holder
//! fires on release, so no runtime worker parks; an open gate costs one `try_read`.

use parking_lot::{RwLock, RwLockReadGuard};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Gate {
    lock: RwLock<()>,
    opened: Notify,
}

impl Gate {
    /// The gate, shared; waits asynchronously while it is held (or wanted) exclusively.
    pub async fn shared(&self) -> RwLockReadGuard<'_, ()> {
        if let Some(guard) = self.lock.try_read() {
            return guard;
        }
        loop {
            // Registered before the retry, so a release between the two cannot be missed.
            let opened = self.opened.notified();
            if let Some(guard) = self.lock.try_read() {
                return guard;
            }
            opened.await;
        }
    }

    /// Runs `f` with the gate held exclusively, then lets waiting writers in. Blocking.
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _wake = WakeOnDrop(&self.opened);
        let _exclusive = self.lock.write();
        f()
    }
}

/// Wakes the waiting writers once the exclusive guard (declared after it) is released, even
/// if `f` panicked.
struct WakeOnDrop<'a>(&'a Notify);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_writer_waits_for_the_exclusive_holder_and_then_gets_in() {
        let gate = Arc::new(Gate::default());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let gate = gate.clone();
            tokio::task::spawn_blocking(move || {
                gate.exclusive(|| {
                    held_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
            })
        };
        held_rx.recv().unwrap();
        let writer = {
            let gate = gate.clone();
            tokio::spawn(async move { drop(gate.shared().await) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !writer.is_finished(),
            "a writer waits while the gate is held"
        );
        release_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the release wakes the waiting writer")
            .unwrap();
        holder.await.unwrap();
    }
}
