//! The journal verifier: runs before fjall opens the store, because fjall 3.1 cannot be told to
//! refuse a damaged journal. Its `JournalReader` treats any decode error as the end of the log
//! and truncates the file there (logged at debug level), so one flipped byte in the middle
//! silently erases every acknowledged write after it; it also starts with an empty journal when
//! the journal was deleted. (Its recovery mode is commented out in 3.1.) See kvserver/README.md,
//! "Journal damage".
//!
//! The rule, as etcd's WAL and Redis's `aof-load-truncated` have it:
//! - a torn *tail* (the bad bytes are the last data of the log: nothing valid follows them,
//!   only zeros or the end of the file) is what a crash mid-write leaves: it is dropped, with
//!   an error-level log naming the bytes removed, and a copy of them kept in
//!   `torn-journal-tails/` first;
//! - damage followed by any valid batch (in the same file or a later journal), a batch whose
//!   seqno does not grow, a missing journal: the store refuses to open, names the file and the
//!   offset, and changes nothing.
//!
//! Not checked here: whether the *oldest* journals that are gone had all been flushed to the
//! engine's tables. fjall deletes them itself once flushed, and telling that from a deletion
//! needs the engine's per-keyspace flush state (fjall's version files), which it does not expose
//! before it opens.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::journal_frame::{Batch, Broken, JournalFile};
use super::journal_ledger;

/// Where the bytes a repair drops are kept, inside the store directory (fjall ignores it).
pub const TORN_TAILS_DIR: &str = "torn-journal-tails";
/// fjall's files: the format marker written when a store is created, and its lock.
const VERSION_MARKER: &str = "version";
const LOCK_FILE: &str = "lock";

#[derive(Debug, Error)]
pub enum JournalError {
    #[error(
        "journal {file} is damaged at byte {offset} ({what}), and {after}: refusing to open the \
         store rather than drop the acknowledged writes that follow. Nothing was changed. To \
         give up everything from byte {offset} of that file on, stop every server on this \
         store, copy the file aside, run `truncate -s {offset} {file}` and start again",
        file = .file.display()
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
        after: String,
    },
    #[error(
        "journal {file}: the batch at byte {offset} has seqno {seqno}, not above the {previous} \
         of the batch before it: one of them is damaged; refusing to open the store. Nothing \
         was changed",
        file = .file.display()
    )]
    Order {
        file: PathBuf,
        offset: u64,
        seqno: u64,
        previous: u64,
    },
    #[error(
        "journal missing in {dir}: {what}; refusing to open the store without the writes it \
         held. Nothing was changed. {remedy}",
        dir = .dir.display()
    )]
    Missing {
        dir: PathBuf,
        what: String,
        remedy: String,
    },
    #[error("the store at {} is in use by another process (its lock is held)", .0.display())]
    Locked(PathBuf),
    #[error("journal check: {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What the verifier found (and repaired).
#[derive(Debug, Default)]
pub struct Report {
    pub journals: usize,
    pub batches: u64,
    /// Torn tails dropped: (journal, offset, bytes dropped).
    pub repaired: Vec<(PathBuf, u64, u64)>,
}

/// One journal, read through.
struct Scan {
    path: PathBuf,
    id: u64,
    batches: u64,
    /// Where the valid batches end.
    good_end: u64,
    /// The first bad frame, if non-zero bytes follow the valid batches: (what, where the
    /// non-zero bytes end, the next valid batch after it).
    damage: Option<(Broken, u64, Option<Batch>)>,
}

/// Checks every journal in `dir` before the engine opens it; drops a torn tail (keeping a copy).
/// Blocking. A directory fjall never opened passes.
pub fn verify(dir: &Path) -> Result<Report, JournalError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    let _lock = lock(dir)?;
    let ids = journal_ids(dir).map_err(io_err(dir))?;
    let recorded = journal_ledger::read(dir).map_err(io_err(dir))?;
    check_present(dir, &ids, recorded)?;

    let mut scans = Vec::with_capacity(ids.len());
    let mut previous: Option<(u64, PathBuf)> = None;
    for &id in &ids {
        let path = journal_path(dir, id);
        scans.push(scan(&path, id, &mut previous).map_err(|e| match e {
            ScanError::Io(source) => JournalError::Io {
                path: path.clone(),
                source,
            },
            ScanError::Order(e) => *e,
        })?);
    }

    let mut report = Report {
        journals: scans.len(),
        batches: scans.iter().map(|s| s.batches).sum(),
        repaired: Vec::new(),
    };
    for (i, s) in scans.iter().enumerate() {
        let Some((broken, data_end, next)) = &s.damage else {
            continue;
        };
        // A valid batch anywhere in a later journal, even after damage there: otherwise this
        // tail would be cut and the later journal then refused (found by fuzz/journal_verify).
        let later = scans[i + 1..].iter().find_map(|l| match &l.damage {
            _ if l.batches > 0 => Some(format!(
                "the later journal {} holds {} valid batches",
                l.path.display(),
                l.batches
            )),
            Some((_, _, Some(b))) => Some(format!(
                "the later journal {} holds a valid batch at byte {}",
                l.path.display(),
                b.at
            )),
            _ => None,
        });
        let after = match next {
            Some(b) => Some(format!("a valid batch follows at byte {}", b.at)),
            None => later,
        };
        if let Some(after) = after {
            return Err(JournalError::Corrupt {
                file: s.path.clone(),
                offset: broken.batch,
                what: describe(broken),
                after,
            });
        }
        let dropped = drop_torn_tail(dir, s, *data_end).map_err(io_err(&s.path))?;
        tracing::error!(
            journal = %s.path.display(),
            offset = s.good_end,
            bytes_removed = dropped.1,
            copy = %dropped.0.display(),
            damage = %describe(broken),
            "journal had a torn tail (an unfinished last batch, as a crash mid-write leaves): \
             dropped it; every batch before it is kept"
        );
        report
            .repaired
            .push((s.path.clone(), s.good_end, dropped.1));
    }
    Ok(report)
}

/// The journal ids present in `dir` (files `N.jnl`), ascending.
pub fn journal_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        // Other names (fjall refuses a `.jnl` it cannot parse) are left to fjall.
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jnl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn journal_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.jnl"))
}

/// Refuses a store that was opened before and lacks a journal it must have.
fn check_present(dir: &Path, ids: &[u64], recorded: Option<u64>) -> Result<(), JournalError> {
    let opened_before = dir.join(VERSION_MARKER).exists();
    let missing = |what: String, remedy: String| {
        Err(JournalError::Missing {
            dir: dir.to_path_buf(),
            what,
            remedy,
        })
    };
    if recorded.is_some() && !opened_before {
        return missing(
            format!("the engine's `{VERSION_MARKER}` file is gone but the store was opened before"),
            "Restore the directory from a backup, or empty it to start an empty store".into(),
        );
    }
    let (Some(&oldest), Some(&newest)) = (ids.first(), ids.last()) else {
        if opened_before {
            let next = recorded.map_or(0, |r| r + 1);
            return missing(
                "no journal file (*.jnl) is left, although the store was opened before".into(),
                format!(
                    "To start without the writes it held, create an empty one: `touch {}`",
                    journal_path(dir, next).display()
                ),
            );
        }
        return Ok(());
    };
    if let Some(gap) = (oldest..=newest).find(|id| ids.binary_search(id).is_err()) {
        return missing(
            format!(
                "{gap}.jnl is gone, between {oldest}.jnl and {newest}.jnl (fjall only ever \
                 deletes the oldest)"
            ),
            format!(
                "To start without the writes it held, create it empty: `touch {}`",
                journal_path(dir, gap).display()
            ),
        );
    }
    if let Some(r) = recorded.filter(|&r| r > newest) {
        return missing(
            format!(
                "the newest journal is {newest}.jnl, but the store had reached {r}.jnl \
                 (recorded in `kvserver-journals`)"
            ),
            format!(
                "To start without the writes it held, create it empty: `touch {}`",
                journal_path(dir, r).display()
            ),
        );
    }
    Ok(())
}

enum ScanError {
    Io(io::Error),
    Order(Box<JournalError>),
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// Reads one journal batch by batch; `previous` is the last batch's seqno (and file) so far.
/// fjall takes a batch's seqno under its journal lock, so seqnos grow along the log.
fn scan(path: &Path, id: u64, previous: &mut Option<(u64, PathBuf)>) -> Result<Scan, ScanError> {
    let mut file = JournalFile::open(path)?;
    let (mut at, mut batches) = (0, 0);
    let broken = loop {
        if at == file.len() {
            break None;
        }
        match file.batch_at(at)? {
            Ok(batch) => {
                if let Some((seqno, _)) = previous.as_ref().filter(|(s, _)| batch.seqno <= *s) {
                    return Err(ScanError::Order(Box::new(JournalError::Order {
                        file: path.to_path_buf(),
                        offset: batch.at,
                        seqno: batch.seqno,
                        previous: *seqno,
                    })));
                }
                *previous = Some((batch.seqno, path.to_path_buf()));
                at = batch.end;
                batches += 1;
            }
            Err(broken) => break Some(broken),
        }
    };
    let damage = match broken {
        None => None,
        Some(broken) => {
            let data_end = file.data_end_from(at)?;
            // Only zeros after the last batch: fjall's preallocated space, not damage.
            if data_end == at {
                None
            } else {
                Some((broken, data_end, file.next_batch_after(at)?))
            }
        }
    };
    Ok(Scan {
        path: path.to_path_buf(),
        id,
        batches,
        good_end: at,
        damage,
    })
}

fn describe(broken: &Broken) -> String {
    if broken.frame == broken.batch {
        broken.what.clone()
    } else {
        format!("{}, at byte {}", broken.what, broken.frame)
    }
}

/// Copies the torn bytes aside (synced), then cuts the journal at the end of its last valid
/// batch, as fjall would. Answers the copy's path and the bytes dropped.
fn drop_torn_tail(dir: &Path, s: &Scan, data_end: u64) -> io::Result<(PathBuf, u64)> {
    let torn = JournalFile::open(&s.path)?.range(s.good_end, data_end)?;
    let tails = dir.join(TORN_TAILS_DIR);
    std::fs::create_dir_all(&tails)?;
    let copy = tails.join(format!("{}.jnl.at-{}", s.id, s.good_end));
    let mut out = File::create(&copy)?;
    out.write_all(&torn)?;
    out.sync_all()?;
    File::open(&tails)?.sync_all()?;
    File::open(dir)?.sync_all()?;
    let journal = OpenOptions::new().write(true).open(&s.path)?;
    journal.set_len(s.good_end)?;
    journal.sync_all()?;
    Ok((copy, data_end - s.good_end))
}

/// Holds fjall's lock while checking, so a running server's journal is never read (or cut)
/// mid-write. fjall takes it again when it opens; retried briefly, as fjall does, for a reopen
/// whose old engine is still closing.
fn lock(dir: &Path) -> Result<Option<File>, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        // A store fjall never created: nothing to check, nothing to lock.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    for _ in 0..10 {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(JournalError::Io { path, source });
            }
        }
    }
    Err(JournalError::Locked(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store fjall wrote: `n` single-key batches (each ~100 bytes), closed.
    fn store(n: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("kv", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        for i in 0..n {
            ks.insert(format!("key{i:04}"), "v".repeat(80)).unwrap();
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
        drop(ks);
        drop(db);
        dir
    }

    /// Batch boundaries of a clean journal.
    fn batches(path: &Path) -> Vec<Batch> {
        let mut j = JournalFile::open(path).unwrap();
        let (mut at, mut out) = (0, Vec::new());
        while let Ok(b) = j.batch_at(at).unwrap() {
            at = b.end;
            out.push(b);
        }
        out
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_clean_store_passes_and_a_fresh_directory_too() {
        let dir = store(20);
        let report = verify(dir.path()).unwrap();
        assert_eq!((report.journals, report.batches), (1, 20));
        assert!(report.repaired.is_empty());
        assert!(verify(&dir.path().join("nothing-here")).unwrap().journals == 0);
    }

    #[test]
    fn damage_followed_by_data_is_refused_and_left_alone() {
        let dir = store(20);
        let path = dir.path().join("0.jnl");
        let b = batches(&path);
        // A flipped seqno is outside fjall's checksum: only the order shows it.
        for (offset, xor) in [
            (b[10].at, 0x40),
            (b[10].end - 13, 0x01),
            (b[10].at + 1, 0x01),
        ] {
            edit(&path, |bytes| bytes[offset as usize] ^= xor);
            let before = std::fs::read(&path).unwrap();
            let err = verify(dir.path()).unwrap_err();
            assert!(matches!(err, JournalError::Corrupt { offset, .. } if offset == b[10].at));
            assert_eq!(std::fs::read(&path).unwrap(), before, "nothing changed");
            edit(&path, |bytes| bytes[offset as usize] ^= xor);
        }
        edit(&path, |bytes| bytes[b[10].at as usize + 12] ^= 0x01);
        assert!(matches!(
            verify(dir.path()).unwrap_err(),
            JournalError::Order { .. }
        ));
    }

    /// Damage whose only valid batch after it is in a later journal, past damage there too:
    /// refused at the first damage, and no journal is cut (the verifier once cut 0.jnl, then
    /// refused 1.jnl; found by the fuzz target `journal_verify`).
    #[test]
    fn damage_before_a_later_journals_batch_is_refused_and_nothing_is_cut() {
        let dir = store(3);
        let path = dir.path().join("0.jnl");
        let b = batches(&path);
        let bytes = std::fs::read(&path).unwrap();
        let first = [&bytes[..b[0].end as usize], &b"\x07junk"[..]].concat();
        let second = [&b"junk"[..], &bytes[b[1].at as usize..b[2].end as usize]].concat();
        let later = journal_path(dir.path(), 1);
        std::fs::write(&path, &first).unwrap();
        std::fs::write(&later, &second).unwrap();
        let err = verify(dir.path()).unwrap_err();
        assert!(
            matches!(&err, JournalError::Corrupt { file, offset, .. } if *file == path && *offset == b[0].end),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), first, "0.jnl unchanged");
        assert_eq!(std::fs::read(&later).unwrap(), second, "1.jnl unchanged");
        assert!(!dir.path().join(TORN_TAILS_DIR).exists());
    }

    #[test]
    fn a_torn_last_batch_is_cut_and_kept_aside() {
        let dir = store(20);
        let path = dir.path().join("0.jnl");
        let b = batches(&path);
        let last = b[19];
        // Half of the last batch written, the rest still preallocated zeros.
        edit(&path, |bytes| {
            bytes[(last.at + 40) as usize..last.end as usize].fill(0);
        });
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.repaired, vec![(path.clone(), last.at, 40)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), last.at);
        let kept = dir
            .path()
            .join(TORN_TAILS_DIR)
            .join(format!("0.jnl.at-{}", last.at));
        assert_eq!(std::fs::read(kept).unwrap().len(), 40);
        // And fjall opens what is left with the other 19 keys.
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("kv", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        assert_eq!(ks.iter().count(), 19);
    }

    #[test]
    fn missing_journals_are_refused() {
        let dir = store(5);
        std::fs::remove_file(dir.path().join("0.jnl")).unwrap();
        assert!(matches!(
            verify(dir.path()).unwrap_err(),
            JournalError::Missing { .. }
        ));
        for id in [0, 2] {
            std::fs::write(journal_path(dir.path(), id), b"").unwrap();
        }
        assert!(matches!(
            verify(dir.path()).unwrap_err(),
            JournalError::Missing { what, .. } if what.contains("1.jnl is gone")
        ));
        std::fs::write(journal_path(dir.path(), 1), b"").unwrap();
        journal_ledger::Ledger::open(dir.path(), Some(4)).unwrap();
        assert!(matches!(
            verify(dir.path()).unwrap_err(),
            JournalError::Missing { what, .. } if what.contains("reached 4.jnl")
        ));
    }
}
