//! The copy engine: streams the moving records of every old shard (`export?scope=moving`),
//! groups them by their owner under the target map and sends them in batches with if-absent
//! imports. Batches carry the records' versions and never overwrite what the new owner holds
//! (a newer write or a tombstone), so a copy cut short anywhere is simply run again.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use futures::future::try_join_all;
use kvproto::Topology;
use kvproto::bulk::BulkRecord;
use tokio::sync::watch;

use super::steps::StepError;
use crate::shards::ShardAdmin;

/// Records per import request when nothing else is said.
pub const DEFAULT_BATCH: usize = 1000;

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
    while let Some(record) = records.next().await {
        let record = record.map_err(|message| StepError::unreachable(shard, message))?;
        let owner = target.owner(record.key.as_bytes());
        let group = groups.entry(owner).or_default();
        group.push(record);
        if group.len() >= batch {
            let full = std::mem::take(group);
            send(admin, token, target, owner, &full, options, progress).await?;
        }
    }
    for (owner, rest) in groups {
        if !rest.is_empty() {
            send(admin, token, target, owner, &rest, options, progress).await?;
        }
    }
    Ok(())
}

async fn send(
    admin: &dyn ShardAdmin,
    token: &str,
    target: &Topology,
    owner: u32,
    records: &[BulkRecord],
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<(), StepError> {
    let url = peer(target, owner)?;
    let applied = admin
        .import_if_absent(url, token, records)
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

fn peer(target: &Topology, shard: u32) -> Result<&str, StepError> {
    target
        .peers
        .get(shard as usize)
        .map(String::as_str)
        .ok_or_else(|| StepError::unreachable(shard, "no address in the shard map".into()))
}
