//! Group commit of log appends: one thread per log persists the journal and then reports every
//! append that was waiting, in order, so concurrent appends share one write (`--sync batch`) or
//! one `fdatasync` (`--sync always`), and no async worker blocks on the disk (openraft asks
//! `append` to return once the entries are readable and to report durability later).

use std::io;
use std::sync::mpsc;
use std::thread;

use fjall::{Database, PersistMode};
use openraft::storage::IOFlushed;

use crate::error::StorageError;
use crate::types::ShardRaft;

/// Sends appends to the log's flushing thread; the thread ends when every sender is dropped.
#[derive(Clone)]
pub(crate) struct Flusher {
    tx: mpsc::Sender<IOFlushed<ShardRaft>>,
}

impl Flusher {
    pub fn start(db: &Database, mode: PersistMode) -> Result<Flusher, StorageError> {
        let (tx, rx) = mpsc::channel::<IOFlushed<ShardRaft>>();
        let db = db.clone();
        thread::Builder::new()
            .name("kvraft-log-flush".to_owned())
            .spawn(move || run(&db, mode, &rx))
            .map_err(StorageError::Flusher)?;
        Ok(Flusher { tx })
    }

    /// Reports `callback` once everything appended so far is durable.
    pub fn flush(&self, callback: IOFlushed<ShardRaft>) {
        if let Err(mpsc::SendError(callback)) = self.tx.send(callback) {
            // The thread is gone (it never exits while a sender lives, unless it panicked).
            callback.io_completed(Err(io::Error::other("the log's flush thread stopped")));
        }
    }
}

fn run(db: &Database, mode: PersistMode, rx: &mpsc::Receiver<IOFlushed<ShardRaft>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        match db.persist(mode) {
            Ok(()) => waiting.into_iter().for_each(|cb| cb.io_completed(Ok(()))),
            Err(e) => {
                tracing::error!(error = %e, "persisting the raft log failed");
                let msg = e.to_string();
                for cb in waiting {
                    cb.io_completed(Err(io::Error::other(msg.clone())));
                }
            }
        }
    }
}
