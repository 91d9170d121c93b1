//! The copy engine (`rebalance::copy`) against the fake shards: how many keys a growth moves
//! with each shard function, and that every moved key lands on its new owner; with values of
//! every size, batches stay within their byte bound and the imports in flight within the
//! copy's byte budget, and the copy completes (no reader waits for bytes nobody frees).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kvproto::bulk::{BulkRecord, STREAM_OVERHEAD};
use kvproto::topology::Migration;
use kvproto::{Fence, Topology};
use kvproto::{Key, MigrationPhase, Sharding};
use operator::rebalance::copy::{
    ByteLimits, CopyOptions, CopyProgress, copy_moving, copy_moving_within,
};
use operator::shards::{CallResult, RecordStream, ShardAdmin};
use support::shards::FakeShards;
use tokio::sync::watch;

/// The Copy map of a growth from `n` to `m` shards.
fn growth(sharding: Sharding, n: u32, m: u32) -> Topology {
    Topology {
        epoch: 2,
        sharding,
        shards: m,
        peers: (0..n.max(m)).map(|i| format!("s{i}")).collect(),
        migration: Some(Migration {
            from_shards: n,
            phase: MigrationPhase::Copy,
        }),
    }
}

/// Fraction of `keys` keys the copy moves when growing from `n` to `m` shards.
async fn moved_fraction(sharding: Sharding, n: u32, m: u32, keys: u32) -> f64 {
    let target = growth(sharding, n, m);
    let stores = FakeShards::default();
    for i in 0..keys {
        let key = Key::new(format!("user:{i}")).unwrap();
        let record = BulkRecord {
            key: key.clone(),
            version: 1,
            value: Some(bytes::Bytes::from_static(b"v")),
        };
        let owner = sharding.shard_of(key.as_bytes(), n) as usize;
        stores.insert(&target.peers[owner], record);
    }
    // The old shards serve the target map, so their moving records are those it moves.
    for url in &target.peers {
        stores.put_topology(url, "", &target).await.unwrap();
    }
    let (progress, _) = watch::channel(CopyProgress::default());
    let moved = copy_moving(&stores, "", &target, n, CopyOptions::default(), &progress)
        .await
        .unwrap();
    // Every moved key landed on its new owner.
    for (i, url) in target.peers.iter().enumerate() {
        for key in stores.keys(url) {
            let owner = target.owner(key.as_bytes()) as usize;
            let old = sharding.shard_of(key.as_bytes(), n) as usize;
            assert!(owner == i || old == i, "{key:?} on {i}");
        }
    }
    assert_eq!(moved.keys, moved.applied);
    moved.keys as f64 / f64::from(keys)
}

#[tokio::test]
async fn growth_moves_about_m_minus_n_over_m_with_jump_and_m_minus_1_over_m_with_modulo() {
    for (n, m) in [(3, 4), (4, 5), (5, 8)] {
        let expect_jump = f64::from(m - n) / f64::from(m);
        let expect_modulo = f64::from(m - 1) / f64::from(m);
        let jump = moved_fraction(Sharding::Jump, n, m, 20_000).await;
        let modulo = moved_fraction(Sharding::Modulo, n, m, 20_000).await;
        eprintln!(
            "{n}→{m}: jump moved {jump:.3} (≈{expect_jump:.3}), modulo {modulo:.3} (≈{expect_modulo:.3})"
        );
        assert!((jump - expect_jump).abs() < 0.03, "jump {n}→{m}: {jump}");
        assert!(
            (modulo - expect_modulo).abs() < 0.05,
            "modulo {n}→{m}: {modulo}"
        );
    }
}

/// The fake shards, measuring every import: its records and encoded bytes, and the most
/// encoded bytes in flight at once.
#[derive(Default)]
struct Metered {
    inner: FakeShards,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    /// (records, encoded bytes) of every import.
    batches: Mutex<Vec<(usize, usize)>>,
}

impl ShardAdmin for Metered {
    async fn put_topology(&self, url: &str, token: &str, topology: &Topology) -> CallResult<()> {
        ShardAdmin::put_topology(&self.inner, url, token, topology).await
    }

    async fn export_moving(&self, url: &str, token: &str) -> CallResult<RecordStream> {
        ShardAdmin::export_moving(&self.inner, url, token).await
    }

    async fn moving_count(&self, url: &str, token: &str) -> CallResult<u64> {
        ShardAdmin::moving_count(&self.inner, url, token).await
    }

    async fn import_if_absent(
        &self,
        url: &str,
        token: &str,
        fence: Fence,
        records: &[BulkRecord],
    ) -> CallResult<u64> {
        let bytes = STREAM_OVERHEAD + records.iter().map(BulkRecord::encoded_len).sum::<usize>();
        self.batches.lock().unwrap().push((records.len(), bytes));
        let now = self.in_flight.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
        // Let the other readers and senders run while this import is in flight.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let applied = ShardAdmin::import_if_absent(&self.inner, url, token, fence, records).await;
        self.in_flight.fetch_sub(bytes, Ordering::SeqCst);
        applied
    }

    async fn cleanup(&self, url: &str, token: &str, fence: Fence) -> CallResult<()> {
        ShardAdmin::cleanup(&self.inner, url, token, fence).await
    }

    async fn key_count(&self, url: &str, token: &str) -> CallResult<u64> {
        ShardAdmin::key_count(&self.inner, url, token).await
    }
}

/// Value sizes from 10 bytes to 200 KiB, spread by `i`, and every 50th of 1 MiB (over the
/// batch bound); with `oversize`, the 8th of 3 MiB (over the whole budget).
fn value_len(i: u32, oversize: bool) -> usize {
    match i {
        7 if oversize => 3 << 20,
        i if i % 50 == 0 => 1 << 20,
        i => 10 + (i as usize * 7919) % (200 << 10),
    }
}

const LIMITS: ByteLimits = ByteLimits {
    batch_bytes: 256 << 10,
    budget_bytes: 2 << 20,
};

/// Copies 400 keys of [`value_len`] sizes in a 3→7 growth within [`LIMITS`]; checks that
/// every moving record landed and every batch kept its bound, and answers the most bytes in
/// flight at once.
async fn copy_mixed_sizes(oversize: bool) -> usize {
    let options = CopyOptions::default();
    copy_metered(400, |i| value_len(i, oversize), LIMITS, options).await
}

/// Copies `keys` keys of `value_len` sizes in a 3→7 growth within `limits`; checks that
/// every moving record landed and every batch kept its byte bound, and answers the most
/// bytes in flight at once.
async fn copy_metered(
    keys: u32,
    value_len: impl Fn(u32) -> usize,
    limits: ByteLimits,
    options: CopyOptions,
) -> usize {
    let (n, m) = (3, 7);
    let target = growth(Sharding::Jump, n, m);
    let shards = Metered::default();
    for i in 0..keys {
        let key = Key::new(format!("user:{i}")).unwrap();
        let old = Sharding::Jump.shard_of(key.as_bytes(), n) as usize;
        let record = BulkRecord {
            key,
            version: 1,
            value: Some(vec![b'v'; value_len(i)].into()),
        };
        shards.inner.insert(&target.peers[old], record);
    }
    for url in &target.peers {
        shards.put_topology(url, "", &target).await.unwrap();
    }
    let (progress, _) = watch::channel(CopyProgress::default());
    let copy = copy_moving_within(&shards, "", &target, n, options, limits, &progress);
    // A bounded wait: a copy whose readers wait on each other's budget never ends.
    let moved = tokio::time::timeout(Duration::from_secs(60), copy)
        .await
        .expect("the copy ends (no reader waits for bytes nobody frees)")
        .unwrap();

    let batches = shards.batches.lock().unwrap().clone();
    for &(records, bytes) in &batches {
        assert!(records > 0, "an import of no records");
        assert!(
            bytes <= limits.batch_bytes || records == 1,
            "a batch of {records} records took {bytes} bytes, over {}",
            limits.batch_bytes
        );
    }
    let moving = (0..keys)
        .filter(|i| {
            let key = format!("user:{i}");
            Sharding::Jump.shard_of(key.as_bytes(), n) != target.owner(key.as_bytes())
        })
        .count();
    let sent: usize = batches.iter().map(|b| b.0).sum();
    assert_eq!(
        (sent, moved.keys as usize),
        (moving, moving),
        "every moving record sent once"
    );
    for (i, url) in target.peers.iter().enumerate() {
        for key in shards.inner.keys(url) {
            let owner = target.owner(key.as_bytes()) as usize;
            let old = Sharding::Jump.shard_of(key.as_bytes(), n) as usize;
            assert!(owner == i || old == i, "{key:?} on {i}");
        }
    }
    let peak = shards.peak.load(Ordering::SeqCst);
    eprintln!("{} batches, at most {peak} bytes in flight", batches.len());
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_bytes_in_flight_stay_within_their_bounds_whatever_the_value_sizes() {
    let peak = copy_mixed_sizes(false).await;
    assert!(
        peak <= LIMITS.budget_bytes,
        "{peak} bytes in flight, over the {} byte budget",
        LIMITS.budget_bytes
    );
    assert!(
        peak > LIMITS.batch_bytes,
        "imports overlapped ({peak} bytes)"
    );
}

/// With one tiny record per import, each import's stream overhead is a third of its body: the
/// budget must count it, or the imports in flight (up to 4 per old shard) outgrow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_counts_each_imports_stream_overhead() {
    let one_record = STREAM_OVERHEAD + tiny_record_len();
    let limits = ByteLimits {
        batch_bytes: 256 << 10,
        budget_bytes: 6 * one_record,
    };
    let options = CopyOptions {
        batch: 1,
        ..CopyOptions::default()
    };
    let peak = copy_metered(300, |_| 1, limits, options).await;
    assert!(
        peak <= limits.budget_bytes,
        "{peak} bytes in flight, over the {} byte budget",
        limits.budget_bytes
    );
    assert!(peak > one_record, "imports overlapped ({peak} bytes)");
}

/// The encoded length of a record of `copy_metered`'s longest key with a 1-byte value.
fn tiny_record_len() -> usize {
    let record = BulkRecord {
        key: Key::new("user:299").unwrap(),
        version: 1,
        value: Some(bytes::Bytes::from_static(b"v")),
    };
    record.encoded_len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_the_whole_budget_goes_alone_and_the_copy_ends() {
    let peak = copy_mixed_sizes(true).await;
    // While it is in flight it holds the whole budget, so nothing else is.
    let alone = STREAM_OVERHEAD + (3 << 20) + 64;
    assert!(
        peak <= alone,
        "{peak} bytes in flight beside the 3 MiB record"
    );
}
