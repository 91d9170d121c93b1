//! kvserver's journal verifier (`kvserver::storage::verify_journals`, run before the engine
//! opens a store) on arbitrary bytes as journal files.
//!
//! Input: one flags byte, then up to [`MAX_FILES`] journal files (`0.jnl`, `1.jnl`, ...)
//! separated by [`SEPARATOR`]. Flag bit 0 asks the harness to write the right xxh3 checksum
//! into every batch end it can reach, so mutations get past the checksum to the framing.
//!
//! Invariants: no panic; the verdict (clean, torn tails dropped, refused as corrupt, refused for
//! a seqno out of order) and its file and offset are those of the format and rules written out
//! independently below (from the doc comments of `journal_frame.rs` and `journal_check.rs`); a
//! refusal changes no file; a repair cuts exactly the torn tail, keeps a copy of exactly those
//! bytes, and verifying again finds the same batches and nothing to repair.

use std::path::{Path, PathBuf};

use kvserver::storage::{JournalError, TORN_TAILS_DIR, verify_journals};
use xxhash_rust::xxh3::xxh3_64;

/// Separates one journal file from the next in the input.
pub const SEPARATOR: &[u8] = b"\n--next-journal--\n";
/// The most journal files taken from one input.
pub const MAX_FILES: usize = 3;
/// Flag bit: fix up batch checksums before writing the files.
pub const FIX_CHECKSUMS: u8 = 1;

const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
const MAGIC: &[u8; 4] = b"FJL\x03";

/// What the rules say `verify` must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Passes; the torn tails dropped: (file index, offset, bytes dropped).
    Ok {
        batches: u64,
        repaired: Vec<(usize, u64, u64)>,
    },
    Corrupt {
        file: usize,
        offset: u64,
    },
    Order {
        file: usize,
        offset: u64,
    },
}

pub fn check(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut files = split(rest);
    if flags & FIX_CHECKSUMS != 0 {
        for f in &mut files {
            fix_checksums(f);
        }
    }
    let dir = match tempfile::Builder::new()
        .prefix("kvstore-fuzz-jnl-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => panic!("cannot make a scratch dir: {e}"),
    };
    for (i, f) in files.iter().enumerate() {
        write(&journal(dir.path(), i), f);
    }
    let expected = expect(&files);
    let got = verify_journals(dir.path());
    match (&expected, got) {
        (Verdict::Ok { batches, repaired }, Ok(report)) => {
            let got: Vec<(usize, u64, u64)> = report
                .repaired
                .iter()
                .map(|(p, at, n)| (index_of(dir.path(), p), *at, *n))
                .collect();
            assert_eq!(
                (report.batches, &got),
                (*batches, repaired),
                "verify passed with other batches or repairs than the rules give"
            );
            assert_eq!(report.journals, files.len(), "journals counted");
            check_repairs(dir.path(), &files, repaired);
            // Verifying what a repair left is clean and finds the same batches.
            match verify_journals(dir.path()) {
                Ok(again) => assert!(
                    again.repaired.is_empty() && again.batches == *batches,
                    "a second verify repaired {:?} and found {} batches (first: {batches})",
                    again.repaired,
                    again.batches
                ),
                Err(e) => panic!("a second verify refused what the first passed: {e}"),
            }
        }
        (
            Verdict::Corrupt { file, offset },
            Err(JournalError::Corrupt {
                file: f, offset: o, ..
            }),
        ) if index_of(dir.path(), &f) == *file && o == *offset => unchanged(dir.path(), &files),
        (
            Verdict::Order { file, offset },
            Err(JournalError::Order {
                file: f, offset: o, ..
            }),
        ) if index_of(dir.path(), &f) == *file && o == *offset => unchanged(dir.path(), &files),
        (expected, got) => panic!("verify answered {got:?}; the rules give {expected:?}"),
    }
}

/// The journal files in the input (at least one, possibly empty).
fn split(mut rest: &[u8]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    while files.len() + 1 < MAX_FILES {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                files.push(rest[..at].to_vec());
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    files.push(rest.to_vec());
    files
}

fn journal(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i}.jnl"))
}

fn index_of(dir: &Path, path: &Path) -> usize {
    (0..MAX_FILES)
        .find(|&i| journal(dir, i) == path)
        .unwrap_or_else(|| panic!("verify named a file it was not given: {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A refusal changed nothing: every file as written, no torn tail kept.
fn unchanged(dir: &Path, files: &[Vec<u8>]) {
    for (i, f) in files.iter().enumerate() {
        assert!(
            read(&journal(dir, i)) == *f,
            "verify refused the store but changed {i}.jnl"
        );
    }
    assert!(
        !dir.join(TORN_TAILS_DIR).exists(),
        "verify refused the store but kept a torn tail"
    );
}

/// Each repaired file is cut at the end of its last valid batch and its dropped bytes are kept;
/// every other file is as written.
fn check_repairs(dir: &Path, files: &[Vec<u8>], repaired: &[(usize, u64, u64)]) {
    for (i, f) in files.iter().enumerate() {
        let now = read(&journal(dir, i));
        match repaired.iter().find(|r| r.0 == i) {
            None => assert!(now == *f, "{i}.jnl changed without a repair"),
            Some(&(_, at, n)) => {
                let (at, n) = (at as usize, n as usize);
                assert!(now == f[..at], "{i}.jnl not cut at byte {at}");
                let kept = read(&dir.join(TORN_TAILS_DIR).join(format!("{i}.jnl.at-{at}")));
                assert!(kept == f[at..at + n], "the copy of {i}.jnl's tail differs");
                assert!(
                    f[at + n..].iter().all(|&b| b == 0),
                    "{i}.jnl: non-zero bytes after the dropped tail"
                );
            }
        }
    }
}

/// The verdict of the rules: files in order, batch by batch; a seqno that does not grow stops
/// everything; then damage (non-zero bytes after the last valid batch) is refused when any
/// valid batch follows it (in its file or a later one), else dropped as a torn tail.
fn expect(files: &[Vec<u8>]) -> Verdict {
    let mut previous: Option<u64> = None;
    let mut scans = Vec::new();
    for (file, f) in files.iter().enumerate() {
        let (mut at, mut batches) = (0, 0u64);
        while at < f.len() {
            let Some((end, seqno)) = batch_at(f, at) else {
                break;
            };
            if previous.is_some_and(|p| seqno <= p) {
                return Verdict::Order {
                    file,
                    offset: at as u64,
                };
            }
            previous = Some(seqno);
            at = end;
            batches += 1;
        }
        let data_end = f[at..]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(at, |i| at + i + 1);
        let next = (at + 1..f.len()).find(|&o| f[o] == TAG_START && batch_at(f, o).is_some());
        scans.push((batches, at, data_end, next));
    }
    let batches = scans.iter().map(|s| s.0).sum();
    let mut repaired = Vec::new();
    for (file, &(_, at, data_end, next)) in scans.iter().enumerate() {
        if data_end == at {
            continue;
        }
        let later = scans[file + 1..]
            .iter()
            .any(|&(b, _, _, n)| b > 0 || n.is_some());
        if next.is_some() || later {
            return Verdict::Corrupt {
                file,
                offset: at as u64,
            };
        }
        repaired.push((file, at as u64, (data_end - at) as u64));
    }
    Verdict::Ok { batches, repaired }
}

/// The whole valid batch at `at`: where it ends and its seqno.
fn batch_at(f: &[u8], at: usize) -> Option<(usize, u64)> {
    let (end_at, seqno) = frames(f, at)?;
    let end = f.get(end_at..end_at + 13)?;
    let stored = u64::from_le_bytes(end[1..9].try_into().ok()?);
    (end[0] == TAG_END && &end[9..13] == MAGIC && stored == xxh3_64(&f[at + 13..end_at]))
        .then_some((end_at + 13, seqno))
}

/// The Start frame and entries at `at`: where the End frame must start, and the seqno.
fn frames(f: &[u8], at: usize) -> Option<(usize, u64)> {
    let start = f.get(at..at + 13)?;
    if start[0] != TAG_START {
        return None;
    }
    let count = u32::from_le_bytes(start[1..5].try_into().ok()?);
    let seqno = u64::from_le_bytes(start[5..13].try_into().ok()?);
    let mut pos = at + 13;
    for _ in 0..count {
        match *f.get(pos)? {
            TAG_ITEM => {
                let h = f.get(pos..pos + 21)?;
                let key_len = usize::from(u16::from_le_bytes([h[11], h[12]]));
                let value_len = u32::from_le_bytes(h[13..17].try_into().ok()?);
                let disk_len = u32::from_le_bytes(h[17..21].try_into().ok()?);
                if h[1] > 2 || h[2] > 1 || (h[2] == 0 && value_len != disk_len) {
                    return None;
                }
                pos = pos
                    .checked_add(21 + key_len)?
                    .checked_add(disk_len as usize)?;
                if pos > f.len() {
                    return None;
                }
            }
            TAG_CLEAR => {
                pos += 9;
                if pos > f.len() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((pos, seqno))
}

/// Writes the right checksum into each batch end reachable from the start, skipping bytes that
/// start no batch, so that the fuzzer's mutations of framing are not all lost to the checksum.
fn fix_checksums(f: &mut [u8]) {
    let mut at = 0;
    while at < f.len() {
        if let Some((end_at, _)) = frames(f, at)
            && end_at + 13 <= f.len()
            && f[end_at] == TAG_END
        {
            let sum = xxh3_64(&f[at + 13..end_at]).to_le_bytes();
            f[end_at + 1..end_at + 9].copy_from_slice(&sum);
            at = end_at + 13;
        } else {
            at += 1;
        }
    }
}
