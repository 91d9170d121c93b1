//! Journal damage, on the real binary (issue 13, item 1): only a torn tail is dropped, with an
//! error-level log naming the bytes removed; damage with data after it, a damaged first byte or
//! a deleted journal make the server refuse to start and leave the files as they were.
//!
//! Each test writes N keys one after another (one journal batch each, in order, so the last
//! batch holds the last key), kills the server, damages a copy of its directory and starts the
//! binary on it. Batch boundaries are found without the server's parser: every batch ends with
//! fjall's trailer magic `FJL\x03`, which the ASCII keys and values never contain.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http;

const N: usize = 400;
const MAGIC: &[u8] = b"FJL\x03";

fn key(i: usize) -> String {
    format!("k{i:04}")
}

fn value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(60))
}

/// A kvserver process whose stderr is kept; killed when dropped.
struct Server {
    child: Child,
    ops: SocketAddr,
    data: SocketAddr,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvserver"))
            .args(["--port", "0", "--ops-port", "0", "--bind", "127.0.0.1"])
            .args(["--drain-delay", "0s", "--sync", "never"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kvserver");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (sink, mut pipe) = (stderr.clone(), child.stderr.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // Printed once both ports are bound, before the store is opened.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .parse()
                .unwrap()
        };
        Server {
            ops: addr("ops="),
            data: addr("data="),
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.data)
    }

    /// Its stderr so far, without the log's colour codes.
    fn stderr(&self) -> String {
        let raw = self.stderr.lock().unwrap().clone();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // `ESC [ ... m`
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Waits for the process to exit and for its stderr to be read to the end.
    fn exit(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }

    /// The first stderr line containing `needle`, waiting (boundedly) for it to be read.
    async fn log_line(&self, needle: &str) -> Option<String> {
        for _ in 0..100 {
            if let Some(l) = self.stderr().lines().find(|l| l.contains(needle)) {
                return Some(l.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits (boundedly) until the server is healthy (`true`) or has exited (`false`).
    async fn healthy_or_exited(&mut self) -> bool {
        let client = http();
        for _ in 0..600 {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(r) = client
                .get(format!("http://{}/healthz", self.ops))
                .send()
                .await
                && r.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server neither became healthy nor exited");
    }
}

/// A data directory holding N keys, written one by one (then the server is killed).
async fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"));
    assert!(server.healthy_or_exited().await, "{}", server.stderr());
    let client = http();
    for i in 0..N {
        let r = client
            .put(format!("{}/v1/keys/{}", server.url(), key(i)))
            .body(value(i))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    drop(server);
    dir
}

/// The store's one journal (the test writes far less than a memtable, so there is one).
fn journal(dir: &Path) -> PathBuf {
    let store = dir.join("data/store");
    let journals: Vec<PathBuf> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    journals[0].clone()
}

/// Where each batch ends (just after its trailer magic).
fn batch_ends(bytes: &[u8]) -> Vec<usize> {
    let ends: Vec<usize> = bytes
        .windows(MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == MAGIC)
        .map(|(i, _)| i + MAGIC.len())
        .collect();
    assert_eq!(ends.len(), N, "one batch per write");
    ends
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// A copy of `template` with its journal changed by `damage`.
fn damaged(template: &Path, damage: impl FnOnce(&Path, &mut Vec<u8>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template, dir.path());
    let path = journal(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&path, &mut bytes);
    std::fs::write(&path, bytes).unwrap();
    dir
}

/// Starts the server on `dir`, which must refuse: exit with an error naming `needles`, and
/// leave every file as it was.
async fn refuses(dir: &Path, needles: &[String]) {
    let before = snapshot(&dir.join("data/store"));
    let mut server = Server::start(&dir.join("data"));
    assert!(
        !server.healthy_or_exited().await,
        "the server started on a damaged store"
    );
    assert!(!server.exit().success());
    let log = server.stderr();
    for needle in needles {
        assert!(log.contains(needle.as_str()), "no {needle:?} in:\n{log}");
    }
    assert!(snapshot(&dir.join("data/store")) == before, "files changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_framing_byte_mid_journal_refuses_to_start_and_changes_nothing() {
    let template = populated().await;
    let bytes = std::fs::read(journal(template.path())).unwrap();
    let ends = batch_ends(&bytes);
    let start = ends[N / 2 - 1];
    let end = ends[N / 2];
    // End tag; Start tag; item count; key length; on-disk value length; a value byte.
    for (at, what) in [
        (end - 13, "end tag"),
        (start, "start tag"),
        (start + 1, "item count"),
        (start + 13 + 11, "key length"),
        (start + 13 + 17, "on-disk value length"),
        (end - 20, "value byte"),
    ] {
        let dir = damaged(template.path(), |_, b| b[at] ^= 0x01);
        let path = journal(dir.path());
        refuses(
            dir.path(),
            &[
                path.display().to_string(),
                format!("damaged at byte {start}"),
                "valid batch follows".into(),
            ],
        )
        .await;
        eprintln!("{what}: refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zeroed_page_mid_journal_refuses_to_start() {
    let template = populated().await;
    let bytes = std::fs::read(journal(template.path())).unwrap();
    let data_end = *batch_ends(&bytes).last().unwrap();
    let page = (data_end / 2) & !4095;
    let dir = damaged(template.path(), |_, b| b[page..page + 4096].fill(0));
    let path = journal(dir.path());
    refuses(
        dir.path(),
        &[path.display().to_string(), "damaged at byte".into()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_first_byte_refuses_to_start() {
    let template = populated().await;
    let dir = damaged(template.path(), |_, b| b[0] ^= 0xff);
    let path = journal(dir.path());
    refuses(
        dir.path(),
        &[path.display().to_string(), "damaged at byte 0".into()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_journal_refuses_to_start() {
    let template = populated().await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template.path(), dir.path());
    std::fs::remove_file(journal(dir.path())).unwrap();
    refuses(dir.path(), &["no journal file".into()]).await;
}

/// A torn last batch, three ways: the file ends a few bytes early, garbage in the last batch,
/// its end still the preallocated zeros. The server starts with every key but the last, logs the
/// bytes removed at error level, keeps a copy of them, and starts cleanly the next time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_dropped_with_an_error_log_and_the_rest_is_kept() {
    let template = populated().await;
    let bytes = std::fs::read(journal(template.path())).unwrap();
    let ends = batch_ends(&bytes);
    let (last, data_end) = (ends[N - 2], ends[N - 1]);
    type Damage = Box<dyn Fn(&Path, &mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, usize)> = vec![
        (
            "truncated",
            Box::new(move |_, b| b.truncate(data_end - 5)),
            data_end - 5 - last,
        ),
        (
            "garbage",
            Box::new(move |_, b| b[data_end - 30..data_end - 14].fill(0xab)),
            data_end - last,
        ),
        (
            "half-written",
            Box::new(move |_, b| b[data_end - 30..data_end].fill(0)),
            data_end - 30 - last,
        ),
    ];
    let client = http();
    for (what, damage, removed) in cases {
        let dir = damaged(template.path(), damage);
        let mut server = Server::start(&dir.path().join("data"));
        assert!(
            server.healthy_or_exited().await,
            "{what}: refused a torn tail:\n{}",
            server.stderr()
        );
        let line = server
            .log_line("torn tail")
            .await
            .unwrap_or_else(|| panic!("{what}: no torn-tail log in:\n{}", server.stderr()));
        assert!(line.contains("ERROR"), "{what}: {line}");
        assert!(
            line.contains(&format!("bytes_removed={removed}")),
            "{what}: {line}"
        );
        let copy = dir
            .path()
            .join(format!("data/store/torn-journal-tails/0.jnl.at-{last}"));
        assert_eq!(std::fs::read(&copy).unwrap().len(), removed, "{what}");
        for i in 0..N {
            let r = client
                .get(format!("{}/v1/keys/{}", server.url(), key(i)))
                .send()
                .await
                .unwrap();
            if i == N - 1 {
                assert_eq!(r.status(), 404, "{what}: the torn last write is gone");
            } else {
                assert_eq!(r.status(), 200, "{what}: {} lost", key(i));
                assert_eq!(r.text().await.unwrap(), value(i));
            }
        }
        // Written after the repair, then a restart: clean, nothing dropped.
        let r = client
            .put(format!("{}/v1/keys/after", server.url()))
            .body("x")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        drop(server);
        let mut again = Server::start(&dir.path().join("data"));
        assert!(again.healthy_or_exited().await, "{}", again.stderr());
        assert!(!again.stderr().contains("torn tail"), "{}", again.stderr());
        let r = client
            .get(format!("{}/v1/keys/after", again.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// A store big enough for fjall to seal a journal (it starts a new one past 64 MB) reopens
/// cleanly again and again: sealed journals, their preallocated zeros and seqnos across files
/// all pass; and once its newest journal is deleted, it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_several_journals_reopens_cleanly_and_misses_none() {
    use bytes::Bytes;
    use kvproto::Key;
    use kvserver::SyncMode;
    use kvserver::storage::{JournalError, Precondition, StorageError, Store};

    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut journal_ids = Vec::new();
    // 80 MB of values lz4 cannot shrink, then two small rounds, each after a reopen.
    for (round, count, size) in [(0, 5_000, 16 * 1024), (1, 200, 100), (2, 200, 100)] {
        let store = Store::open(dir.path(), SyncMode::Never, 0).unwrap();
        for i in 0..count {
            let value: Vec<u8> = (0..size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let key = Key::new(format!("r{round}-k{i}")).unwrap();
            store
                .put(&key, Bytes::from(value), Precondition::None, None)
                .await
                .unwrap();
        }
        drop(store);
        journal_ids.push(ids(dir.path()));
    }
    let store = Store::open(dir.path(), SyncMode::Never, 0).unwrap();
    assert_eq!(store.key_count(), 5_400);
    drop(store);
    let now = ids(dir.path());
    let newest = *now.last().unwrap();
    assert!(newest > 0, "fjall sealed no journal: {journal_ids:?}");

    std::fs::remove_file(dir.path().join(format!("{newest}.jnl"))).unwrap();
    match Store::open(dir.path(), SyncMode::Never, 0) {
        Err(StorageError::Journal(e @ JournalError::Missing { .. })) => eprintln!("{e}"),
        other => panic!("opened without its newest journal ({now:?}): {other:?}"),
    }
}

/// The journal ids in a store directory, ascending.
fn ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".jnl").map(|n| n.parse().unwrap())
        })
        .collect();
    ids.sort_unstable();
    ids
}
