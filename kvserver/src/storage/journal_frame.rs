//! fjall 3.1's journal format, read without the engine (why: see `journal_check.rs`).
//!
//! A journal file (`N.jnl`) is a run of batches, then, in a file fjall preallocated, zeros to its
//! end. A batch, integers little-endian (fjall 3.1.13 `src/journal/entry.rs` and `writer.rs`):
//! - Start: tag `1`, item count `u32`, seqno `u64`;
//! - that many entries, each an Item: tag `2`, value type `u8` (0 value, 1 tombstone, 2 weak
//!   tombstone), compression `u8` (0 none, 1 lz4), keyspace id `u64`, key length `u16`, value
//!   length `u32`, on-disk value length `u32`, the key, the on-disk value; or a Clear: tag `4`,
//!   keyspace id `u64`;
//! - End: tag `3`, the xxh3-64 of the entries' bytes as written `u64`, the magic `FJL\x03`.
//!
//! The Start frame is outside the checksum. A unit test writes journals with fjall itself and
//! parses every batch, so a format change in a fjall upgrade fails the build's tests.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
const MAGIC: &[u8; 4] = b"FJL\x03";
/// Start and End frames are both 13 bytes; an Item header is 21, a Clear 9.
const START_LEN: usize = 13;
const END_LEN: usize = 13;
const ITEM_HEADER_LEN: usize = 21;
const CLEAR_LEN: usize = 9;
/// Bytes read at a time.
const WINDOW: usize = 64 * 1024;

/// One journal file, read at any offset through a small buffer.
pub struct JournalFile {
    file: File,
    len: u64,
    buf: Vec<u8>,
    buf_at: u64,
}

/// A whole batch whose frames parsed and whose checksum matched: bytes `at..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub at: u64,
    pub end: u64,
    pub seqno: u64,
}

/// Why the bytes at `batch` are not a whole valid batch: the frame at `frame` does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub batch: u64,
    pub frame: u64,
    pub what: String,
}

impl JournalFile {
    pub fn open(path: &Path) -> io::Result<JournalFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(JournalFile {
            file,
            len,
            buf: Vec::new(),
            buf_at: 0,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// `n` (at most `WINDOW`) bytes at `at`, or `None` where the file ends first.
    fn bytes(&mut self, at: u64, n: usize) -> io::Result<Option<&[u8]>> {
        debug_assert!(n <= WINDOW);
        let Some(end) = at.checked_add(n as u64).filter(|&e| e <= self.len) else {
            return Ok(None);
        };
        let held = self.buf_at + self.buf.len() as u64;
        if at < self.buf_at || end > held {
            self.buf = self.read(at, WINDOW)?;
            self.buf_at = at;
        }
        let from = (at - self.buf_at) as usize;
        Ok(Some(&self.buf[from..from + n]))
    }

    /// Up to `n` bytes at `at` (fewer where the file ends), bypassing the buffer.
    fn read(&self, at: u64, n: usize) -> io::Result<Vec<u8>> {
        let n = n.min(self.len.saturating_sub(at) as usize);
        let mut out = vec![0u8; n];
        self.file.read_exact_at(&mut out, at)?;
        Ok(out)
    }

    /// The batch starting at `at`, or why there is none.
    pub fn batch_at(&mut self, at: u64) -> io::Result<Result<Batch, Broken>> {
        let broken = |frame: u64, what: String| {
            Ok(Err(Broken {
                batch: at,
                frame,
                what,
            }))
        };
        let Some(start) = self.bytes(at, START_LEN)? else {
            return broken(at, "batch start cut short by the end of the file".into());
        };
        if start[0] != TAG_START {
            return broken(
                at,
                format!("expected a batch start (tag 1), found {:#04x}", start[0]),
            );
        }
        let count = u32::from_le_bytes([start[1], start[2], start[3], start[4]]);
        let seqno = u64::from_le_bytes(le8(&start[5..13]));
        let mut pos = at + START_LEN as u64;
        // Every entry takes at least CLEAR_LEN bytes: a count that cannot fit is garbage.
        if u64::from(count) * CLEAR_LEN as u64 > self.len - pos {
            return broken(
                at,
                format!("item count {count} cannot fit in the rest of the file"),
            );
        }
        let mut hasher = Xxh3::new();
        for i in 0..count {
            let Some(&[tag]) = self.bytes(pos, 1)? else {
                return broken(pos, format!("entry {i} of {count} cut short"));
            };
            match tag {
                TAG_ITEM => match self.item(pos, &mut hasher)? {
                    Ok(end) => pos = end,
                    Err(what) => return broken(pos, format!("entry {i} of {count}: {what}")),
                },
                TAG_CLEAR => {
                    let Some(clear) = self.bytes(pos, CLEAR_LEN)? else {
                        return broken(pos, format!("entry {i} of {count} cut short"));
                    };
                    hasher.update(clear);
                    pos += CLEAR_LEN as u64;
                }
                other => {
                    return broken(
                        pos,
                        format!("expected entry {i} of {count} (tag 2 or 4), found {other:#04x}"),
                    );
                }
            }
        }
        let Some(end) = self.bytes(pos, END_LEN)? else {
            return broken(pos, "batch end cut short by the end of the file".into());
        };
        if end[0] != TAG_END {
            return broken(
                pos,
                format!(
                    "expected the batch end (tag 3) after {count} entries, found {:#04x}",
                    end[0]
                ),
            );
        }
        if &end[9..13] != MAGIC {
            return broken(pos, "batch end without its trailer magic".into());
        }
        let (want, got) = (u64::from_le_bytes(le8(&end[1..9])), hasher.digest());
        if want != got {
            return broken(
                pos,
                format!("checksum mismatch (stored {want:#018x}, computed {got:#018x})"),
            );
        }
        Ok(Ok(Batch {
            at,
            end: pos + END_LEN as u64,
            seqno,
        }))
    }

    /// Hashes the Item at `pos` and answers where it ends, or what is wrong with it.
    fn item(&mut self, pos: u64, hasher: &mut Xxh3) -> io::Result<Result<u64, String>> {
        let Some(h) = self.bytes(pos, ITEM_HEADER_LEN)? else {
            return Ok(Err("item header cut short".into()));
        };
        let (value_type, compression) = (h[1], h[2]);
        let key_len = u64::from(u16::from_le_bytes([h[11], h[12]]));
        let value_len = u32::from_le_bytes([h[13], h[14], h[15], h[16]]);
        let disk_len = u32::from_le_bytes([h[17], h[18], h[19], h[20]]);
        if value_type > 2 {
            return Ok(Err(format!("unknown value type {value_type}")));
        }
        if compression > 1 {
            return Ok(Err(format!("unknown compression {compression}")));
        }
        if compression == 0 && value_len != disk_len {
            return Ok(Err(format!(
                "uncompressed value of {value_len} bytes stored as {disk_len}"
            )));
        }
        hasher.update(h);
        let body_at = pos + ITEM_HEADER_LEN as u64;
        let body_len = key_len + u64::from(disk_len);
        if body_len > self.len - body_at {
            return Ok(Err(format!(
                "key and value of {body_len} bytes run past the end of the file"
            )));
        }
        let mut done = 0;
        while done < body_len {
            let n = (body_len - done).min(WINDOW as u64) as usize;
            let Some(chunk) = self.bytes(body_at + done, n)? else {
                return Ok(Err("item cut short".into()));
            };
            hasher.update(chunk);
            done += n as u64;
        }
        Ok(Ok(body_at + body_len))
    }

    /// Where the last non-zero byte at or after `from` ends (`from` if all of it is zero).
    pub fn data_end_from(&self, from: u64) -> io::Result<u64> {
        let mut end = from;
        let mut at = from;
        while at < self.len {
            let chunk = self.read(at, WINDOW)?;
            if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
                end = at + i as u64 + 1;
            }
            at += chunk.len() as u64;
        }
        Ok(end)
    }

    /// The first whole valid batch that starts after `from`, at any byte offset.
    pub fn next_batch_after(&mut self, from: u64) -> io::Result<Option<Batch>> {
        let mut at = from + 1;
        while at < self.len {
            let chunk = self.read(at, WINDOW)?;
            for (i, &b) in chunk.iter().enumerate() {
                if b == TAG_START
                    && let Ok(batch) = self.batch_at(at + i as u64)?
                {
                    return Ok(Some(batch));
                }
            }
            at += chunk.len() as u64;
        }
        Ok(None)
    }

    /// Bytes `from..to`, to keep a copy of what a repair drops.
    pub fn range(&self, from: u64, to: u64) -> io::Result<Vec<u8>> {
        self.read(from, (to - from) as usize)
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch fjall writes (single inserts, removes, multi-item batches, values large
    /// enough for lz4) parses with a matching checksum, back to back, followed only by zeros.
    #[test]
    fn journals_written_by_fjall_parse_batch_by_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = fjall::Database::builder(dir.path()).open().unwrap();
            let ks = db
                .keyspace("kv", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            for i in 0..50u32 {
                ks.insert(format!("k{i}"), format!("value {i}")).unwrap();
            }
            ks.remove("k3").unwrap();
            let mut batch = db.batch();
            for i in 0..10u32 {
                batch.insert(&ks, format!("b{i}"), "x".repeat(10_000));
            }
            batch.commit().unwrap();
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let path = dir.path().join("0.jnl");
        let mut j = JournalFile::open(&path).unwrap();
        let (mut at, mut batches, mut last_seqno) = (0, 0, None);
        while let Ok(b) = j.batch_at(at).unwrap() {
            assert!(last_seqno.is_none_or(|s| b.seqno > s), "seqnos grow");
            last_seqno = Some(b.seqno);
            at = b.end;
            batches += 1;
        }
        assert_eq!(batches, 52);
        assert_eq!(j.data_end_from(at).unwrap(), at, "only zeros follow");
        assert_eq!(j.next_batch_after(at).unwrap(), None);
    }

    #[test]
    fn garbage_is_broken_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.jnl");
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x01\xff\xff\xff\xff\0\0\0\0\0\0\0\0",
            b"\x01\x01\0\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x03",
        ] {
            std::fs::write(&path, bytes).unwrap();
            let mut j = JournalFile::open(&path).unwrap();
            assert!(j.batch_at(0).unwrap().is_err(), "{bytes:?}");
            assert_eq!(j.next_batch_after(0).unwrap(), None);
        }
    }
}
