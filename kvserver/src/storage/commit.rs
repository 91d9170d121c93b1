//! Group commit for `--sync always`: a writer that needs its write on disk takes the sync lock;
//! whoever holds it fsyncs everything written so far, so writers queued behind it usually find
//! their write already covered and share that one fsync.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

#[derive(Debug, Default)]
pub struct GroupCommit {
    /// Writes handed to the OS so far (each write takes the next ticket).
    written: AtomicU64,
    /// The highest ticket known to be on stable storage.
    synced: Mutex<u64>,
}

impl GroupCommit {
    /// Call after a write reached the OS; returns its ticket.
    pub fn ticket(&self) -> u64 {
        self.written.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Returns once `ticket` is on stable storage, running `fsync` if nobody has covered it yet.
    pub async fn wait<F, Fut, E>(&self, ticket: u64, fsync: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            return Ok(());
        }
        // Everything written before this load is covered by the fsync below.
        let upto = self.written.load(Ordering::Acquire);
        fsync().await?;
        *synced = upto;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn one_fsync_covers_every_write_before_it() {
        let gc = GroupCommit::default();
        let fsyncs = AtomicUsize::new(0);
        let counted = || async {
            fsyncs.fetch_add(1, Ordering::SeqCst);
            Ok::<(), ()>(())
        };
        let tickets: Vec<u64> = (0..10).map(|_| gc.ticket()).collect();
        for t in tickets {
            gc.wait(t, counted).await.unwrap();
        }
        assert_eq!(fsyncs.load(Ordering::SeqCst), 1);
        let later = gc.ticket();
        gc.wait(later, counted).await.unwrap();
        assert_eq!(fsyncs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fsync_is_reported_and_retried_by_the_next_writer() {
        let gc = GroupCommit::default();
        let t = gc.ticket();
        assert_eq!(
            gc.wait(t, || async { Err::<(), _>("eio") }).await,
            Err("eio")
        );
        assert_eq!(gc.wait(t, || async { Ok::<(), &str>(()) }).await, Ok(()));
    }
}
