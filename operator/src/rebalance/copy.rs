//! The copy engine: streams the moving records of every old shard (`export?scope=moving`),
//! groups them by their owner under the target map and sends them in batches with if-absent
//! imports. Batches carry the records' versions and never overwrite what the new owner holds
//! (a newer write or a tombstone), so a copy cut short anywhere is simply run again.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use futures::future::try_join_all;
use futures::stream::FuturesUnordered;
use kvproto::Topology;
use kvproto::bulk::BulkRecord;
use tokio::sync::watch;

use super::steps::StepError;
use crate::shards::ShardAdmin;

/// Records per import request when nothing else is said.
pub const DEFAULT_BATCH: usize = 1000;
/// Import requests one old shard keeps in flight.
const IN_FLIGHT: usize = 4;

/// How the copy sends its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Records per import request.
    pub batch: usize,
    /// Pause after each import (a test hook: lets an e2e test act mid-copy).
    pub pause: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch: DEFAULT_BATCH,
            pause: Duration::ZERO,
        }
    }
}

/// What the copy has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Records sent (values and tombstones).
    pub keys: u64,
    /// Key and value bytes sent.
    pub bytes: u64,
    /// Records the new owners applied (the rest they already had).
    pub applied: u64,
    /// Records the old shards reported moving before the copy began (writes during the copy
    /// may add a few: progress, not an invariant).
    pub total: u64,
}

/// Copies every moving record of shards `0..from` to its owner under `target`, whose
/// `peers` address every shard. Old shards are read concurrently; `progress` follows along.
pub async fn copy_moving(
    admin: &dyn ShardAdmin,
    token: &str,
    target: &Topology,
    from: u32,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<CopyProgress, StepError> {
    let sources = (0..from).map(|shard| copy_shard(admin, token, target, shard, options, progress));
    try_join_all(sources).await?;
    Ok(*progress.borrow())
}

async fn copy_shard(
    admin: &dyn ShardAdmin,
    token: &str,
    target: &Topology,
    shard: u32,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<(), StepError> {
    let url = peer(target, shard)?;
    let mut records = admin
        .export_moving(url, token)
        .await
        .map_err(|message| StepError::unreachable(shard, message))?;
    let batch = options.batch.max(1);
    let mut groups: HashMap<u32, Vec<BulkRecord>> = HashMap::new();
    // Imports overlap with reading the export and with each other, a few at a time.
    let mut in_flight = FuturesUnordered::new();
    while let Some(record) = records.next().await {
        let record = record.map_err(|message| StepError::unreachable(shard, message))?;
        let owner = target.owner(record.key.as_bytes());
        let group = groups.entry(owner).or_default();
        group.push(record);
        if group.len() >= batch {
            let full = std::mem::take(group);
            if in_flight.len() >= in_flight_limit(options) {
                in_flight.next().await.transpose()?;
            }
            in_flight.push(send(admin, token, target, owner, full, options, progress));
        }
    }
    for (owner, rest) in groups {
        if !rest.is_empty() {
            in_flight.push(send(admin, token, target, owner, rest, options, progress));
        }
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(())
}

async fn send(
    admin: &dyn ShardAdmin,
    token: &str,
    target: &Topology,
    owner: u32,
    records: Vec<BulkRecord>,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<(), StepError> {
    let url = peer(target, owner)?;
    let applied = admin
        .import_if_absent(url, token, &records)
        .await
        .map_err(|message| StepError::unreachable(owner, message))?;
    let bytes: usize = records
        .iter()
        .map(|r| r.key.as_bytes().len() + r.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    progress.send_modify(|p| {
        p.keys += records.len() as u64;
        p.bytes += bytes as u64;
        p.applied += applied;
    });
    if !options.pause.is_zero() {
        tokio::time::sleep(options.pause).await;
    }
    Ok(())
}

/// One import at a time while a test pauses between batches, so the pause paces the copy.
fn in_flight_limit(options: CopyOptions) -> usize {
    if options.pause.is_zero() {
        IN_FLIGHT
    } else {
        1
    }
}

fn peer(target: &Topology, shard: u32) -> Result<&str, StepError> {
    target
        .peers
        .get(shard as usize)
        .map(String::as_str)
        .ok_or_else(|| StepError::unreachable(shard, "no address in the shard map".into()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use futures::stream;
    use kvproto::topology::Migration;
    use kvproto::{Key, MigrationPhase, Sharding};

    use super::*;
    use crate::shards::RecordStream;

    /// Servers `s0..` holding records; `moving` answers what their map says they lose.
    struct Stores {
        target: Topology,
        data: Vec<Mutex<BTreeMap<Key, BulkRecord>>>,
    }

    impl Stores {
        fn at(&self, url: &str) -> usize {
            url.trim_start_matches('s').parse().unwrap()
        }
    }

    impl ShardAdmin for Stores {
        fn put_topology<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a Topology,
        ) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }

        fn export_moving<'a>(
            &'a self,
            url: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<RecordStream, String>> {
            let me = self.at(url);
            let moving: Vec<Result<BulkRecord, String>> = self.data[me]
                .lock()
                .unwrap()
                .values()
                .filter(|r| self.target.owner(r.key.as_bytes()) as usize != me)
                .cloned()
                .map(Ok)
                .collect();
            Box::pin(async move { Ok(stream::iter(moving).boxed()) })
        }

        fn moving_count<'a>(
            &'a self,
            url: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<u64, String>> {
            let me = self.at(url);
            let moving = self.data[me]
                .lock()
                .unwrap()
                .values()
                .filter(|r| self.target.owner(r.key.as_bytes()) as usize != me)
                .count() as u64;
            Box::pin(async move { Ok(moving) })
        }

        fn import_if_absent<'a>(
            &'a self,
            url: &'a str,
            _: &'a str,
            records: &'a [BulkRecord],
        ) -> BoxFuture<'a, Result<u64, String>> {
            let mut store = self.data[self.at(url)].lock().unwrap();
            let mut applied = 0;
            for r in records {
                if !store.contains_key(&r.key) {
                    store.insert(r.key.clone(), r.clone());
                    applied += 1;
                }
            }
            Box::pin(async move { Ok(applied) })
        }

        fn cleanup<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }

        fn key_count<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<u64, String>> {
            Box::pin(async { Ok(0) })
        }
    }

    /// Fraction of `keys` keys the copy moves when growing from `n` to `m` shards.
    async fn moved_fraction(sharding: Sharding, n: u32, m: u32, keys: u32) -> f64 {
        let target = Topology {
            epoch: 2,
            sharding,
            shards: m,
            peers: (0..n.max(m)).map(|i| format!("s{i}")).collect(),
            migration: Some(Migration {
                from_shards: n,
                phase: MigrationPhase::Copy,
            }),
        };
        let data: Vec<Mutex<BTreeMap<Key, BulkRecord>>> =
            (0..n.max(m)).map(|_| Mutex::default()).collect();
        for i in 0..keys {
            let key = Key::new(format!("user:{i}")).unwrap();
            let record = BulkRecord {
                key: key.clone(),
                version: 1,
                value: Some(bytes::Bytes::from_static(b"v")),
            };
            let owner = sharding.shard_of(key.as_bytes(), n) as usize;
            data[owner].lock().unwrap().insert(key, record);
        }
        let stores = Stores { target, data };
        let (progress, _) = watch::channel(CopyProgress::default());
        let moved = copy_moving(
            &stores,
            "",
            &stores.target,
            n,
            CopyOptions::default(),
            &progress,
        )
        .await
        .unwrap();
        // Every moved key landed on its new owner.
        for (i, store) in stores.data.iter().enumerate() {
            for key in store.lock().unwrap().keys() {
                let owner = stores.target.owner(key.as_bytes()) as usize;
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
}
