//! The copy engine: streams the moving records of every old shard (`export?scope=moving`),
//! groups them by their owner under the target map and sends them in batches with if-absent
//! imports. Batches carry the records' versions and never overwrite what the new owner holds
//! (a newer write or a tombstone), so a copy cut short anywhere is simply run again.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use futures::future::try_join_all;
use futures::stream::FuturesUnordered;
use kvproto::bulk::BulkRecord;
use kvproto::{Fence, Topology};
use tokio::sync::watch;

use crate::shards::{self, DynShardAdmin, ShardError};

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
    admin: &dyn DynShardAdmin,
    token: &str,
    target: &Topology,
    from: u32,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<CopyProgress, ShardError> {
    let sources = (0..from).map(|shard| copy_shard(admin, token, target, shard, options, progress));
    try_join_all(sources).await?;
    Ok(*progress.borrow())
}

async fn copy_shard(
    admin: &dyn DynShardAdmin,
    token: &str,
    target: &Topology,
    shard: u32,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<(), ShardError> {
    let url = shards::peer(&target.peers, shard)?;
    let mut records = admin
        .export_moving(url, token)
        .await
        .map_err(|source| ShardError::Unreachable { shard, source })?;
    let batch = options.batch.max(1);
    let mut groups: HashMap<u32, Vec<BulkRecord>> = HashMap::new();
    // Imports overlap with reading the export and with each other, a few at a time.
    let mut in_flight = FuturesUnordered::new();
    while let Some(record) = records.next().await {
        let record = record.map_err(|source| ShardError::Unreachable { shard, source })?;
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
    admin: &dyn DynShardAdmin,
    token: &str,
    target: &Topology,
    owner: u32,
    records: Vec<BulkRecord>,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<(), ShardError> {
    let url = shards::peer(&target.peers, owner)?;
    let applied = admin
        .import_if_absent(url, token, Fence::copy(target.epoch), &records)
        .await
        .map_err(|source| ShardError::Unreachable {
            shard: owner,
            source,
        })?;
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
