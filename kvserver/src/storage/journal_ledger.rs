//! The store's own record of its newest journal, so a deleted journal is noticed.
//!
//! fjall numbers its journals `0.jnl, 1.jnl, ...`, creates a new one when it seals the active
//! one and deletes only the oldest, once flushed: the newest journal a store ever had (or a newer
//! one) is always on disk. fjall itself starts on whatever it finds and creates an empty journal
//! when none is left, so a deleted active journal loses its writes silently. This file,
//! `kvserver-journals` beside the journals, is written on the first open and whenever a sync
//! sees a newer journal; the verifier refuses a store whose newest journal is older.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const FILE: &str = "kvserver-journals";
const KEY: &str = "newest_journal=";

/// The recorded newest journal id, kept in step with the file.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    /// One above the recorded id (0: nothing recorded yet).
    recorded: AtomicU64,
}

impl Ledger {
    /// The ledger of `dir`, recording `newest` now if it is newer than what the file holds. A
    /// failure to record (a full disk) is logged: it only weakens the check until a later sync,
    /// and a store on a full disk must still open for reads.
    pub fn open(dir: &Path, newest: Option<u64>) -> io::Result<Ledger> {
        let held = read(dir)?;
        let ledger = Ledger {
            dir: dir.to_path_buf(),
            recorded: AtomicU64::new(held.map_or(0, |id| id + 1)),
        };
        if let Some(id) = newest
            && let Err(e) = ledger.note(id)
        {
            tracing::warn!(error = %e, newest = id, "cannot record the newest journal in the ledger");
        }
        Ok(ledger)
    }

    /// Records `newest` if it is above the recorded id (rare: once per journal rotation).
    pub fn note(&self, newest: u64) -> io::Result<()> {
        if newest.saturating_add(1) <= self.recorded.load(Ordering::Acquire) {
            return Ok(());
        }
        write(&self.dir, newest)?;
        self.recorded
            .fetch_max(newest.saturating_add(1), Ordering::AcqRel);
        Ok(())
    }
}

/// The newest journal id recorded in `dir`, if the file exists.
pub fn read(dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(KEY))
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds no `{KEY}N` line (delete the file to skip the deleted-journal \
                     check once)",
                    path.display()
                ),
            )
        })
}

/// Replaces the file atomically (temp, fsync, rename, fsync of the directory).
fn write(dir: &Path, newest: u64) -> io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(
        file,
        "# kvserver: the newest fjall journal this store has had; fewer means one was deleted.\n\
         {KEY}{newest}"
    )?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_growing_ids_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let ledger = Ledger::open(dir.path(), Some(3)).unwrap();
        ledger.note(2).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(3));
        ledger.note(5).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(5));
        let again = Ledger::open(dir.path(), Some(4)).unwrap();
        again.note(5).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(5));
        std::fs::write(dir.path().join(FILE), "junk").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
